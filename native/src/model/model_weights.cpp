#include "model/model_weights.h"

#include "bindings/errors.h"
#include "gguf/gguf.h"
#include "kernels/ggml_types.h"

namespace ts {

namespace {

std::string ShapeStr(int64_t a, int64_t b = -1) {
  return b < 0 ? "[" + std::to_string(a) + "]" : "[" + std::to_string(a) + ", " + std::to_string(b) + "]";
}

std::string ActualShape(const GgufTensorInfo& t) {
  std::string s = "[";
  for (uint32_t i = 0; i < t.n_dims; ++i) s += (i ? ", " : "") + std::to_string(t.ne[i]);
  return s + "]";
}

class Binder {
 public:
  Binder(const GgufFile& f, const Kernels& k, ModelWeights& w) : f_(f), k_(k), w_(w) {}

  const GgufTensorInfo* Find(const std::string& name, bool required, const std::string& expected) {
    const GgufTensorInfo* t = f_.Tensor(name);
    if (!t && required)
      throw EngineError("GGUF_INVALID", "tensor " + name + " is missing (expected shape " + expected + ")");
    return t;
  }

  void CheckType(const GgufTensorInfo& t) {
    const GgmlTypeTraits& tr = ggml_type_traits(t.type);
    if (!tr.computable) {
      std::string supported;  // from the type table, so the list never goes stale
      for (uint32_t id = 0; id < GGML_TYPE_COUNT; ++id)
        if (ggml_type_traits(id).computable) supported += (supported.empty() ? "" : ", ") + std::string(ggml_type_traits(id).name);
      throw EngineError("MODEL_UNSUPPORTED", "tensor " + t.name + " has type " + tr.name + " (id " +
                                                 std::to_string(t.type) +
                                                 "), which the engine cannot compute (supported: " + supported + ")");
    }
  }

  // ne[0] = cols (contiguous), ne[1] = rows.
  WeightMatrix Matrix(const std::string& name, int64_t cols, int64_t rows) {
    const std::string expected = ShapeStr(cols, rows);
    const GgufTensorInfo* t = Find(name, true, expected);
    if (t->n_dims != 2 || t->ne[0] != cols || t->ne[1] != rows)
      throw EngineError("GGUF_INVALID",
                        "tensor " + name + " has shape " + ActualShape(*t) + ", expected " + expected);
    CheckType(*t);
    WeightMatrix m;
    m.type = t->type;
    m.data = t->data;
    m.rows = rows;
    m.cols = cols;
    m.row_bytes = ggml_row_size(t->type, cols);
    if (m.row_bytes == 0 || m.row_bytes * static_cast<uint64_t>(rows) > t->nbytes)
      throw EngineError("GGUF_INVALID", "tensor " + name + " of type " + ggml_type_traits(t->type).name +
                                            " cannot hold " + expected);
    return m;
  }

  // A 1-D tensor of n elements converted to f32; null if absent and optional.
  const float* Vector(const std::string& name, int64_t n, bool required) {
    const GgufTensorInfo* t = Find(name, required, ShapeStr(n));
    if (!t) return nullptr;
    if (t->n_dims != 1 || t->ne[0] != n)
      throw EngineError("GGUF_INVALID",
                        "tensor " + name + " has shape " + ActualShape(*t) + ", expected " + ShapeStr(n));
    CheckType(*t);
    const size_t bytes = ggml_row_size(t->type, n);
    if (bytes == 0 || bytes > t->nbytes)
      throw EngineError("GGUF_INVALID", "tensor " + name + " of type " + ggml_type_traits(t->type).name +
                                            " cannot hold " + ShapeStr(n));
    std::unique_ptr<float[]> v(new float[n]);
    k_.dequantize_row(t->type, t->data, v.get(), n);
    w_.owned.push_back(std::move(v));
    return w_.owned.back().get();
  }

 private:
  const GgufFile& f_;
  const Kernels& k_;
  ModelWeights& w_;
};

}  // namespace

ModelWeights BindModelWeights(const GgufFile& f, const ModelConfig& c, const Kernels& k) {
  ModelWeights w;
  Binder b(f, k, w);
  const int64_t E = c.n_embd;
  w.token_embd = b.Matrix("token_embd.weight", E, c.n_vocab);
  w.output_norm = b.Vector("output_norm.weight", E, true);
  w.output = c.tied_output ? w.token_embd : b.Matrix("output.weight", E, c.n_vocab);
  if (c.has_rope_freqs) w.rope_freqs = b.Vector("rope_freqs.weight", c.rope_dim / 2, true);

  w.layers.resize(static_cast<size_t>(c.n_layer));
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LayerWeights& L = w.layers[static_cast<size_t>(i)];
    L.attn_norm = b.Vector(p + "attn_norm.weight", E, true);
    L.wq = b.Matrix(p + "attn_q.weight", E, c.q_dim());
    L.wk = b.Matrix(p + "attn_k.weight", E, c.kv_dim());
    L.wv = b.Matrix(p + "attn_v.weight", E, c.kv_dim());
    L.wo = b.Matrix(p + "attn_output.weight", c.q_dim(), E);
    L.bq = b.Vector(p + "attn_q.bias", c.q_dim(), false);
    L.bk = b.Vector(p + "attn_k.bias", c.kv_dim(), false);
    L.bv = b.Vector(p + "attn_v.bias", c.kv_dim(), false);
    L.ffn_norm = b.Vector(p + "ffn_norm.weight", E, true);
    L.w_gate = b.Matrix(p + "ffn_gate.weight", E, c.n_ff);
    L.w_up = b.Matrix(p + "ffn_up.weight", E, c.n_ff);
    L.w_down = b.Matrix(p + "ffn_down.weight", c.n_ff, E);
  }
  return w;
}

}  // namespace ts
