// The inner loops of attention over the KV cache: dot products of a query
// head with cached keys, and weighted sums of cached values, for F16 and F32
// caches. Scalar reference plus AVX2/AVX-512 variants, chosen with the model's
// kernel path.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

namespace ts {

// One task of attention over a F16 cache: `span` query heads that share one KV
// head, against cached positions [0, n_pos). k and v point at position 0 of
// that KV head; consecutive positions are `stride` elements apart. The state
// (acc16 [span][hd] half value sums, M [span] running maxima, S [span] sums of
// weights) is set by the caller (0, -inf, 0) and left for it to normalise.
struct AttendF16Args {
  const float* qs;  // [span][hd] queries, rounded to half and widened back
  int span, hd;
  const uint16_t* k;
  const uint16_t* v;
  size_t stride;
  int n_pos;
  float scale;
  uint16_t* acc16;
  float* M;
  float* S;
};

struct AttentionKernels {
  float (*dot_f16)(const float* q, const uint16_t* k, int n);    // sum q[i] * k[i]
  float (*dot_f32)(const float* q, const float* k, int n);
  void (*axpy_f16)(float* y, float a, const uint16_t* v, int n); // y[i] += a * v[i]
  void (*axpy_f32)(float* y, float a, const float* v, int n);
  void (*f32_to_f16)(const float* x, uint16_t* y, int n);        // round to nearest even
  // Half-precision accumulator updates, as llama.cpp's CPU flash attention
  // keeps its F16 value sums: y = half(y * s); y = half(y + v * s).
  void (*scale_f16)(uint16_t* y, float s, int n);
  void (*mad_f16)(uint16_t* y, const uint16_t* v, float s, int n);
  // The same attention task fused and blocked over 16 positions at a time
  // (attention_blocked.cpp), or nullptr where the path has none. Same bits as
  // the per-position loop; it takes head sizes 64 and 128.
  void (*attend_f16_blocked)(const AttendF16Args& a);
};

const AttentionKernels& attention_kernels(CpuPath path);

// Whether attend_f16 takes the blocked kernel for this head size.
inline bool attend_f16_is_blocked(const AttentionKernels& ak, int hd) {
  return ak.attend_f16_blocked != nullptr && (hd == 64 || hd == 128);
}

// llama.cpp's CPU flash-attention order, position by position: for each key,
// the score, a new maximum rescales the half sums, then v * weight is added
// in half precision. Uses the blocked kernel when the path has one for `hd`,
// unless `allow_blocked` is false (tests compare the two).
void attend_f16(const AttentionKernels& ak, const AttendF16Args& a, bool allow_blocked = true);

// e^x for 16 floats with the bits of glibc's expf (the algorithm of
// sysdeps/ieee754/flt-32/e_expf.c, checked against every float), so the
// blocked kernel's weights equal the loop's std::exp. Exposed for its test.
void exp_f32x16_exact(const float* x, float* y, CpuPath path);

}  // namespace ts
