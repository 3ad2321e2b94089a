// The forward pass of a batch: one pass over the weights for all entries
// (prompt chunks and decode tokens of many sequences mixed). Follows llama.cpp's
// arithmetic (RMSNorm sums in double, RoPE angles by repeated multiplication,
// softmax in f32 with a double sum) so logits agree closely with it.
#include <algorithm>
#include <cmath>
#include <limits>

#include "model/fp16.h"
#include "model/session.h"

namespace ts {

namespace {

// y = x / rms(x) * w, for one row of n.
void RmsNorm(const float* x, const float* w, float* y, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] * scale) * w[i];
}

void AddBias(float* y, const float* bias, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i) y[r * n + i] += bias[i];
}

// Rotates the first rope_dim dimensions of each of n_heads heads of one row.
void ApplyRope(float* row, const float* cs, int64_t n_heads, int64_t head_dim, int64_t rope_dim, RopeType type) {
  const int64_t half = rope_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* v = row + h * head_dim;
    for (int64_t j = 0; j < half; ++j) {
      const float c = cs[2 * j], s = cs[2 * j + 1];
      float* a = type == RopeType::Normal ? v + 2 * j : v + j;
      float* b = type == RopeType::Normal ? v + 2 * j + 1 : v + j + half;
      const float x0 = *a, x1 = *b;
      *a = x0 * c - x1 * s;
      *b = x0 * s + x1 * c;
    }
  }
}

float Silu(float x) { return x / (1.0f + std::exp(-x)); }

}  // namespace

// cos/sin of every rotated pair for each entry's position, shared by all layers.
void Session::ComputeRope(const BatchView& b) {
  const ModelConfig& c = model_->config();
  const float* ff = model_->weights().rope_freqs;
  const float theta_scale = std::pow(c.rope_base, -2.0f / static_cast<float>(c.rope_dim));
  float* out = rope_.as<float>();
  for (int i = 0; i < b.n; ++i) {
    float* cs = out + static_cast<size_t>(i) * c.rope_dim;
    float theta = static_cast<float>(b.pos[i]);
    for (int64_t j = 0; j < c.rope_dim / 2; ++j) {
      const float t = c.rope_freq_scale * (ff ? theta / ff[j] : theta);
      cs[2 * j] = std::cos(t);
      cs[2 * j + 1] = std::sin(t);
      theta *= theta_scale;
    }
  }
}

// Causal attention of each (entry, head) over its own sequence's cached
// positions [0, pos], in parallel on the pool. One pass with an online softmax,
// as llama.cpp's CPU flash attention computes it: with an F16 cache the query
// is rounded to half and the weighted value sum is kept in half precision
// (bit-level agreement with llama.cpp matters: on quantized models one
// rounding difference in an activation changes later logits by ~0.05).
// A task takes several query heads of one KV head, so each cached key and
// value row is read once for all of them; per head, the arithmetic (and its
// order) is the same whatever the grouping.
void Session::Attention(int layer, const BatchView& b) {
  const ModelConfig& c = model_->config();
  const int hd = static_cast<int>(c.head_dim);
  const int64_t q_dim = c.q_dim(), kv_dim = c.kv_dim();
  const int group = static_cast<int>(c.n_head / c.n_head_kv);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const bool f16 = kv_.type() == KvType::F16;
  const AttentionKernels& ak = attn_kernels_;
  const float* q_all = q_.as<float>();
  float* out_all = attn_.as<float>();
  const size_t stride = attn_scratch_stride_;

  // Heads per task (a divisor of the group).
  int span = group;
  if (f16 && attend_f16_is_blocked(ak, hd)) {
    // The blocked kernel's cost per (query, key) falls with the heads a task
    // interleaves (their half-sum chains overlap): measured 9.4, 6.3, 5.1 and
    // 4.3 ns for 1, 2, 3 and 4+ heads. So take the divisor whose busiest
    // thread has the least work: in SmolLM2's batch-1 decode (9 heads, groups
    // of 3, 2 threads) 3 tasks of 3 heads (2 on one thread: 30.6) beat 9 of
    // one (5 on one thread: 47).
    static constexpr double kPairCost[] = {0, 9.4, 6.3, 5.1, 4.3};
    const int64_t threads = pool_->size();
    double best = 0;
    for (int d = 1; d <= group; ++d) {
      if (group % d != 0) continue;
      const int64_t tasks = static_cast<int64_t>(b.n) * (c.n_head / d);
      const double cost = static_cast<double>((tasks + threads - 1) / threads) * d * kPairCost[d < 4 ? d : 4];
      if (d == 1 || cost <= best) {
        best = cost;
        span = d;
      }
    }
  } else {
    // The whole group, unless that leaves too few tasks to keep every thread
    // busy (then the largest divisor of the group that does not).
    while (span > 1 && static_cast<int64_t>(b.n) * (c.n_head / span) < 2 * pool_->size()) {
      int d = span - 1;
      while (group % d != 0) --d;
      span = d;
    }
  }
  const int tasks_per_entry = static_cast<int>(c.n_head) / span;

  auto task = [&](int t, int thread) {
    const int e = t / tasks_per_entry;
    const int h0 = (t % tasks_per_entry) * span;
    const int64_t g = h0 / group;
    // Per-thread scratch: [span][hd] f32 (query or f32 sum), [span][hd] f16 sum, [span] max, [span] sum.
    float* base_scratch = attn_scratch_.as<float>() + static_cast<size_t>(thread) * stride;
    float* qs = base_scratch;
    uint16_t* acc16 = reinterpret_cast<uint16_t*>(qs + static_cast<size_t>(span) * hd);
    float* M = reinterpret_cast<float*>(acc16 + static_cast<size_t>(span) * hd + (span * hd) % 2);
    float* S = M + span;
    const int n_pos = b.pos[e] + 1;
    const size_t base = kv_.Offset(layer, b.seq[e], 0) + g * hd;
    for (int j = 0; j < span; ++j) {
      M[j] = -std::numeric_limits<float>::infinity();
      S[j] = 0.0f;
    }
    if (f16) {
      for (int j = 0; j < span; ++j) {
        const float* q = q_all + e * q_dim + (h0 + j) * hd;
        uint16_t* a = acc16 + j * hd;
        ak.f32_to_f16(q, a, hd);  // the query, rounded to half, then widened back
        for (int i = 0; i < hd; ++i) qs[j * hd + i] = HalfToFloat(a[i]);
        std::fill(a, a + hd, static_cast<uint16_t>(0));
      }
      attend_f16(ak, AttendF16Args{qs, span, hd, kv_.k16(base), kv_.v16(base), static_cast<size_t>(kv_dim), n_pos, scale,
                                   acc16, M, S});
      for (int j = 0; j < span; ++j) {
        float* out = out_all + e * q_dim + (h0 + j) * hd;
        const float inv = S[j] == 0.0f ? 0.0f : 1.0f / S[j];
        for (int i = 0; i < hd; ++i) out[i] = HalfToFloat(acc16[j * hd + i]) * inv;
      }
    } else {
      float* acc = qs;  // f32 sums
      std::fill(acc, acc + static_cast<size_t>(span) * hd, 0.0f);
      for (int p = 0; p < n_pos; ++p) {
        const size_t off = base + static_cast<size_t>(p) * kv_dim;
        const float* k = kv_.k32(off);
        const float* v = kv_.v32(off);
        for (int j = 0; j < span; ++j) {
          const float s = ak.dot_f32(q_all + e * q_dim + (h0 + j) * hd, k, hd) * scale;
          float* a = acc + j * hd;
          float ms = 1.0f, vs = 1.0f;
          if (s > M[j]) {
            const float m_old = M[j];
            M[j] = s;
            ms = std::exp(m_old - s);
            for (int i = 0; i < hd; ++i) a[i] *= ms;
          } else {
            vs = std::exp(s - M[j]);
          }
          ak.axpy_f32(a, vs, v, hd);
          S[j] = S[j] * ms + vs;
        }
      }
      for (int j = 0; j < span; ++j) {
        float* out = out_all + e * q_dim + (h0 + j) * hd;
        const float inv = S[j] == 0.0f ? 0.0f : 1.0f / S[j];
        for (int i = 0; i < hd; ++i) out[i] = acc[j * hd + i] * inv;
      }
    }
  };
  pool_->parallel_for(b.n * tasks_per_entry, task);
}

void Session::Forward(const BatchView& b) {
  const ModelConfig& c = model_->config();
  const ModelWeights& w = model_->weights();
  const int n = b.n;
  const int64_t E = c.n_embd, q_dim = c.q_dim(), kv_dim = c.kv_dim(), n_ff = c.n_ff;
  float* x = x_.as<float>();
  float* xb = xb_.as<float>();
  float* proj = proj_.as<float>();
  float* q = q_.as<float>();
  float* k = k_.as<float>();
  float* v = v_.as<float>();
  float* gate = gate_.as<float>();
  float* up = up_.as<float>();
  const MatmulScratch scratch{matmul_scratch_.data(), matmul_scratch_.bytes()};
  ThreadPool& pool = *pool_;

  // Token embeddings: dequantized rows of token_embd.
  for (int i = 0; i < n; ++i) {
    const uint8_t* row = static_cast<const uint8_t*>(w.token_embd.data) + w.token_embd.row_bytes * b.token[i];
    kernels_.dequantize_row(w.token_embd.type, row, x + i * E, E);
  }
  ComputeRope(b);
  const float* rope = rope_.as<float>();

  // Which entries want logits, in batch order.
  int n_out = 0;
  for (int i = 0; i < n; ++i) {
    if (!b.want_logits[i]) continue;
    out_seq_[n_out] = b.seq[i];
    out_index_[n_out] = i;
    ++n_out;
  }
  int rows = n;  // rows of x still computed (all until the last layer's attention)

  for (int64_t l = 0; l < c.n_layer; ++l) {
    const LayerWeights& L = w.layers[l];

    // Attention block: norm, Q/K/V for the whole batch, biases, RoPE, cache, attend.
    ForRows(n, E, [&](int i) { RmsNorm(x + i * E, L.attn_norm, xb + i * E, E, c.rms_eps); });
    kernels_.matmul(pool, L.wq, xb, n, q, q_dim, scratch);
    kernels_.matmul(pool, L.wk, xb, n, k, kv_dim, scratch);
    kernels_.matmul(pool, L.wv, xb, n, v, kv_dim, scratch);
    ForRows(n, q_dim + 2 * kv_dim, [&](int i) {
      float* qi = q + i * q_dim;
      float* ki = k + i * kv_dim;
      float* vi = v + i * kv_dim;
      if (L.bq) AddBias(qi, L.bq, 1, q_dim);
      if (L.bk) AddBias(ki, L.bk, 1, kv_dim);
      if (L.bv) AddBias(vi, L.bv, 1, kv_dim);
      const float* cs = rope + static_cast<size_t>(i) * c.rope_dim;
      ApplyRope(qi, cs, c.n_head, c.head_dim, c.rope_dim, c.rope_type);
      ApplyRope(ki, cs, c.n_head_kv, c.head_dim, c.rope_dim, c.rope_type);
      const size_t off = kv_.Offset(l, b.seq[i], b.pos[i]);
      if (kv_.type() == KvType::F16) {
        attn_kernels_.f32_to_f16(ki, kv_.k16(off), static_cast<int>(kv_dim));
        attn_kernels_.f32_to_f16(vi, kv_.v16(off), static_cast<int>(kv_dim));
      } else {
        std::copy(ki, ki + kv_dim, kv_.k32(off));
        std::copy(vi, vi + kv_dim, kv_.v32(off));
      }
    });
    Attention(static_cast<int>(l), b);
    float* attn = attn_.as<float>();
    if (l == c.n_layer - 1 && rows > n_out) {
      // Past the last attention only the rows that want logits matter (their
      // keys and values are cached already): keep those, in batch order.
      for (int j = 0; j < n_out; ++j) {
        const int i = out_index_[j];  // i >= j: copying forward is safe
        std::copy(x + i * E, x + (i + 1) * E, x + j * E);
        std::copy(attn + i * q_dim, attn + (i + 1) * q_dim, attn + j * q_dim);
      }
      rows = n_out;
    }
    kernels_.matmul(pool, L.wo, attn, rows, proj, E, scratch);

    // Feed-forward block: residual, norm, SwiGLU, down projection, residual.
    ForRows(rows, E, [&](int i) {
      for (int64_t j = i * E; j < (i + 1) * E; ++j) x[j] += proj[j];
      RmsNorm(x + i * E, L.ffn_norm, xb + i * E, E, c.rms_eps);
    });
    kernels_.matmul(pool, L.w_gate, xb, rows, gate, n_ff, scratch);
    kernels_.matmul(pool, L.w_up, xb, rows, up, n_ff, scratch);
    ForRows(rows, n_ff, [&](int i) {
      for (int64_t j = i * n_ff; j < (i + 1) * n_ff; ++j) gate[j] = Silu(gate[j]) * up[j];
    });
    kernels_.matmul(pool, L.w_down, gate, rows, proj, E, scratch);
    ForRows(rows, E, [&](int i) {
      for (int64_t j = i * E; j < (i + 1) * E; ++j) x[j] += proj[j];
    });
  }

  // Final norm and LM head (x now holds the n_out rows that want logits).
  float* hidden = hidden_out_.as<float>();
  for (int j = 0; j < n_out; ++j) RmsNorm(x + j * E, w.output_norm, hidden + j * E, E, c.rms_eps);
  if (n_out > 0) kernels_.matmul(pool, w.output, hidden, n_out, logits_->as<float>(), c.n_vocab, scratch);
  n_out_ = n_out;
}

}  // namespace ts
