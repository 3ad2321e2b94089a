// Q6_K weights times Q8_K-quantized activations. A super-block of 256 in two
// halves of 128: ql holds the low 4 bits (64 bytes per half: bytes l and
// l + 32, low then high nibbles, give elements l, l + 32, l + 64, l + 96), qh
// the top 2 bits (32 bytes per half, 2 bits per element at shifts 0, 2, 4, 6
// for the same four elements); int8 scales per 16 elements; x = d * scale * (q - 32).
// Scalar reference first, then AVX2, AVX-512 and NEON variants.
#pragma GCC optimize("fp-contract=off")
#include <cstring>

#include "kernels/fp16.h"
#include "kernels/kernel_impl.h"
#include "kernels/simd.h"

namespace ts {
namespace kimpl {

namespace {

// ---------------------------------------------------------------- scalar

// The 256 signed 6-bit values (q - 32) of one super-block, in element order.
inline void unpack_q6_k(const block_q6_K& b, int8_t* q) {
  const uint8_t* ql = b.ql;
  const uint8_t* qh = b.qh;
  for (int half = 0; half < 2; ++half, ql += 64, qh += 32, q += 128) {
    for (int l = 0; l < 32; ++l) {
      q[l + 0] = static_cast<int8_t>(((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32);
      q[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32);
      q[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
      q[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
    }
  }
}

void dequantize_q6_k_scalar(const void* src, float* dst, int64_t n) {
  const block_q6_K* x = static_cast<const block_q6_K*>(src);
  int8_t q[QK_K];
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    unpack_q6_k(x[i], q);
    for (int j = 0; j < QK_K; ++j) dst[i * QK_K + j] = d * x[i].scales[j / 16] * q[j];
  }
}

float dot_q6_k_scalar(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const block_q6_K* x = reinterpret_cast<const block_q6_K*>(w);
  const block_q8_K* y = reinterpret_cast<const block_q8_K*>(act);
  int8_t q[QK_K];
  float sum = 0.0f;
  for (int64_t i = 0; i < cols / QK_K; ++i) {
    unpack_q6_k(x[i], q);
    int sumi = 0;
    for (int g = 0; g < QK_K / 16; ++g) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += q[g * 16 + l] * y[i].qs[g * 16 + l];
      sumi += x[i].scales[g] * s;
    }
    sum += fp16_to_fp32(x[i].d) * y[i].d * static_cast<float>(sumi);
  }
  return sum;
}


// ---------------------------------------------------------------- AVX2

#if defined(__x86_64__)

// The 128 unsigned 6-bit values (q, before the -32) of one half super-block
// as four registers of 32, in element order.
struct Q6Half256 {
  __m256i q[4];
};

TS_AVX2 inline Q6Half256 unpack_q6_k_half_avx2(const uint8_t* ql, const uint8_t* qh) {
  const __m256i low4 = _mm256_set1_epi8(0x0f), top2 = _mm256_set1_epi8(0x30);
  const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
  const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh));
  Q6Half256 r;
  r.q[0] = _mm256_or_si256(_mm256_and_si256(a, low4), _mm256_and_si256(_mm256_slli_epi16(h, 4), top2));
  r.q[1] = _mm256_or_si256(_mm256_and_si256(b, low4), _mm256_and_si256(_mm256_slli_epi16(h, 2), top2));
  r.q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), low4), _mm256_and_si256(h, top2));
  r.q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 4), low4),
                           _mm256_and_si256(_mm256_srli_epi16(h, 2), top2));
  return r;
}

// Summed as ggml's vec_dot_q6_K_q8_K does on x86 (int32 lane m: values
// 4m..4m+3 of every 32; one fma per super-block; ggml's horizontal sum), so
// results match llama.cpp's bit for bit.
TS_AVX2 float dot_q6_k_avx2(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const block_q6_K* x = reinterpret_cast<const block_q6_K*>(w);
  const block_q8_K* y = reinterpret_cast<const block_q8_K*>(act);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < cols / QK_K; ++i) {
    const float d = _cvtsh_ss(x[i].d) * y[i].d;
    const __m128i scales = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].scales));
    __m256i sumi = _mm256_setzero_si256();
    for (int half = 0; half < 2; ++half) {
      const Q6Half256 q = unpack_q6_k_half_avx2(x[i].ql + 64 * half, x[i].qh + 32 * half);
      const int8_t* q8 = y[i].qs + 128 * half;
      for (int k = 0; k < 4; ++k) {
        // the "- 32" per pair of products, as ggml's vec_dot_q6_K_q8_K
        const __m256i yv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 32 * k));
        const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q.q[k], yv), _mm256_maddubs_epi16(_mm256_set1_epi8(32), yv));
        // scales 8 * half + 2k (first 16 values) and + 2k + 1 (next 16), as int16
        const int s = 8 * half + 2 * k;
        const __m256i sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(
            scales, _mm_setr_epi8(s, s, s, s, s, s, s, s, s + 1, s + 1, s + 1, s + 1, s + 1, s + 1, s + 1, s + 1)));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, sc));
      }
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  }
  return hsum_f32x8(acc);
}

TS_AVX2 void dequantize_q6_k_avx2(const void* src, float* dst, int64_t n) {
  const block_q6_K* x = static_cast<const block_q6_K*>(src);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = _cvtsh_ss(x[i].d);
    for (int half = 0; half < 2; ++half) {
      const Q6Half256 q = unpack_q6_k_half_avx2(x[i].ql + 64 * half, x[i].qh + 32 * half);
      float* y = dst + i * QK_K + 128 * half;
      for (int k = 0; k < 4; ++k) {
        const __m256i v = _mm256_sub_epi8(q.q[k], _mm256_set1_epi8(32));
        for (int part = 0; part < 4; ++part) {  // 8 values each; 16 share a scale
          const __m128i bytes = part < 2 ? _mm256_castsi256_si128(v) : _mm256_extracti128_si256(v, 1);
          const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part % 2 ? _mm_srli_si128(bytes, 8) : bytes));
          const int e = 32 * k + 8 * part;
          const __m256 ds = _mm256_set1_ps(d * x[i].scales[8 * half + e / 16]);
          _mm256_storeu_ps(y + e, _mm256_mul_ps(ds, f));
        }
      }
    }
  }
}

// ---------------------------------------------------------------- AVX-512

template <bool kVnni>
TS_AVX512_VNNI inline __m512i dpwssd(__m512i acc, __m512i a, __m512i b) {
  if constexpr (kVnni) {
    return _mm512_dpwssd_epi32(acc, a, b);
  } else {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
  }
}

// Per half super-block two registers of 64 values: ql's 64 bytes give values
// 0..63 (low nibbles) and 64..127 (high nibbles); [qh, qh >> 2] gives their
// top two bits at bits 4..5 after a shift left by 4 (values 0..63) or as is
// (values 64..127). Summed as ggml's vec_dot_q6_K_q8_K does on x86, so the
// results match llama.cpp's bit for bit: the "- 32" subtracted per pair of
// products (maddubs of 32 and the activations), int32 lane m collecting
// values 4m..4m+3 of every 32 (here lanes m and m + 8 of the 512-bit sum,
// added at the end of the super-block), one fma per super-block into an
// 8-lane accumulator, ggml's horizontal sum. One weight row against B
// activation rows (see rows_by_tiles).
template <bool kVnni>
struct Q6_KRowAvx512 {
  template <int B>
  TS_AVX512_VNNI static void run(const uint8_t* w, const uint8_t* act, size_t act_stride, int64_t cols, float* out,
                                 int64_t out_stride) {
    const block_q6_K* x = reinterpret_cast<const block_q6_K*>(w);
    const __m512i low4 = _mm512_set1_epi8(0x0f), top2 = _mm512_set1_epi8(0x30), m32 = _mm512_set1_epi8(32);
    // int16 lane -> scale index: lanes 8s..8s+7 (16 values) share scale s
    const __m512i idx0 = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0,
                                          0, 0, 0, 0, 0, 0, 0);
    const __m512i four = _mm512_set1_epi16(4);
    __m256 acc[B];
#pragma GCC unroll 8
    for (int b = 0; b < B; ++b) acc[b] = _mm256_setzero_ps();
    for (int64_t i = 0; i < cols / QK_K; ++i) {
      prefetch_ahead<4, kPrefetchAheadKQuant>(x + i);  // 210 bytes a super-block
      const float dw = _cvtsh_ss(x[i].d);
      const __m512i scales =
          _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].scales))));
      __m512i q[4], sc[4];  // values 0..63, 64..127, 128..191, 192..255 and their int16 scales
#pragma GCC unroll 8
      for (int half = 0; half < 2; ++half) {
        const __m512i ql = _mm512_loadu_si512(x[i].ql + 64 * half);
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qh + 32 * half));
        const __m512i h = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
        q[2 * half] = _mm512_or_si512(_mm512_and_si512(ql, low4), _mm512_and_si512(_mm512_slli_epi16(h, 4), top2));
        q[2 * half + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4), _mm512_and_si512(h, top2));
        const __m512i idx = _mm512_add_epi16(idx0, _mm512_set1_epi16(static_cast<short>(8 * half)));
        sc[2 * half] = _mm512_permutexvar_epi16(idx, scales);
        sc[2 * half + 1] = _mm512_permutexvar_epi16(_mm512_add_epi16(idx, four), scales);
      }
#pragma GCC unroll 8
      for (int b = 0; b < B; ++b) {
        const block_q8_K* y = reinterpret_cast<const block_q8_K*>(act + b * act_stride) + i;
        __m512i sumi = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int k = 0; k < 4; ++k) {
          const __m512i yv = _mm512_loadu_si512(y->qs + 64 * k);
          const __m512i p16 = _mm512_sub_epi16(_mm512_maddubs_epi16(q[k], yv), _mm512_maddubs_epi16(m32, yv));
          sumi = dpwssd<kVnni>(sumi, p16, sc[k]);
        }
        const __m256i sumi8 = _mm256_add_epi32(_mm512_castsi512_si256(sumi), _mm512_extracti64x4_epi64(sumi, 1));
        acc[b] = _mm256_fmadd_ps(_mm256_set1_ps(y->d * dw), _mm256_cvtepi32_ps(sumi8), acc[b]);
      }
    }
#pragma GCC unroll 8
    for (int b = 0; b < B; ++b) out[b * out_stride] = hsum_f32x8(acc[b]);
  }
};

#endif  // __x86_64__

// ---------------------------------------------------------------- NEON

#if defined(__aarch64__)

inline int32x4_t dot_i8x16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
  return vdotq_s32(acc, a, b);
#else
  const int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
  const int16x8_t hi = vmull_high_s8(a, b);
  return vaddq_s32(acc, vaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)));
#endif
}

float dot_q6_k_neon(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const block_q6_K* x = reinterpret_cast<const block_q6_K*>(w);
  const block_q8_K* y = reinterpret_cast<const block_q8_K*>(act);
  const uint8x16_t low4 = vdupq_n_u8(0x0f), top2 = vdupq_n_u8(0x30);
  const int8x16_t m32 = vdupq_n_s8(32);
  float sum = 0.0f;
  for (int64_t i = 0; i < cols / QK_K; ++i) {
    int sumi = 0;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = x[i].ql + 64 * half;
      const uint8_t* qh = x[i].qh + 32 * half;
      const int8_t* q8 = y[i].qs + 128 * half;
      for (int part = 0; part < 2; ++part) {  // bytes l in [16 * part, 16 * part + 16)
        const uint8x16_t a = vld1q_u8(ql + 16 * part), b = vld1q_u8(ql + 32 + 16 * part);
        const uint8x16_t h = vld1q_u8(qh + 16 * part);
        const uint8x16_t q[4] = {
            vorrq_u8(vandq_u8(a, low4), vandq_u8(vshlq_n_u8(h, 4), top2)),
            vorrq_u8(vandq_u8(b, low4), vandq_u8(vshlq_n_u8(h, 2), top2)),
            vorrq_u8(vshrq_n_u8(a, 4), vandq_u8(h, top2)),
            vorrq_u8(vshrq_n_u8(b, 4), vandq_u8(vshrq_n_u8(h, 2), top2)),
        };
        for (int k = 0; k < 4; ++k) {  // values 32k + 16 * part .. + 16, one scale
          const int8x16_t v = vsubq_s8(vreinterpretq_s8_u8(q[k]), m32);
          const int32x4_t p = dot_i8x16(vdupq_n_s32(0), v, vld1q_s8(q8 + 32 * k + 16 * part));
          sumi += x[i].scales[8 * half + 2 * k + part] * vaddvq_s32(p);
        }
      }
    }
    sum += fp16_to_fp32(x[i].d) * y[i].d * static_cast<float>(sumi);
  }
  return sum;
}

#endif  // __aarch64__

}  // namespace

TypeKernels q6_k_kernels(PathVariant v) {
  TypeKernels k{ActFormat::Q8_K, quantize_q8_K_fn(v.path), dequantize_q6_k_scalar, rows_by_dot<dot_q6_k_scalar>};
#if defined(__x86_64__)
  if (v.path == CpuPath::Avx2 || v.path == CpuPath::Avx512) k.dequantize = dequantize_q6_k_avx2;
  if (v.path == CpuPath::Avx2) k.rows = rows_by_dot<dot_q6_k_avx2>;
  if (v.path == CpuPath::Avx512) k.rows = v.vnni ? rows_by_tiles<Q6_KRowAvx512<true>> : rows_by_tiles<Q6_KRowAvx512<false>>;
#elif defined(__aarch64__)
  if (v.path == CpuPath::Neon) k.rows = rows_by_dot<dot_q6_k_neon>;
#endif
  return k;
}

}  // namespace kimpl
}  // namespace ts
