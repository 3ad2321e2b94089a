// A loaded model: the mapped GGUF file, its configuration, weight views and
// the kernel table. Immutable after load, so one Model is shared by every
// session of every worker thread (Model::Load keeps a process-wide registry).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "model/model_config.h"
#include "model/model_weights.h"

namespace ts {

struct ModelLoadOptions {
  std::string cpu;        // kernel path override ("" = best available)
  bool prefetch = false;  // read the mapping ahead
  bool lock = false;      // mlock the tensor data
  GgufLoadMode load_mode = GgufLoadMode::Map;  // Read: a heap copy (ablation of the mapping)
};

class Model {
 public:
  // Returns the already-loaded model for the same file, kernel path and load
  // mode if one is alive anywhere in the process, else loads it. Throws EngineError.
  static std::shared_ptr<const Model> Load(const std::string& path, const ModelLoadOptions& opts);

  const GgufFile& file() const { return *file_; }
  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const Kernels& kernels() const { return kernels_; }
  uint64_t parameter_count() const { return parameter_count_; }
  const std::map<std::string, int>& tensor_type_counts() const { return tensor_type_counts_; }
  // Process-unique id of this loaded instance (shows that workers share one).
  uint64_t instance_id() const { return instance_id_; }

  Model(std::unique_ptr<GgufFile> file, CpuPath path);  // use Load()

 private:
  std::unique_ptr<GgufFile> file_;
  ModelConfig config_;
  Kernels kernels_;
  ModelWeights weights_;
  uint64_t parameter_count_ = 0;
  std::map<std::string, int> tensor_type_counts_;
  uint64_t instance_id_;
};

}  // namespace ts
