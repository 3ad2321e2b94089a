#include "model/attention_kernels.h"

#include "model/fp16.h"

#include <cmath>

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace ts {

#if defined(__x86_64__)
void AttendF16BlockedAvx512(const AttendF16Args& a);  // attention_blocked.cpp
#endif

namespace {

// ---- scalar reference ----
// Dot products of a query with F16 keys are summed the way ggml's
// ggml_vec_dot_f16 sums them on the same kind of CPU (llama.cpp's flash
// attention calls it): vector accumulators over whole steps, then the
// remainder added one by one in double. The order decides the last bit,
// and the last bit decides roundings further on (docs/llama-cpp-parity.md).
float DotF16Scalar(const float* q, const uint16_t* k, int n) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += static_cast<double>(q[i] * HalfToFloat(k[i]));
  return static_cast<float>(s);
}
float DotF32Scalar(const float* q, const float* k, int n) {
  float s = 0;
  for (int i = 0; i < n; ++i) s += q[i] * k[i];
  return s;
}
void AxpyF16Scalar(float* y, float a, const uint16_t* v, int n) {
  for (int i = 0; i < n; ++i) y[i] += a * HalfToFloat(v[i]);
}
void AxpyF32Scalar(float* y, float a, const float* v, int n) {
  for (int i = 0; i < n; ++i) y[i] += a * v[i];
}
void F32ToF16Scalar(const float* x, uint16_t* y, int n) {
  for (int i = 0; i < n; ++i) y[i] = FloatToHalf(x[i]);
}
void ScaleF16Scalar(uint16_t* y, float s, int n) {
  for (int i = 0; i < n; ++i) y[i] = FloatToHalf(HalfToFloat(y[i]) * s);
}
void MadF16Scalar(uint16_t* y, const uint16_t* v, float s, int n) {
  for (int i = 0; i < n; ++i) y[i] = FloatToHalf(std::fma(HalfToFloat(v[i]), s, HalfToFloat(y[i])));
}

#if defined(__x86_64__)
// ---- AVX2 + FMA + F16C ----
__attribute__((target("avx2,fma,f16c"))) float HsumAvx2(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}
// ggml's AVX2 build: 4 accumulators of 8 over steps of 32, reduced pairwise, then hadd.
__attribute__((target("avx2,fma,f16c"))) float DotF16Avx2(const float* q, const uint16_t* k, int n) {
  const int np = n & ~31;
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int i = 0; i < np; i += 32)
    for (int j = 0; j < 4; ++j) {
      const __m256 kv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + i + 8 * j)));
      acc[j] = _mm256_fmadd_ps(kv, _mm256_loadu_ps(q + i + 8 * j), acc[j]);
    }
  acc[0] = _mm256_add_ps(acc[0], acc[2]);
  acc[1] = _mm256_add_ps(acc[1], acc[3]);
  acc[0] = _mm256_add_ps(acc[0], acc[1]);
  const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(acc[0]), _mm256_extractf128_ps(acc[0], 1));
  const __m128 t1 = _mm_hadd_ps(t0, t0);
  double s = _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
  for (int i = np; i < n; ++i) s += static_cast<double>(q[i] * HalfToFloat(k[i]));
  return static_cast<float>(s);
}
__attribute__((target("avx2,fma,f16c"))) float DotF32Avx2(const float* q, const float* k, int n) {
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(k + i), acc);
  float s = HsumAvx2(acc);
  for (; i < n; ++i) s += q[i] * k[i];
  return s;
}
__attribute__((target("avx2,fma,f16c"))) void AxpyF16Avx2(float* y, float a, const uint16_t* v, int n) {
  const __m256 av = _mm256_set1_ps(a);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 vv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i)));
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, vv, _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += a * HalfToFloat(v[i]);
}
__attribute__((target("avx2,fma,f16c"))) void AxpyF32Avx2(float* y, float a, const float* v, int n) {
  const __m256 av = _mm256_set1_ps(a);
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(v + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * v[i];
}
__attribute__((target("avx2,fma,f16c"))) void F32ToF16Avx2(const float* x, uint16_t* y, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) y[i] = FloatToHalf(x[i]);
}
__attribute__((target("avx2,fma,f16c"))) void ScaleF16Avx2(uint16_t* y, float s, int n) {
  const __m256 sv = _mm256_set1_ps(s);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 a = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y + i)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm256_cvtps_ph(_mm256_mul_ps(a, sv), _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) y[i] = FloatToHalf(HalfToFloat(y[i]) * s);
}
__attribute__((target("avx2,fma,f16c"))) void MadF16Avx2(uint16_t* y, const uint16_t* v, float s, int n) {
  const __m256 sv = _mm256_set1_ps(s);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 a = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y + i)));
    __m256 b = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm256_cvtps_ph(_mm256_fmadd_ps(b, sv, a), _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) y[i] = FloatToHalf(std::fma(HalfToFloat(v[i]), s, HalfToFloat(y[i])));
}

// ---- AVX-512 ----
// GCC 12 flags _mm512_cvtph_ps's internal undefined register as uninitialised.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define TS_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
// ggml's AVX-512 build: 4 accumulators of 16 over steps of 64, reduced pairwise,
// then _mm512_reduce_add_ps; a head size below 64 is all remainder (double).
TS_AVX512 float DotF16Avx512(const float* q, const uint16_t* k, int n) {
  const int np = n & ~63;
  double s = 0;
  if (np > 0) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int i = 0; i < np; i += 64)
      for (int j = 0; j < 4; ++j) {
        const __m512 kv = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(k + i + 16 * j)));
        acc[j] = _mm512_fmadd_ps(kv, _mm512_loadu_ps(q + i + 16 * j), acc[j]);
      }
    acc[0] = _mm512_add_ps(acc[0], acc[2]);
    acc[1] = _mm512_add_ps(acc[1], acc[3]);
    s = _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
  }
  for (int i = np; i < n; ++i) s += static_cast<double>(q[i] * HalfToFloat(k[i]));
  return static_cast<float>(s);
}
TS_AVX512 float DotF32Avx512(const float* q, const float* k, int n) {
  __m512 acc = _mm512_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(k + i), acc);
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), _mm512_maskz_loadu_ps(m, k + i), acc);
  }
  return _mm512_reduce_add_ps(acc);
}
TS_AVX512 void AxpyF16Avx512(float* y, float a, const uint16_t* v, int n) {
  const __m512 av = _mm512_set1_ps(a);
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 vv = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + i)));
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, vv, _mm512_loadu_ps(y + i)));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    __m512 vv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, v + i));
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(av, vv, _mm512_maskz_loadu_ps(m, y + i)));
  }
}
TS_AVX512 void AxpyF32Avx512(float* y, float a, const float* v, int n) {
  const __m512 av = _mm512_set1_ps(a);
  int i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(v + i), _mm512_loadu_ps(y + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, v + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}
TS_AVX512 void ScaleF16Avx512(uint16_t* y, float s, int n) {
  const __m512 sv = _mm512_set1_ps(s);
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 a = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(y + i)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), _mm512_cvtps_ph(_mm512_mul_ps(a, sv), _MM_FROUND_TO_NEAREST_INT));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    __m512 a = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, y + i));
    _mm256_mask_storeu_epi16(y + i, m, _mm512_cvtps_ph(_mm512_mul_ps(a, sv), _MM_FROUND_TO_NEAREST_INT));
  }
}
TS_AVX512 void MadF16Avx512(uint16_t* y, const uint16_t* v, float s, int n) {
  const __m512 sv = _mm512_set1_ps(s);
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 a = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(y + i)));
    __m512 b = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + i)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), _mm512_cvtps_ph(_mm512_fmadd_ps(b, sv, a), _MM_FROUND_TO_NEAREST_INT));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    __m512 a = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, y + i));
    __m512 b = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, v + i));
    _mm256_mask_storeu_epi16(y + i, m, _mm512_cvtps_ph(_mm512_fmadd_ps(b, sv, a), _MM_FROUND_TO_NEAREST_INT));
  }
}
#undef TS_AVX512
#pragma GCC diagnostic pop
#endif  // __x86_64__

#if defined(__aarch64__)
float DotF32Neon(const float* q, const float* k, int n) {
  float32x4_t acc = vdupq_n_f32(0);
  int i = 0;
  for (; i + 4 <= n; i += 4) acc = vfmaq_f32(acc, vld1q_f32(q + i), vld1q_f32(k + i));
  float s = vaddvq_f32(acc);
  for (; i < n; ++i) s += q[i] * k[i];
  return s;
}
float DotF16Neon(const float* q, const uint16_t* k, int n) {
  float32x4_t acc = vdupq_n_f32(0);
  int i = 0;
  for (; i + 4 <= n; i += 4)
    acc = vfmaq_f32(acc, vld1q_f32(q + i), vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(k + i))));
  float s = vaddvq_f32(acc);
  for (; i < n; ++i) s += q[i] * HalfToFloat(k[i]);
  return s;
}
void AxpyF16Neon(float* y, float a, const uint16_t* v, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4)
    vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(v + i))), a));
  for (; i < n; ++i) y[i] += a * HalfToFloat(v[i]);
}
void AxpyF32Neon(float* y, float a, const float* v, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(v + i), a));
  for (; i < n; ++i) y[i] += a * v[i];
}
void MadF16Neon(uint16_t* y, const uint16_t* v, float s, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    float32x4_t a = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(y + i)));
    float32x4_t b = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(v + i)));
    vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vfmaq_n_f32(a, b, s))));
  }
  for (; i < n; ++i) y[i] = FloatToHalf(std::fma(HalfToFloat(v[i]), s, HalfToFloat(y[i])));
}
#endif

const AttentionKernels kScalar{DotF16Scalar, DotF32Scalar, AxpyF16Scalar, AxpyF32Scalar, F32ToF16Scalar,
                               ScaleF16Scalar, MadF16Scalar, nullptr};
#if defined(__x86_64__)
const AttentionKernels kAvx2{DotF16Avx2, DotF32Avx2, AxpyF16Avx2, AxpyF32Avx2, F32ToF16Avx2, ScaleF16Avx2, MadF16Avx2,
                             nullptr};
const AttentionKernels kAvx512{DotF16Avx512, DotF32Avx512, AxpyF16Avx512, AxpyF32Avx512, F32ToF16Avx2,
                               ScaleF16Avx512, MadF16Avx512, AttendF16BlockedAvx512};
#endif
#if defined(__aarch64__)
const AttentionKernels kNeon{DotF16Neon, DotF32Neon, AxpyF16Neon, AxpyF32Neon, F32ToF16Scalar, ScaleF16Scalar, MadF16Neon,
                             nullptr};
#endif

}  // namespace

const AttentionKernels& attention_kernels(CpuPath path) {
  switch (path) {
#if defined(__x86_64__)
    case CpuPath::Avx2: return kAvx2;
    case CpuPath::Avx512: return kAvx512;
#endif
#if defined(__aarch64__)
    case CpuPath::Neon: return kNeon;
#endif
    default: return kScalar;
  }
}

void attend_f16(const AttentionKernels& ak, const AttendF16Args& a, bool allow_blocked) {
  if (allow_blocked && attend_f16_is_blocked(ak, a.hd)) {
    ak.attend_f16_blocked(a);
    return;
  }
  const int hd = a.hd;
  for (int p = 0; p < a.n_pos; ++p) {
    const uint16_t* k = a.k + static_cast<size_t>(p) * a.stride;
    const uint16_t* v = a.v + static_cast<size_t>(p) * a.stride;
    for (int j = 0; j < a.span; ++j) {
      uint16_t* acc = a.acc16 + static_cast<size_t>(j) * hd;
      const float s = ak.dot_f16(a.qs + static_cast<size_t>(j) * hd, k, hd) * a.scale;
      float ms = 1.0f, vs = 1.0f;
      if (s > a.M[j]) {
        const float m_old = a.M[j];
        a.M[j] = s;
        ms = std::exp(m_old - s);
        ak.scale_f16(acc, ms, hd);
      } else {
        vs = std::exp(s - a.M[j]);
      }
      ak.mad_f16(acc, v, vs, hd);
      a.S[j] = a.S[j] * ms + vs;
    }
  }
}

}  // namespace ts
