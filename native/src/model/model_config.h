// Hyper-parameters of a llama-family model, read from GGUF metadata and the
// tensor shapes. Immutable once built.
#pragma once
#include <cstdint>
#include <string>

namespace ts {

class GgufFile;

enum class RopeType { Normal = 0, Neox = 1 };  // normal: adjacent pairs (llama); neox: halves (qwen2)
enum class Arch { Llama = 0, Qwen2 = 1 };

struct ModelConfig {
  Arch arch = Arch::Llama;
  std::string arch_name;      // "llama" | "qwen2" (the metadata key prefix)
  std::string name;           // general.name (may be empty)
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;       // key/value length per head
  int64_t n_ff = 0;
  int64_t n_vocab = 0;
  int64_t n_ctx_train = 0;
  float rms_eps = 1e-5f;
  float rope_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // 1 / rope.scaling.factor (linear scaling)
  int64_t rope_dim = 0;          // dimensions rotated per head (<= head_dim, even)
  RopeType rope_type = RopeType::Normal;
  bool tied_output = false;      // no output.weight: the LM head is token_embd.weight
  bool has_rope_freqs = false;   // rope_freqs.weight present (Llama 3 frequency factors)

  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_head_kv * head_dim; }
  const char* arch_str() const { return arch == Arch::Llama ? "llama" : "qwen2"; }
  const char* rope_type_str() const { return rope_type == RopeType::Normal ? "normal" : "neox"; }
};

// Reads and checks the configuration. Throws EngineError: MODEL_UNSUPPORTED for
// an architecture or feature the engine lacks, GGUF_INVALID for missing or
// inconsistent metadata (naming the key).
ModelConfig ReadModelConfig(const GgufFile& file);

}  // namespace ts
