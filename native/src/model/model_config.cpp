#include "model/model_config.h"

#include <cmath>

#include "bindings/errors.h"
#include "gguf/gguf.h"
#include "kernels/ggml_types.h"

namespace ts {

namespace {

std::string Key(const std::string& arch, const char* suffix) { return arch + "." + suffix; }

int64_t RequirePositive(const GgufFile& f, const std::string& key) {
  uint64_t v = f.RequireU64(key);
  if (v == 0 || v > (1u << 30))
    throw EngineError("GGUF_INVALID", "metadata " + key + " = " + std::to_string(v) + " is out of range");
  return static_cast<int64_t>(v);
}

int64_t OptionalPositive(const GgufFile& f, const std::string& key, int64_t def) {
  uint64_t v = f.GetU64(key, static_cast<uint64_t>(def));
  if (v == 0 || v > (1u << 30))
    throw EngineError("GGUF_INVALID", "metadata " + key + " = " + std::to_string(v) + " is out of range");
  return static_cast<int64_t>(v);
}

}  // namespace

ModelConfig ReadModelConfig(const GgufFile& f) {
  ModelConfig c;
  c.arch_name = f.RequireString("general.architecture");
  if (c.arch_name == "llama") {
    c.arch = Arch::Llama;
    c.rope_type = RopeType::Normal;
  } else if (c.arch_name == "qwen2") {
    c.arch = Arch::Qwen2;
    c.rope_type = RopeType::Neox;
  } else {
    throw EngineError("MODEL_UNSUPPORTED",
                      "architecture '" + c.arch_name + "' is not supported (supported: llama, qwen2)");
  }
  const std::string& a = c.arch_name;
  c.name = f.GetString("general.name", "");

  c.n_embd = RequirePositive(f, Key(a, "embedding_length"));
  c.n_layer = RequirePositive(f, Key(a, "block_count"));
  c.n_head = RequirePositive(f, Key(a, "attention.head_count"));
  c.n_head_kv = OptionalPositive(f, Key(a, "attention.head_count_kv"), c.n_head);
  c.n_ff = RequirePositive(f, Key(a, "feed_forward_length"));
  c.n_ctx_train = RequirePositive(f, Key(a, "context_length"));

  if (c.n_head % c.n_head_kv != 0)
    throw EngineError("GGUF_INVALID", "attention.head_count " + std::to_string(c.n_head) +
                                          " is not a multiple of attention.head_count_kv " +
                                          std::to_string(c.n_head_kv));
  const bool has_key_length = f.Has(Key(a, "attention.key_length"));
  if (!has_key_length && c.n_embd % c.n_head != 0)
    throw EngineError("GGUF_INVALID", "embedding_length " + std::to_string(c.n_embd) +
                                          " is not a multiple of attention.head_count " +
                                          std::to_string(c.n_head));
  c.head_dim = OptionalPositive(f, Key(a, "attention.key_length"), c.n_embd / c.n_head);
  const int64_t value_length = OptionalPositive(f, Key(a, "attention.value_length"), c.head_dim);
  if (value_length != c.head_dim)
    throw EngineError("MODEL_UNSUPPORTED", "attention.value_length " + std::to_string(value_length) +
                                               " differs from attention.key_length " +
                                               std::to_string(c.head_dim));

  const double eps = f.GetF64(Key(a, "attention.layer_norm_rms_epsilon"), 1e-5);
  if (!(eps > 0 && eps < 1))
    throw EngineError("GGUF_INVALID", "metadata " + Key(a, "attention.layer_norm_rms_epsilon") +
                                          " = " + std::to_string(eps) + " is out of range");
  c.rms_eps = static_cast<float>(eps);

  const double base = f.GetF64(Key(a, "rope.freq_base"), 10000.0);
  if (!(base > 1 && std::isfinite(base)))
    throw EngineError("GGUF_INVALID", "metadata " + Key(a, "rope.freq_base") + " = " +
                                          std::to_string(base) + " is out of range");
  c.rope_base = static_cast<float>(base);
  c.rope_dim = OptionalPositive(f, Key(a, "rope.dimension_count"), c.head_dim);
  if (c.rope_dim > c.head_dim || c.rope_dim % 2 != 0)
    throw EngineError("GGUF_INVALID", "metadata " + Key(a, "rope.dimension_count") + " = " +
                                          std::to_string(c.rope_dim) + " must be even and <= head size " +
                                          std::to_string(c.head_dim));

  // RoPE scaling: linear (the GGUF default type) divides positions by the factor.
  // Llama 3 style scaling arrives as the rope_freqs.weight tensor instead.
  const std::string scaling = f.GetString(Key(a, "rope.scaling.type"), "linear");
  if (scaling != "linear" && scaling != "none")
    throw EngineError("MODEL_UNSUPPORTED", "rope.scaling.type '" + scaling + "' is not supported (linear, none)");
  double factor = f.GetF64(Key(a, "rope.scaling.factor"), 0.0);
  if (factor == 0.0) factor = f.GetF64(Key(a, "rope.scale_linear"), 0.0);
  if (factor < 0 || !std::isfinite(factor))
    throw EngineError("GGUF_INVALID", "metadata " + Key(a, "rope.scaling.factor") + " is out of range");
  c.rope_freq_scale = (scaling == "none" || factor == 0.0) ? 1.0f : static_cast<float>(1.0 / factor);

  const GgufTensorInfo* embd = f.Tensor("token_embd.weight");
  if (!embd)
    throw EngineError("GGUF_INVALID", "tensor token_embd.weight is missing");
  if (embd->n_dims != 2 || embd->ne[0] != c.n_embd || embd->ne[1] <= 0)
    throw EngineError("GGUF_INVALID", "tensor token_embd.weight has shape [" + std::to_string(embd->ne[0]) +
                                          ", " + std::to_string(embd->ne[1]) + "], expected [" +
                                          std::to_string(c.n_embd) + ", n_vocab]");
  c.n_vocab = embd->ne[1];
  c.tied_output = f.Tensor("output.weight") == nullptr;
  c.has_rope_freqs = f.Tensor("rope_freqs.weight") != nullptr;
  return c;
}

}  // namespace ts
