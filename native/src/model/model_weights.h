// The model's tensors as views into the memory-mapped file (no copy of the
// matrices). Small vectors (norm weights, biases, RoPE factors) are converted
// once to f32 and owned here.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "model/model_config.h"

namespace ts {

class GgufFile;

struct LayerWeights {
  const float* attn_norm = nullptr;  // [n_embd]
  WeightMatrix wq, wk, wv, wo;       // [q_dim x n_embd], [kv_dim x n_embd] x2, [n_embd x q_dim]
  const float* bq = nullptr;         // optional biases (qwen2): [q_dim], [kv_dim], [kv_dim]
  const float* bk = nullptr;
  const float* bv = nullptr;
  const float* ffn_norm = nullptr;   // [n_embd]
  WeightMatrix w_gate, w_up, w_down; // [n_ff x n_embd] x2, [n_embd x n_ff]
};

struct ModelWeights {
  WeightMatrix token_embd;           // [n_vocab x n_embd]: row t is token t's embedding
  std::vector<LayerWeights> layers;
  const float* output_norm = nullptr;
  WeightMatrix output;               // [n_vocab x n_embd] (token_embd when tied)
  const float* rope_freqs = nullptr; // [rope_dim / 2] frequency divisors, or null
  std::vector<std::unique_ptr<float[]>> owned;  // storage of the f32 vectors above
};

// Binds every tensor the forward pass needs, checking presence, shape and type.
// Throws EngineError: GGUF_INVALID (missing or mis-shaped tensor, naming it and
// the expected shape), MODEL_UNSUPPORTED (a type the engine cannot compute).
ModelWeights BindModelWeights(const GgufFile& file, const ModelConfig& config, const Kernels& kernels);

}  // namespace ts
