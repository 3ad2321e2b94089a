// Activation quantizers: f32 rows to the 8-bit blocks the quantized weight
// types are multiplied with (Q8_0 for Q4_0/Q8_0, Q8_K for Q4_K/Q6_K).
// Scalar reference first, SIMD variants after; every variant produces the
// same bytes as the scalar one (same formulas, round to nearest even).
// Q8_0 uses the formulas of ggml's x86 quantize_row_q8_0 (d = amax / 127,
// values scaled by 127 / amax) and Q8_K those of quantize_row_q8_K_ref, so
// the activations match llama.cpp's bit for bit.
#pragma GCC optimize("fp-contract=off")
#include <cmath>
#include <cstring>

#include "kernels/fp16.h"
#include "kernels/kernel_impl.h"
#include "kernels/simd.h"

namespace ts {
namespace kimpl {

// ---------------------------------------------------------------- scalar

void quantize_row_q8_0_scalar(const float* x, void* dst, int64_t n) {
  block_q8_0* y = static_cast<block_q8_0*>(dst);
  for (int64_t i = 0; i < n / QK8_0; ++i, x += QK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; ++j) {
      const float ax = std::fabs(x[j]);
      amax = ax > amax ? ax : amax;
    }
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;  // as ggml's SIMD quantizer (not 1 / d)
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < QK8_0; ++j) y[i].qs[j] = static_cast<int8_t>(nearest_int(x[j] * id));
  }
}

// As ggml's quantize_row_q8_K_ref: the value of largest magnitude maps to -127.
void quantize_row_q8_K_scalar(const float* x, void* dst, int64_t n) {
  block_q8_K* y = static_cast<block_q8_K*>(dst);
  for (int64_t i = 0; i < n / QK_K; ++i, x += QK_K) {
    float max = 0.0f, amax = 0.0f;
    for (int j = 0; j < QK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      y[i].d = 0.0f;
      std::memset(y[i].qs, 0, sizeof(y[i].qs));
      std::memset(y[i].bsums, 0, sizeof(y[i].bsums));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < QK_K; ++j) {
      const int v = nearest_int(iscale * x[j]);
      y[i].qs[j] = static_cast<int8_t>(v < 127 ? v : 127);
    }
    for (int j = 0; j < QK_K / 16; ++j) {
      int sum = 0;
      for (int k = 0; k < 16; ++k) sum += y[i].qs[j * 16 + k];
      y[i].bsums[j] = static_cast<int16_t>(sum);
    }
    y[i].d = 1.0f / iscale;
  }
}


// ---------------------------------------------------------------- AVX2 (also used by the AVX-512 path)

#if defined(__x86_64__)

namespace {

TS_AVX2 inline float hmax_avx2(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// 32 floats (already scaled) -> 32 int8 in order, rounded to nearest even.
TS_AVX2 inline __m256i round_pack_32(__m256 v0, __m256 v1, __m256 v2, __m256 v3) {
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(v0, kRound));
  const __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(v1, kRound));
  const __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(v2, kRound));
  const __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(v3, kRound));
  // packs work within 128-bit lanes; the final permute restores element order
  const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
  return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

TS_AVX2 void quantize_row_q8_0_avx2(const float* x, void* dst, int64_t n) {
  block_q8_0* y = static_cast<block_q8_0*>(dst);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t i = 0; i < n / QK8_0; ++i, x += QK8_0) {
    const __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    const __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    const __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v0, abs_mask), _mm256_and_ps(v1, abs_mask)),
                                   _mm256_max_ps(_mm256_and_ps(v2, abs_mask), _mm256_and_ps(v3, abs_mask)));
    const float amax = hmax_avx2(m);
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;  // as ggml's SIMD quantizer (not 1 / d)
    y[i].d = fp32_to_fp16(d);
    const __m256 s = _mm256_set1_ps(id);
    const __m256i q = round_pack_32(_mm256_mul_ps(v0, s), _mm256_mul_ps(v1, s), _mm256_mul_ps(v2, s), _mm256_mul_ps(v3, s));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs), q);
  }
}

TS_AVX2 void quantize_row_q8_K_avx2(const float* x, void* dst, int64_t n) {
  block_q8_K* y = static_cast<block_q8_K*>(dst);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t i = 0; i < n / QK_K; ++i, x += QK_K) {
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < QK_K; j += 8) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + j), abs_mask));
    const float amax = hmax_avx2(m);
    if (amax == 0.0f) {
      y[i].d = 0.0f;
      std::memset(y[i].qs, 0, sizeof(y[i].qs));
      std::memset(y[i].bsums, 0, sizeof(y[i].bsums));
      continue;
    }
    // The signed value the scalar loop keeps: the first of largest magnitude.
    int at = 0;
    for (int j = 0; j < QK_K; j += 8) {
      const int hit = _mm256_movemask_ps(
          _mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + j), abs_mask), _mm256_set1_ps(amax), _CMP_EQ_OQ));
      if (hit) {
        at = j + __builtin_ctz(static_cast<unsigned>(hit));
        break;
      }
    }
    const float iscale = -127.0f / x[at];
    const __m256 s = _mm256_set1_ps(iscale), top = _mm256_set1_ps(127.0f);
    for (int j = 0; j < QK_K; j += 32) {
      // min(127, v) before rounding equals rounding then clamping (127 is an integer)
      const __m256i q = round_pack_32(_mm256_min_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j), s), top),
                                      _mm256_min_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8), s), top),
                                      _mm256_min_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j + 16), s), top),
                                      _mm256_min_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j + 24), s), top));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs + j), q);
      // bsums of the two groups of 16: widen to int16 and add pairs down to one sum each
      const __m256i w0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q));
      const __m256i w1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1));
      const __m256i ones = _mm256_set1_epi16(1);
      const __m256i s0 = _mm256_madd_epi16(w0, ones), s1 = _mm256_madd_epi16(w1, ones);  // 8 x int32 each
      __m256i h = _mm256_hadd_epi32(s0, s1);  // [s0 pairs(2) s1 pairs(2) | s0 pairs(2) s1 pairs(2)]
      h = _mm256_hadd_epi32(h, h);
      const __m128i t = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
      y[i].bsums[j / 16] = static_cast<int16_t>(_mm_cvtsi128_si32(t));
      y[i].bsums[j / 16 + 1] = static_cast<int16_t>(_mm_extract_epi32(t, 1));
    }
    y[i].d = 1.0f / iscale;
  }
}

}  // namespace
#endif  // __x86_64__

// ---------------------------------------------------------------- NEON

#if defined(__aarch64__)
namespace {

// 32 scaled floats -> int8, round to nearest even (vcvtnq).
inline int8x16_t round_pack_16(float32x4_t a, float32x4_t b, float32x4_t c, float32x4_t d) {
  const int16x8_t lo = vcombine_s16(vqmovn_s32(vcvtnq_s32_f32(a)), vqmovn_s32(vcvtnq_s32_f32(b)));
  const int16x8_t hi = vcombine_s16(vqmovn_s32(vcvtnq_s32_f32(c)), vqmovn_s32(vcvtnq_s32_f32(d)));
  return vcombine_s8(vqmovn_s16(lo), vqmovn_s16(hi));
}

void quantize_row_q8_0_neon(const float* x, void* dst, int64_t n) {
  block_q8_0* y = static_cast<block_q8_0*>(dst);
  for (int64_t i = 0; i < n / QK8_0; ++i, x += QK8_0) {
    float32x4_t v[8];
    float32x4_t m = vdupq_n_f32(0.0f);
    for (int j = 0; j < 8; ++j) {
      v[j] = vld1q_f32(x + 4 * j);
      m = vmaxq_f32(m, vabsq_f32(v[j]));
    }
    const float amax = vmaxvq_f32(m);
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;  // as ggml's SIMD quantizer (not 1 / d)
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < 8; ++j) v[j] = vmulq_n_f32(v[j], id);
    vst1q_s8(y[i].qs, round_pack_16(v[0], v[1], v[2], v[3]));
    vst1q_s8(y[i].qs + 16, round_pack_16(v[4], v[5], v[6], v[7]));
  }
}

}  // namespace
#endif  // __aarch64__

// Q8_0N4 (for the AVX-512 Q4_0 kernel): quantize four blocks as Q8_0, then
// regroup them.
void quantize_row_q8_0n4(const float* x, void* dst, int64_t n) {
  const int64_t nb = n / QK8_0;
  Q8_0N4Group* g = static_cast<Q8_0N4Group*>(dst);
#if defined(__x86_64__)
  const QuantizeRowFn quantize = cpu_path_supported(CpuPath::Avx2) ? quantize_row_q8_0_avx2 : quantize_row_q8_0_scalar;
#else
  const QuantizeRowFn quantize = quantize_row_q8_0_scalar;
#endif
  block_q8_0 b[4];
  for (int64_t gi = 0; gi < nb / 4; ++gi, ++g, x += 4 * QK8_0) {
    quantize(x, b, 4 * QK8_0);
    for (int k = 0; k < 4; ++k) {
      std::memcpy(g->lo + 16 * k, b[k].qs, 16);
      std::memcpy(g->hi + 16 * k, b[k].qs + 16, 16);
      int sum = 0;
      for (int j = 0; j < QK8_0; ++j) sum += b[k].qs[j];
      const float d = fp16_to_fp32(b[k].d);
      for (int l = 0; l < 4; ++l) {
        g->offset[4 * k + l] = l == 0 ? -8 * sum : 0;
        g->d[4 * k + l] = d;
      }
    }
  }
  if (nb % 4) quantize(x, g, (nb % 4) * QK8_0);  // the tail as plain blocks
}

QuantizeRowFn quantize_q8_0n4_fn(CpuPath path) { return quantize_row_q8_0n4; }

// Q8_0G4 (for the AVX-512 Q8_0 kernel).
void quantize_row_q8_0g4(const float* x, void* dst, int64_t n) {
  const int64_t nb = n / QK8_0;
  Q8_0G4Group* g = static_cast<Q8_0G4Group*>(dst);
#if defined(__x86_64__)
  const QuantizeRowFn quantize = cpu_path_supported(CpuPath::Avx2) ? quantize_row_q8_0_avx2 : quantize_row_q8_0_scalar;
#else
  const QuantizeRowFn quantize = quantize_row_q8_0_scalar;
#endif
  block_q8_0 b[4];
  for (int64_t gi = 0; gi < nb / 4; ++gi, ++g, x += 4 * QK8_0) {
    quantize(x, b, 4 * QK8_0);
    for (int k = 0; k < 4; ++k) {
      std::memcpy(g->qs + 32 * k, b[k].qs, 32);
      const float d = fp16_to_fp32(b[k].d);
      for (int l = 0; l < 8; ++l) g->d[8 * k + l] = d;
    }
  }
  if (nb % 4) quantize(x, g, (nb % 4) * QK8_0);  // the tail as plain blocks
}

QuantizeRowFn quantize_q8_0g4_fn(CpuPath path) { return quantize_row_q8_0g4; }

QuantizeRowFn quantize_q8_0_fn(CpuPath path) {
  switch (path) {
#if defined(__x86_64__)
    case CpuPath::Avx2:
    case CpuPath::Avx512: return quantize_row_q8_0_avx2;
#endif
#if defined(__aarch64__)
    case CpuPath::Neon: return quantize_row_q8_0_neon;
#endif
    default: return quantize_row_q8_0_scalar;
  }
}

QuantizeRowFn quantize_q8_K_fn(CpuPath path) {
  switch (path) {
#if defined(__x86_64__)
    case CpuPath::Avx2:
    case CpuPath::Avx512: return quantize_row_q8_K_avx2;
#endif
    default: return quantize_row_q8_K_scalar;
  }
}

}  // namespace kimpl
}  // namespace ts
