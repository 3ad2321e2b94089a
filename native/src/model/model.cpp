#include "model/model.h"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <atomic>
#include <mutex>

#include "bindings/errors.h"
#include "kernels/ggml_types.h"

namespace ts {

namespace {

std::mutex g_registry_mutex;
std::atomic<uint64_t> g_next_instance_id{1};
std::map<std::string, std::weak_ptr<const Model>>& Registry() {
  static auto* registry = new std::map<std::string, std::weak_ptr<const Model>>();  // never destroyed: outlives workers
  return *registry;
}

std::string CanonicalPath(const std::string& path) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) == nullptr) return path;  // Open() reports the error
  return buf;
}

}  // namespace

Model::Model(std::unique_ptr<GgufFile> file, CpuPath path)
    : file_(std::move(file)),
      config_(ReadModelConfig(*file_)),
      kernels_(make_kernels(path)),
      instance_id_(g_next_instance_id.fetch_add(1)) {
  weights_ = BindModelWeights(*file_, config_, kernels_);
  for (const GgufTensorInfo& t : file_->tensors()) {
    parameter_count_ += static_cast<uint64_t>(t.nelements());
    tensor_type_counts_[ggml_type_traits(t.type).name] += 1;
  }
}

std::shared_ptr<const Model> Model::Load(const std::string& path, const ModelLoadOptions& opts) {
  const CpuPath cpu = select_cpu_path(opts.cpu);
  const std::string key = CanonicalPath(path) + "\n" + cpu_path_name(cpu) +
                          (opts.load_mode == GgufLoadMode::Read ? "\nread" : "");
  std::shared_ptr<const Model> model;
  {
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    for (auto it = Registry().begin(); it != Registry().end();)  // drop models nobody holds
      it = it->second.expired() ? Registry().erase(it) : std::next(it);
    auto it = Registry().find(key);
    if (it != Registry().end()) model = it->second.lock();
    if (!model) {
      model = std::make_shared<const Model>(GgufFile::Open(path, opts.load_mode), cpu);
      Registry()[key] = model;
    }
  }
  if (opts.prefetch) model->file().Prefetch();
  if (opts.lock && !model->file().Lock())
    throw EngineError("IO_ERROR", std::string("mlock of ") + path + " failed: " + std::strerror(errno) +
                                      " (raise RLIMIT_MEMLOCK or load without lock)");
  return model;
}

}  // namespace ts
