// Scalar reference and SIMD variants of the sampler's vocabulary-wide passes.
// exp uses the Cephes single-precision scheme: x = n*ln2 + r, |r| <= ln2/2,
// a degree-6 polynomial for e^r, then 2^n through the exponent bits. Relative
// error ~2 ulp, which is far below what a logprob needs.
#include "sampling/sampler_math.h"

#include <cmath>
#include <cstring>
#include <limits>

#if defined(__x86_64__) || defined(_M_X64)
// GCC 12's AVX-512 headers build some intrinsics from _mm512_undefined_*()
// and then warn about their own placeholder: not a bug in this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#define TS_SAMPLER_X86 1
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace ts {
namespace {

constexpr float kExpLo = -87.33654f;  // below this e^x is under FLT_MIN: returned as 0
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f,
                kP3 = 4.1665795894e-2f, kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;

}  // namespace

float sampler_exp_scalar(float x) {
  if (!(x >= kExpLo)) return 0.0f;  // also NaN
  if (x > 88.0f) x = 88.0f;         // the sampler only passes x <= 0; stay finite anyway
  // Round to nearest by the 1.5 * 2^23 trick (|x * log2e| < 2^22 here): it
  // needs no SSE4.1 roundss or libm call in the portable build.
  float shifted = x * kLog2e + 12582912.0f;
  float n = shifted - 12582912.0f;
  float r = x - n * kLn2Hi;
  r = r - n * kLn2Lo;
  float p = kP0;
  p = p * r + kP1;
  p = p * r + kP2;
  p = p * r + kP3;
  p = p * r + kP4;
  p = p * r + kP5;
  float y = p * r * r + r + 1.0f;
  int32_t bits;
  std::memcpy(&bits, &y, sizeof bits);
  bits += static_cast<int32_t>(n) << 23;
  std::memcpy(&y, &bits, sizeof y);
  return y;
}

namespace {

// ---------------------------------------------------------------- scalar
void max_argmax_scalar(const float* x, int n, float* max, int* argmax) {
  float m = -std::numeric_limits<float>::infinity();
  int idx = 0;
  for (int i = 0; i < n; ++i) {
    if (x[i] > m) {
      m = x[i];
      idx = i;
    }
  }
  *max = m;
  *argmax = idx;
}

float exp_block_scalar(const float* x, int n, float shift, float scale, float* out) {
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) {
    float e = sampler_exp_scalar((x[i] - shift) * scale);
    out[i] = e;
    sum += e;
  }
  return sum;
}

int find_ge_scalar(const float* x, int n, float thr) {
  for (int i = 0; i < n; ++i)
    if (x[i] >= thr) return i;
  return n;
}

#ifdef TS_SAMPLER_X86
// ---------------------------------------------------------------- AVX2
__attribute__((target("avx2,fma"))) inline __m256 exp_avx2(__m256 x) {
  const __m256 lo = _mm256_set1_ps(kExpLo);
  __m256 valid = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.0f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kP0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP5));
  __m256 y = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
  y = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(y), e));
  return _mm256_and_ps(y, valid);
}

__attribute__((target("avx2,fma"))) inline float hsum_avx2(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) void max_argmax_avx2(const float* x, int n, float* max,
                                                          int* argmax) {
  __m256 best = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  __m256i best_i = _mm256_setzero_si256();
  __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i step = _mm256_set1_epi32(8);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m256 gt = _mm256_cmp_ps(v, best, _CMP_GT_OQ);  // strict: keeps each lane's first index
    best = _mm256_blendv_ps(best, v, gt);
    best_i = _mm256_castps_si256(
        _mm256_blendv_ps(_mm256_castsi256_ps(best_i), _mm256_castsi256_ps(idx), gt));
    idx = _mm256_add_epi32(idx, step);
  }
  alignas(32) float bv[8];
  alignas(32) int32_t bi[8];
  _mm256_store_ps(bv, best);
  _mm256_store_si256(reinterpret_cast<__m256i*>(bi), best_i);
  float m = -std::numeric_limits<float>::infinity();
  int a = 0;
  for (int l = 0; l < 8; ++l) {
    if (bv[l] > m || (bv[l] == m && bi[l] < a)) {
      m = bv[l];
      a = bi[l];
    }
  }
  for (; i < n; ++i) {
    if (x[i] > m) {
      m = x[i];
      a = i;
    }
  }
  *max = m;
  *argmax = a;
}

__attribute__((target("avx2,fma"))) float exp_block_avx2(const float* x, int n, float shift,
                                                         float scale, float* out) {
  const __m256 vs = _mm256_set1_ps(shift), vk = _mm256_set1_ps(scale);
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 e = exp_avx2(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vs), vk));
    _mm256_storeu_ps(out + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  float sum = hsum_avx2(acc);
  for (; i < n; ++i) {
    float e = sampler_exp_scalar((x[i] - shift) * scale);
    out[i] = e;
    sum += e;
  }
  return sum;
}

__attribute__((target("avx2,fma"))) int find_ge_avx2(const float* x, int n, float thr) {
  const __m256 t = _mm256_set1_ps(thr);
  int i = 0;
  for (; i + 32 <= n; i += 32) {  // four vectors per test: most calls reject long runs
    __m256 a = _mm256_cmp_ps(_mm256_loadu_ps(x + i), t, _CMP_GE_OQ);
    __m256 b = _mm256_cmp_ps(_mm256_loadu_ps(x + i + 8), t, _CMP_GE_OQ);
    __m256 c = _mm256_cmp_ps(_mm256_loadu_ps(x + i + 16), t, _CMP_GE_OQ);
    __m256 d = _mm256_cmp_ps(_mm256_loadu_ps(x + i + 24), t, _CMP_GE_OQ);
    if (_mm256_movemask_ps(_mm256_or_ps(_mm256_or_ps(a, b), _mm256_or_ps(c, d))) != 0) break;
  }
  for (; i + 8 <= n; i += 8) {
    int m = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), t, _CMP_GE_OQ));
    if (m) return i + __builtin_ctz(static_cast<unsigned>(m));
  }
  for (; i < n; ++i)
    if (x[i] >= thr) return i;
  return n;
}

// ---------------------------------------------------------------- AVX-512
#define TS_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

TS_AVX512 inline __m512 exp_avx512(__m512 x) {
  const __m512 lo = _mm512_set1_ps(kExpLo);
  __mmask16 valid = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ);
  x = _mm512_min_ps(_mm512_max_ps(x, lo), _mm512_set1_ps(88.0f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kP0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP5));
  __m512 y = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  __m512i e = _mm512_slli_epi32(_mm512_cvtps_epi32(n), 23);
  y = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(y), e));
  return _mm512_maskz_mov_ps(valid, y);
}

TS_AVX512 void max_argmax_avx512(const float* x, int n, float* max, int* argmax) {
  __m512 best = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512i best_i = _mm512_setzero_si512();
  __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i step = _mm512_set1_epi32(16);
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_loadu_ps(x + i);
    __mmask16 gt = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
    best = _mm512_mask_mov_ps(best, gt, v);
    best_i = _mm512_mask_mov_epi32(best_i, gt, idx);
    idx = _mm512_add_epi32(idx, step);
  }
  if (i < n) {
    __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1);
    __m512 v = _mm512_mask_loadu_ps(best, tail, x + i);
    __mmask16 gt = _mm512_mask_cmp_ps_mask(tail, v, best, _CMP_GT_OQ);
    best = _mm512_mask_mov_ps(best, gt, v);
    best_i = _mm512_mask_mov_epi32(best_i, gt, idx);
  }
  alignas(64) float bv[16];
  alignas(64) int32_t bi[16];
  _mm512_store_ps(bv, best);
  _mm512_store_si512(bi, best_i);
  float m = -std::numeric_limits<float>::infinity();
  int a = 0;
  for (int l = 0; l < 16; ++l) {
    if (bv[l] > m || (bv[l] == m && bi[l] < a)) {
      m = bv[l];
      a = bi[l];
    }
  }
  *max = m;
  *argmax = a;
}

TS_AVX512 float exp_block_avx512(const float* x, int n, float shift, float scale, float* out) {
  const __m512 vs = _mm512_set1_ps(shift), vk = _mm512_set1_ps(scale);
  __m512 acc = _mm512_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 e = exp_avx512(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vs), vk));
    _mm512_storeu_ps(out + i, e);
    acc = _mm512_add_ps(acc, e);
  }
  if (i < n) {
    __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1);
    __m512 v = _mm512_maskz_loadu_ps(tail, x + i);
    __m512 e = _mm512_maskz_mov_ps(tail, exp_avx512(_mm512_mul_ps(_mm512_sub_ps(v, vs), vk)));
    _mm512_mask_storeu_ps(out + i, tail, e);
    acc = _mm512_add_ps(acc, e);
  }
  return _mm512_reduce_add_ps(acc);
}

TS_AVX512 int find_ge_avx512(const float* x, int n, float thr) {
  const __m512 t = _mm512_set1_ps(thr);
  int i = 0;
  for (; i + 64 <= n; i += 64) {
    __mmask16 a = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), t, _CMP_GE_OQ);
    __mmask16 b = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i + 16), t, _CMP_GE_OQ);
    __mmask16 c = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i + 32), t, _CMP_GE_OQ);
    __mmask16 d = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i + 48), t, _CMP_GE_OQ);
    if ((a | b | c | d) != 0) break;
  }
  for (; i < n; i += 16) {
    __mmask16 tail = n - i >= 16 ? static_cast<__mmask16>(0xFFFF)
                                 : static_cast<__mmask16>((1u << (n - i)) - 1);
    __m512 v = _mm512_maskz_loadu_ps(tail, x + i);
    __mmask16 m = _mm512_mask_cmp_ps_mask(tail, v, t, _CMP_GE_OQ);
    if (m) return i + __builtin_ctz(static_cast<unsigned>(m));
  }
  return n;
}
#endif  // TS_SAMPLER_X86


#if defined(__aarch64__)
// ---------------------------------------------------------------- NEON
inline float32x4_t exp_neon(float32x4_t x) {
  const float32x4_t lo = vdupq_n_f32(kExpLo);
  uint32x4_t valid = vcgeq_f32(x, lo);  // false for NaN
  x = vminq_f32(vmaxq_f32(x, lo), vdupq_n_f32(88.0f));
  float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(kLog2e)));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(kLn2Hi));
  r = vfmsq_f32(r, n, vdupq_n_f32(kLn2Lo));
  float32x4_t p = vdupq_n_f32(kP0);
  p = vfmaq_f32(vdupq_n_f32(kP1), p, r);
  p = vfmaq_f32(vdupq_n_f32(kP2), p, r);
  p = vfmaq_f32(vdupq_n_f32(kP3), p, r);
  p = vfmaq_f32(vdupq_n_f32(kP4), p, r);
  p = vfmaq_f32(vdupq_n_f32(kP5), p, r);
  float32x4_t y = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), vmulq_f32(p, r), r);
  int32x4_t e = vshlq_n_s32(vcvtq_s32_f32(n), 23);
  y = vreinterpretq_f32_s32(vaddq_s32(vreinterpretq_s32_f32(y), e));
  return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(y), valid));
}

void max_argmax_neon(const float* x, int n, float* max, int* argmax) {
  float32x4_t best = vdupq_n_f32(-std::numeric_limits<float>::infinity());
  uint32x4_t best_i = vdupq_n_u32(0);
  const uint32_t init[4] = {0, 1, 2, 3};
  uint32x4_t idx = vld1q_u32(init);
  const uint32x4_t step = vdupq_n_u32(4);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    float32x4_t v = vld1q_f32(x + i);
    uint32x4_t gt = vcgtq_f32(v, best);  // strict: keeps each lane's first index
    best = vbslq_f32(gt, v, best);
    best_i = vbslq_u32(gt, idx, best_i);
    idx = vaddq_u32(idx, step);
  }
  float bv[4];
  uint32_t bi[4];
  vst1q_f32(bv, best);
  vst1q_u32(bi, best_i);
  float m = -std::numeric_limits<float>::infinity();
  int a = 0;
  for (int l = 0; l < 4; ++l) {
    if (bv[l] > m || (bv[l] == m && static_cast<int>(bi[l]) < a)) {
      m = bv[l];
      a = static_cast<int>(bi[l]);
    }
  }
  for (; i < n; ++i) {
    if (x[i] > m) {
      m = x[i];
      a = i;
    }
  }
  *max = m;
  *argmax = a;
}

float exp_block_neon(const float* x, int n, float shift, float scale, float* out) {
  const float32x4_t vs = vdupq_n_f32(shift), vk = vdupq_n_f32(scale);
  float32x4_t acc = vdupq_n_f32(0.0f);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    float32x4_t e = exp_neon(vmulq_f32(vsubq_f32(vld1q_f32(x + i), vs), vk));
    vst1q_f32(out + i, e);
    acc = vaddq_f32(acc, e);
  }
  float sum = vaddvq_f32(acc);
  for (; i < n; ++i) {
    float e = sampler_exp_scalar((x[i] - shift) * scale);
    out[i] = e;
    sum += e;
  }
  return sum;
}

int find_ge_neon(const float* x, int n, float thr) {
  const float32x4_t t = vdupq_n_f32(thr);
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    uint32x4_t a = vcgeq_f32(vld1q_f32(x + i), t);
    uint32x4_t b = vcgeq_f32(vld1q_f32(x + i + 4), t);
    uint32x4_t c = vcgeq_f32(vld1q_f32(x + i + 8), t);
    uint32x4_t d = vcgeq_f32(vld1q_f32(x + i + 12), t);
    if (vmaxvq_u32(vorrq_u32(vorrq_u32(a, b), vorrq_u32(c, d))) != 0) break;
  }
  for (; i < n; ++i)
    if (x[i] >= thr) return i;
  return n;
}
#endif  // __aarch64__

}  // namespace

CpuPath sampler_best_path() {
#ifdef TS_SAMPLER_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("fma"))
    return CpuPath::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuPath::Avx2;
  return CpuPath::Scalar;
#elif defined(__aarch64__)
  return CpuPath::Neon;
#else
  return CpuPath::Scalar;
#endif
}

SamplerMath sampler_math_for(CpuPath path) {
#ifdef TS_SAMPLER_X86
  if (path == CpuPath::Avx512) return {max_argmax_avx512, exp_block_avx512, find_ge_avx512};
  if (path == CpuPath::Avx2) return {max_argmax_avx2, exp_block_avx2, find_ge_avx2};
#endif
#if defined(__aarch64__)
  if (path == CpuPath::Neon) return {max_argmax_neon, exp_block_neon, find_ge_neon};
#endif
  (void)path;
  return {max_argmax_scalar, exp_block_scalar, find_ge_scalar};
}

}  // namespace ts
