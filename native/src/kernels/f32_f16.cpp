// Float weight types — F32, F16 (IEEE half) and BF16 — times f32 activations.
// Scalar reference first (accumulating in double), then the AVX2, AVX-512
// and NEON variants, each converting weights to f32 in registers.
#pragma GCC optimize("fp-contract=off")
#include <cstring>
#include <type_traits>

#include "kernels/fp16.h"
#include "kernels/kernel_impl.h"
#include "kernels/simd.h"

namespace ts {
namespace kimpl {

namespace {

// ---------------------------------------------------------------- scalar

void dequantize_f32_scalar(const void* src, float* dst, int64_t n) { std::memcpy(dst, src, n * sizeof(float)); }

void dequantize_f16_scalar(const void* src, float* dst, int64_t n) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(s[i]);
}

void dequantize_bf16_scalar(const void* src, float* dst, int64_t n) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(s[i]);
}

void fp32_to_fp16_scalar(const float* x, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp32_to_fp16(x[i]);
}

// Weights may sit at any offset in the mapping, so they are read with memcpy.
float dot_f32_scalar(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const float* x = reinterpret_cast<const float*>(act);
  double sum = 0.0;
  for (int64_t i = 0; i < cols; ++i) {
    float wi;
    std::memcpy(&wi, w + i * 4, 4);
    sum += static_cast<double>(wi) * x[i];
  }
  return static_cast<float>(sum);
}

float dot_f16_scalar(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const float* x = reinterpret_cast<const float*>(act);
  double sum = 0.0;
  for (int64_t i = 0; i < cols; ++i) {
    uint16_t h;
    std::memcpy(&h, w + i * 2, 2);
    sum += static_cast<double>(fp16_to_fp32(h)) * x[i];
  }
  return static_cast<float>(sum);
}

float dot_bf16_scalar(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const float* x = reinterpret_cast<const float*>(act);
  double sum = 0.0;
  for (int64_t i = 0; i < cols; ++i) {
    uint16_t h;
    std::memcpy(&h, w + i * 2, 2);
    sum += static_cast<double>(bf16_to_fp32(h)) * x[i];
  }
  return static_cast<float>(sum);
}


// ---------------------------------------------------------------- AVX2

#if defined(__x86_64__)

// Eight weights as f32, for each float weight type.
struct LoadF32x8 {
  TS_AVX2 static __m256 load(const uint8_t* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
  static constexpr int kBytes = 4;
};
struct LoadF16x8 {
  TS_AVX2 static __m256 load(const uint8_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static constexpr int kBytes = 2;
};
struct LoadBF16x8 {
  TS_AVX2 static __m256 load(const uint8_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  static constexpr int kBytes = 2;
};

// One weight row against B activation rows (see rows_by_tiles): each 8
// weights converted once, two accumulators per activation row (16 ymm
// registers leave no room for more at B = 4).
template <class L>
struct FloatRowAvx2 {
  template <int B>
  TS_AVX2 static void run(const uint8_t* w, const uint8_t* act, size_t act_stride, int64_t cols, float* out,
                          int64_t out_stride) {
    __m256 a0[B], a1[B];
#pragma GCC unroll 8
    for (int b = 0; b < B; ++b) a0[b] = a1[b] = _mm256_setzero_ps();
    auto x = [&](int b) { return reinterpret_cast<const float*>(act + b * act_stride); };
    int64_t i = 0;
    for (; i + 16 <= cols; i += 16) {
      const __m256 w0 = L::load(w + i * L::kBytes), w1 = L::load(w + (i + 8) * L::kBytes);
#pragma GCC unroll 8
      for (int b = 0; b < B; ++b) {
        a0[b] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x(b) + i), a0[b]);
        a1[b] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x(b) + i + 8), a1[b]);
      }
    }
    for (; i + 8 <= cols; i += 8) {
      const __m256 w0 = L::load(w + i * L::kBytes);
#pragma GCC unroll 8
      for (int b = 0; b < B; ++b) a0[b] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x(b) + i), a0[b]);
    }
    float tail[8] = {};
    for (int64_t j = i; j < cols; ++j) {  // the last < 8 weights one by one
      if (L::kBytes == 4) {
        std::memcpy(&tail[j - i], w + j * 4, 4);
      } else {
        uint16_t h;
        std::memcpy(&h, w + j * 2, 2);
        tail[j - i] = std::is_same<L, LoadF16x8>::value ? fp16_to_fp32(h) : bf16_to_fp32(h);
      }
    }
#pragma GCC unroll 8
    for (int b = 0; b < B; ++b) {
      float sum = hsum_f32x8(_mm256_add_ps(a0[b], a1[b]));
      for (int64_t j = i; j < cols; ++j) sum += tail[j - i] * x(b)[j];
      out[b * out_stride] = sum;
    }
  }
};

TS_AVX2 void dequantize_f16_avx2(const void* src, float* dst, int64_t n) {
  const uint8_t* s = static_cast<const uint8_t*>(src);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, LoadF16x8::load(s + i * 2));
  for (; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, s + i * 2, 2);
    dst[i] = fp16_to_fp32(h);
  }
}

TS_AVX2 void dequantize_bf16_avx2(const void* src, float* dst, int64_t n) {
  const uint8_t* s = static_cast<const uint8_t*>(src);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, LoadBF16x8::load(s + i * 2));
  for (; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, s + i * 2, 2);
    dst[i] = bf16_to_fp32(h);
  }
}

TS_AVX2 void fp32_to_fp16_avx2(const float* x, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; ++i) dst[i] = fp32_to_fp16(x[i]);
}

// ---------------------------------------------------------------- AVX-512

// Sixteen weights as f32 (masked: lanes outside `m` read nothing and are 0).
struct LoadF32x16 {
  TS_AVX512 static __m512 load(const uint8_t* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
  static constexpr int kBytes = 4;
};
struct LoadF16x16 {
  TS_AVX512 static __m512 load(const uint8_t* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
  static constexpr int kBytes = 2;
};
struct LoadBF16x16 {
  TS_AVX512 static __m512 load(const uint8_t* p, __mmask16 m) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
  }
  static constexpr int kBytes = 2;
};

// One weight row against B activation rows: each 16 weights are converted
// once and multiplied into B sets of 4 accumulators (see rows_by_tiles).
template <class L>
struct FloatRowAvx512 {
  template <int B>
  TS_AVX512 static void run(const uint8_t* w, const uint8_t* act, size_t act_stride, int64_t cols, float* out,
                            int64_t out_stride) {
    const __mmask16 all = 0xffff;
    __m512 a[B][4];
    #pragma GCC unroll 8
    for (int b = 0; b < B; ++b) a[b][0] = a[b][1] = a[b][2] = a[b][3] = _mm512_setzero_ps();
    auto x = [&](int b) { return reinterpret_cast<const float*>(act + b * act_stride); };
    int64_t i = 0;
    for (; i + 64 <= cols; i += 64) {
      #pragma GCC unroll 8
      for (int j = 0; j < 4; ++j) {
        const __m512 wv = L::load(w + (i + 16 * j) * L::kBytes, all);
        #pragma GCC unroll 8
        for (int b = 0; b < B; ++b) a[b][j] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x(b) + i + 16 * j), a[b][j]);
      }
    }
    for (; i < cols; i += 16) {
      const __mmask16 m = cols - i >= 16 ? all : static_cast<__mmask16>((1u << (cols - i)) - 1);
      const __m512 wv = L::load(w + i * L::kBytes, m);
      #pragma GCC unroll 8
      for (int b = 0; b < B; ++b) a[b][0] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x(b) + i), a[b][0]);
    }
    #pragma GCC unroll 8
    for (int b = 0; b < B; ++b)
      out[b * out_stride] = hsum_f32x16(_mm512_add_ps(_mm512_add_ps(a[b][0], a[b][1]), _mm512_add_ps(a[b][2], a[b][3])));
  }
};

template <class L>
TS_AVX512 void dequantize_float_avx512(const void* src, float* dst, int64_t n) {
  const uint8_t* s = static_cast<const uint8_t*>(src);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xffff : static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(dst + i, m, L::load(s + i * L::kBytes, m));
  }
}
#endif  // __x86_64__

// ---------------------------------------------------------------- NEON

#if defined(__aarch64__)
inline float32x4_t load_f16x4(const uint8_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p)))); }
inline float32x4_t load_bf16x4(const uint8_t* p) {
  return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p)), 16));
}
inline float32x4_t load_f32x4(const uint8_t* p) { return vld1q_f32(reinterpret_cast<const float*>(p)); }

template <int kBytes, float32x4_t (*Load)(const uint8_t*), float (*Scalar)(const uint8_t*)>
float dot_float_neon(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const float* x = reinterpret_cast<const float*>(act);
  float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 16 <= cols; i += 16) {
    a0 = vfmaq_f32(a0, Load(w + i * kBytes), vld1q_f32(x + i));
    a1 = vfmaq_f32(a1, Load(w + (i + 4) * kBytes), vld1q_f32(x + i + 4));
    a2 = vfmaq_f32(a2, Load(w + (i + 8) * kBytes), vld1q_f32(x + i + 8));
    a3 = vfmaq_f32(a3, Load(w + (i + 12) * kBytes), vld1q_f32(x + i + 12));
  }
  for (; i + 4 <= cols; i += 4) a0 = vfmaq_f32(a0, Load(w + i * kBytes), vld1q_f32(x + i));
  float sum = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
  for (; i < cols; ++i) sum += Scalar(w + i * kBytes) * x[i];
  return sum;
}
inline float scalar_f32(const uint8_t* p) {
  float f;
  std::memcpy(&f, p, 4);
  return f;
}
inline float scalar_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_fp32(h);
}
inline float scalar_bf16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return bf16_to_fp32(h);
}

void dequantize_f16_neon(const void* src, float* dst, int64_t n) {
  const uint8_t* s = static_cast<const uint8_t*>(src);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, load_f16x4(s + i * 2));
  for (; i < n; ++i) dst[i] = scalar_f16(s + i * 2);
}
#endif  // __aarch64__

}  // namespace

Fp16RowFn fp32_to_fp16_fn(CpuPath path) {
  switch (path) {
#if defined(__x86_64__)
    case CpuPath::Avx2:
    case CpuPath::Avx512: return fp32_to_fp16_avx2;
#endif
    default: return fp32_to_fp16_scalar;
  }
}

TypeKernels f32_kernels(PathVariant v) {
  TypeKernels k{ActFormat::F32, nullptr, dequantize_f32_scalar, rows_by_dot<dot_f32_scalar>};
#if defined(__x86_64__)
  if (v.path == CpuPath::Avx2) k.rows = rows_by_tiles<FloatRowAvx2<LoadF32x8>>;
  if (v.path == CpuPath::Avx512) k.rows = rows_by_tiles<FloatRowAvx512<LoadF32x16>>;
#elif defined(__aarch64__)
  if (v.path == CpuPath::Neon) k.rows = rows_by_dot<dot_float_neon<4, load_f32x4, scalar_f32>>;
#endif
  return k;
}

TypeKernels f16_kernels(PathVariant v) {
  TypeKernels k{ActFormat::F32, nullptr, dequantize_f16_scalar, rows_by_dot<dot_f16_scalar>};
#if defined(__x86_64__)
  if (v.path == CpuPath::Avx2) k = {ActFormat::F32, nullptr, dequantize_f16_avx2, rows_by_tiles<FloatRowAvx2<LoadF16x8>>};
  if (v.path == CpuPath::Avx512)
    k = {ActFormat::F32, nullptr, dequantize_float_avx512<LoadF16x16>, rows_by_tiles<FloatRowAvx512<LoadF16x16>>};
#elif defined(__aarch64__)
  if (v.path == CpuPath::Neon)
    k = {ActFormat::F32, nullptr, dequantize_f16_neon, rows_by_dot<dot_float_neon<2, load_f16x4, scalar_f16>>};
#endif
  return k;
}

TypeKernels bf16_kernels(PathVariant v) {
  TypeKernels k{ActFormat::F32, nullptr, dequantize_bf16_scalar, rows_by_dot<dot_bf16_scalar>};
#if defined(__x86_64__)
  if (v.path == CpuPath::Avx2) k = {ActFormat::F32, nullptr, dequantize_bf16_avx2, rows_by_tiles<FloatRowAvx2<LoadBF16x8>>};
  if (v.path == CpuPath::Avx512)
    k = {ActFormat::F32, nullptr, dequantize_float_avx512<LoadBF16x16>, rows_by_tiles<FloatRowAvx512<LoadBF16x16>>};
#elif defined(__aarch64__)
  if (v.path == CpuPath::Neon) k.rows = rows_by_dot<dot_float_neon<2, load_bf16x4, scalar_bf16>>;
#endif
  return k;
}

}  // namespace kimpl
}  // namespace ts
