// Q8_1 activation quantizer (what Q4_1/Q5_1 weights multiply, as in ggml):
// Q8_0's values plus the block sum s = d * sum(q) stored as fp16, which
// carries the weights' "+ m" term. As ggml's x86 quantize_row_q8_1:
// d = amax / 127, values x * (127 / amax) rounded to nearest even, s from the
// f32 d (before its rounding to fp16). Scalar reference first, then AVX2 (also
// used by the AVX-512 path) and NEON; all give the same bytes.
#pragma GCC optimize("fp-contract=off")
#include <cmath>
#include <cstring>

#include "kernels/fp16.h"
#include "kernels/kernel_impl.h"
#include "kernels/simd.h"

namespace ts {
namespace kimpl {

// ---------------------------------------------------------------- scalar

void quantize_row_q8_1_scalar(const float* x, void* dst, int64_t n) {
  block_q8_1* y = static_cast<block_q8_1*>(dst);
  for (int64_t i = 0; i < n / QK8_1; ++i, x += QK8_1) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_1; ++j) {
      const float ax = std::fabs(x[j]);
      amax = ax > amax ? ax : amax;
    }
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < QK8_1; ++j) {
      const int q = nearest_int(x[j] * id);
      y[i].qs[j] = static_cast<int8_t>(q);
      sum += q;
    }
    y[i].d = fp32_to_fp16(d);
    y[i].s = fp32_to_fp16(d * static_cast<float>(sum));
  }
}

// ---------------------------------------------------------------- AVX2

#if defined(__x86_64__)
namespace {

TS_AVX2 void quantize_row_q8_1_avx2(const float* x, void* dst, int64_t n) {
  block_q8_1* y = static_cast<block_q8_1*>(dst);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  for (int64_t i = 0; i < n / QK8_1; ++i, x += QK8_1) {
    __m256 v[4];
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_loadu_ps(x + 8 * k);
      m = _mm256_max_ps(m, _mm256_and_ps(v[k], abs_mask));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const __m256 s = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], s), kRound));
    // sum of the 32 values (exact int)
    __m256i t = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    __m128i t4 = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
    t4 = _mm_add_epi32(t4, _mm_shuffle_epi32(t4, _MM_SHUFFLE(1, 0, 3, 2)));
    t4 = _mm_add_epi32(t4, _mm_shuffle_epi32(t4, _MM_SHUFFLE(2, 3, 0, 1)));
    // packs work within 128-bit lanes; the permute restores element order
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs),
                        _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    y[i].d = fp32_to_fp16(d);
    y[i].s = fp32_to_fp16(d * static_cast<float>(_mm_cvtsi128_si32(t4)));
  }
}

}  // namespace
#endif  // __x86_64__

// ---------------------------------------------------------------- NEON

#if defined(__aarch64__)
namespace {

void quantize_row_q8_1_neon(const float* x, void* dst, int64_t n) {
  block_q8_1* y = static_cast<block_q8_1*>(dst);
  for (int64_t i = 0; i < n / QK8_1; ++i, x += QK8_1) {
    float32x4_t v[8];
    float32x4_t m = vdupq_n_f32(0.0f);
    for (int j = 0; j < 8; ++j) {
      v[j] = vld1q_f32(x + 4 * j);
      m = vmaxq_f32(m, vabsq_f32(v[j]));
    }
    const float amax = vmaxvq_f32(m);
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int32x4_t q[8];
    int32x4_t sum = vdupq_n_s32(0);
    for (int j = 0; j < 8; ++j) {
      q[j] = vcvtnq_s32_f32(vmulq_n_f32(v[j], id));  // round to nearest even
      sum = vaddq_s32(sum, q[j]);
    }
    for (int h = 0; h < 2; ++h) {
      const int16x8_t lo = vcombine_s16(vqmovn_s32(q[4 * h]), vqmovn_s32(q[4 * h + 1]));
      const int16x8_t hi = vcombine_s16(vqmovn_s32(q[4 * h + 2]), vqmovn_s32(q[4 * h + 3]));
      vst1q_s8(y[i].qs + 16 * h, vcombine_s8(vqmovn_s16(lo), vqmovn_s16(hi)));
    }
    y[i].d = fp32_to_fp16(d);
    y[i].s = fp32_to_fp16(d * static_cast<float>(vaddvq_s32(sum)));
  }
}

}  // namespace
#endif  // __aarch64__

QuantizeRowFn quantize_q8_1_fn(CpuPath path) {
  switch (path) {
#if defined(__x86_64__)
    case CpuPath::Avx2:
    case CpuPath::Avx512: return quantize_row_q8_1_avx2;
#endif
#if defined(__aarch64__)
    case CpuPath::Neon: return quantize_row_q8_1_neon;
#endif
    default: return quantize_row_q8_1_scalar;
  }
}

}  // namespace kimpl
}  // namespace ts
