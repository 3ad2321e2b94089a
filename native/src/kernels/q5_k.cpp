// Q5_K weights times Q8_K-quantized activations, as ggml pairs them. A
// super-block of 256 holds 8 sub-blocks of 32 with 6-bit scales and mins
// packed as in Q4_K (scale_min_k4); the low 4 bits come in 4 groups of 64 (32
// bytes whose low nibbles are sub-block 2g and high nibbles sub-block 2g + 1),
// and bit 4 of element l of sub-block j is bit j of qh[l].
// x = d * scale * q - dmin * min. The SIMD variants sum in ggml's order
// (ggml_vec_dot_q5_K_q8_K on AVX2, which llama.cpp also runs on AVX-512
// machines): per super-block 8 exact int32 lanes (lane k: the scaled products
// of bytes 4k..4k+3 of every sub-block), acc = fma(d, lanes, acc); the mins
// go into a scalar, summs = fma(-dmin * d8, sum of min * bsums, summs); the
// result is hsum(acc) + summs. Scalar reference first, then AVX2, AVX-512 and
// NEON variants.
#pragma GCC optimize("fp-contract=off")
#include <cmath>
#include <cstring>

#include "kernels/fp16.h"
#include "kernels/kernel_impl.h"
#include "kernels/simd.h"

namespace ts {
namespace kimpl {

namespace {

// ggml's get_scale_min_k4: scale and min of sub-block j (0..7).
inline void scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// The 8 scales (bytes 0..7) and 8 mins (bytes 8..15) of a super-block, all
// unpacked at once (same values as scale_min_k4 for j = 0..7).
inline void unpack_scales_mins_k4(const uint8_t* packed, uint8_t* out16) {
  constexpr uint32_t kLow6 = 0x3f3f3f3f, kLow4 = 0x0f0f0f0f, kLow2 = 0x03030303;
  uint32_t u[3], o[4];
  std::memcpy(u, packed, 12);
  o[0] = u[0] & kLow6;
  o[1] = (u[2] & kLow4) | (((u[0] >> 6) & kLow2) << 4);
  o[2] = u[1] & kLow6;
  o[3] = ((u[2] >> 4) & kLow4) | (((u[1] >> 6) & kLow2) << 4);
  std::memcpy(out16, o, 16);
}

// sum_j min_j * (bsums[2j] + bsums[2j + 1]): the mins' share of the dot (exact).
inline int mins_dot(const uint8_t* mins, const int16_t* bsums) {
  int s = 0;
  for (int j = 0; j < 8; ++j) s += mins[j] * (bsums[2 * j] + bsums[2 * j + 1]);
  return s;
}

// ---------------------------------------------------------------- scalar

// The 5-bit value of element l (0..31) of sub-block j (0..7).
inline int q5_k_value(const block_q5_K& b, int j, int l) {
  const uint8_t lo = b.qs[32 * (j / 2) + l];
  return ((j & 1) ? lo >> 4 : lo & 0x0f) | (((b.qh[l] >> j) & 1) << 4);
}

void dequantize_q5_k_scalar(const void* src, float* dst, int64_t n) {
  const block_q5_K* x = static_cast<const block_q5_K*>(src);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float min = fp16_to_fp32(x[i].dmin);
    float* y = dst + i * QK_K;
    for (int j = 0; j < 8; ++j, y += 32) {
      uint8_t sc, m;
      scale_min_k4(j, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = min * m;
      for (int l = 0; l < 32; ++l) y[l] = d1 * static_cast<float>(q5_k_value(x[i], j, l)) - m1;
    }
  }
}

float dot_q5_k_scalar(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const block_q5_K* x = reinterpret_cast<const block_q5_K*>(w);
  const block_q8_K* y = reinterpret_cast<const block_q8_K*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < cols / QK_K; ++i) {
    int sumi = 0, summ = 0;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      scale_min_k4(j, x[i].scales, &sc, &m);
      int s = 0;
      for (int l = 0; l < 32; ++l) s += q5_k_value(x[i], j, l) * y[i].qs[32 * j + l];
      sumi += sc * s;
      summ += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
    }
    sum += fp16_to_fp32(x[i].d) * y[i].d * static_cast<float>(sumi) -
           fp16_to_fp32(x[i].dmin) * y[i].d * static_cast<float>(summ);
  }
  return sum;
}

// ---------------------------------------------------------------- AVX2

#if defined(__x86_64__)

// sum_j min_j * (bsums[2j] + bsums[2j + 1]) with SIMD (exact int).
TS_AVX2 inline int mins_dot_avx2(const uint8_t* mins8, const int16_t* bsums) {
  const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bsums));
  const __m128i pair_sums = _mm_hadd_epi16(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
  const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(mins8)));
  __m128i p = _mm_madd_epi16(mins, pair_sums);
  p = _mm_hadd_epi32(p, p);
  p = _mm_hadd_epi32(p, p);
  return _mm_cvtsi128_si32(p);
}

// One weight row against B activation rows (see rows_by_tiles). Per group of
// 64 the 5-bit values of sub-blocks 2j and 2j + 1 (no saturation in maddubs:
// 31 * 127 * 2 < 2^15), scaled by madd with the int16 scale.
struct Q5_KRowAvx2 {
  template <int B>
  TS_AVX2 static void run(const uint8_t* w, const uint8_t* act, size_t act_stride, int64_t cols, float* out,
                          int64_t out_stride) {
    const block_q5_K* x = reinterpret_cast<const block_q5_K*>(w);
    const __m256i low4 = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
    __m256 acc[B];
    float summs[B];
#pragma GCC unroll 8
    for (int b = 0; b < B; ++b) {
      acc[b] = _mm256_setzero_ps();
      summs[b] = 0.0f;
    }
    for (int64_t i = 0; i < cols / QK_K; ++i) {
      alignas(16) uint8_t sm[16];
      unpack_scales_mins_k4(x[i].scales, sm);
      const float dw = _cvtsh_ss(x[i].d), mw = _cvtsh_ss(x[i].dmin);
      __m256i sumi[B];
#pragma GCC unroll 8
      for (int b = 0; b < B; ++b) {
        const block_q8_K* y = reinterpret_cast<const block_q8_K*>(act + b * act_stride) + i;
        summs[b] = std::fma(-y->d * mw, static_cast<float>(mins_dot_avx2(sm + 8, y->bsums)), summs[b]);
        sumi[b] = _mm256_setzero_si256();
      }
      __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qh));  // bits 2j, 2j+1 at 0, 1
      for (int j = 0; j < 4; ++j, hb = _mm256_srli_epi16(hb, 2)) {
        const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs + 32 * j));
        const __m256i q0 = _mm256_or_si256(_mm256_and_si256(bits, low4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), bit4));
        const __m256i q1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), low4),
                                           _mm256_and_si256(_mm256_slli_epi16(hb, 3), bit4));
        const __m256i sc0 = _mm256_set1_epi16(sm[2 * j]), sc1 = _mm256_set1_epi16(sm[2 * j + 1]);
#pragma GCC unroll 8
        for (int b = 0; b < B; ++b) {
          const int8_t* q8 = reinterpret_cast<const block_q8_K*>(act + b * act_stride)[i].qs + 64 * j;
          const __m256i p0 = _mm256_madd_epi16(sc0, _mm256_maddubs_epi16(q0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8))));
          const __m256i p1 =
              _mm256_madd_epi16(sc1, _mm256_maddubs_epi16(q1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 32))));
          sumi[b] = _mm256_add_epi32(sumi[b], _mm256_add_epi32(p0, p1));
        }
      }
#pragma GCC unroll 8
      for (int b = 0; b < B; ++b) {
        const float d = reinterpret_cast<const block_q8_K*>(act + b * act_stride)[i].d * dw;
        acc[b] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[b]), acc[b]);
      }
    }
#pragma GCC unroll 8
    for (int b = 0; b < B; ++b) out[b * out_stride] = hsum_f32x8(acc[b]) + summs[b];
  }
};

TS_AVX2 void dequantize_q5_k_avx2(const void* src, float* dst, int64_t n) {
  const block_q5_K* x = static_cast<const block_q5_K*>(src);
  const __m128i low4 = _mm_set1_epi8(0x0f), one = _mm_set1_epi8(1);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = _cvtsh_ss(x[i].d);
    const float min = _cvtsh_ss(x[i].dmin);
    alignas(16) uint8_t sm[16];
    unpack_scales_mins_k4(x[i].scales, sm);
    float* y = dst + i * QK_K;
    for (int j = 0; j < 8; ++j, y += 32) {
      const __m256 dv = _mm256_set1_ps(d * sm[j]), mv = _mm256_set1_ps(min * sm[8 + j]);
      const __m128i shift = _mm_cvtsi32_si128(j);
      for (int l = 0; l < 32; l += 8) {
        __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(x[i].qs + 32 * (j / 2) + l));
        b = (j & 1) ? _mm_and_si128(_mm_srli_epi16(b, 4), low4) : _mm_and_si128(b, low4);
        const __m128i h = _mm_and_si128(_mm_srl_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x[i].qh + l)), shift), one);
        const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_or_si128(b, _mm_slli_epi16(h, 4))));
        _mm256_storeu_ps(y + l, _mm256_sub_ps(_mm256_mul_ps(dv, v), mv));
      }
    }
  }
}

// ---------------------------------------------------------------- AVX-512

// acc += pairwise int16 products of a and b, summed into int32 lanes.
template <bool kVnni>
TS_AVX512_VNNI inline __m512i dpwssd(__m512i acc, __m512i a, __m512i b) {
  if constexpr (kVnni) {
    return _mm512_dpwssd_epi32(acc, a, b);
  } else {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
  }
}

// Two groups of 64 per 64-byte load of qs: low nibbles [L_j, L_j+1] and high
// nibbles [H_j, H_j+1] are regrouped into [L_j, H_j] and [L_j+1, H_j+1], each
// lining up with 64 contiguous activation bytes, and bit 4 comes in as a
// byte mask tested against qh (broadcast to both halves). Scales enter through
// dpwssd against int16 vectors made by one word permute of the 8 scales. The
// 16 int32 lanes fold into ggml's 8 (lane k + lane k + 8: the same bytes of
// the other sub-block), then the float work is ggml's. One weight row
// against B activation rows (see rows_by_tiles).
template <bool kVnni>
struct Q5_KRowAvx512 {
  template <int B>
  TS_AVX512_VNNI static void run(const uint8_t* w, const uint8_t* act, size_t act_stride, int64_t cols, float* out,
                                 int64_t out_stride) {
    const block_q5_K* x = reinterpret_cast<const block_q5_K*>(w);
    const __m512i low4 = _mm512_set1_epi8(0x0f), sixteen = _mm512_set1_epi8(16);
    // int16 lanes 0..15 -> scale 2j, lanes 16..31 -> scale 2j + 1
    const __m512i idx0 = _mm512_set_epi16(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                          0, 0, 0, 0, 0, 0, 0);
    // bytes 0..31 test bit 2j of qh, bytes 32..63 bit 2j + 1 (j = 0; shifted left by 2 per group)
    const __m512i sel0 = _mm512_inserti64x4(_mm512_set1_epi8(1), _mm256_set1_epi8(2), 1);
    __m256 acc[B];
    float summs[B];
    #pragma GCC unroll 8
    for (int b = 0; b < B; ++b) {
      acc[b] = _mm256_setzero_ps();
      summs[b] = 0.0f;
    }
    for (int64_t i = 0; i < cols / QK_K; ++i) {
      alignas(16) uint8_t sm[16];
      unpack_scales_mins_k4(x[i].scales, sm);
      const __m512i scales = _mm512_castsi256_si512(
          _mm256_cvtepu8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(sm))));  // lanes 0..7 scales
      const __m512i qh2 = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qh)));

      __m512i g[4], sc[4];  // the 4 groups of 64 values in activation order, and their scales
      #pragma GCC unroll 8
      for (int h = 0; h < 2; ++h) {
        const __m512i bits = _mm512_loadu_si512(x[i].qs + 64 * h);
        const __m512i lo = _mm512_and_si512(bits, low4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(bits, 4), low4);
        g[2 * h] = _mm512_shuffle_i64x2(lo, hi, _MM_SHUFFLE(1, 0, 1, 0));      // [L_j, H_j]
        g[2 * h + 1] = _mm512_shuffle_i64x2(lo, hi, _MM_SHUFFLE(3, 2, 3, 2));  // [L_j+1, H_j+1]
      }
      __m512i sel = sel0, idx = idx0;
      #pragma GCC unroll 8
      for (int j = 0; j < 4; ++j) {
        g[j] = _mm512_mask_add_epi8(g[j], _mm512_test_epi8_mask(qh2, sel), g[j], sixteen);
        sc[j] = _mm512_permutexvar_epi16(idx, scales);
        sel = _mm512_slli_epi16(sel, 2);
        idx = _mm512_add_epi16(idx, _mm512_set1_epi16(2));
      }
      const float dw = _cvtsh_ss(x[i].d), mw = _cvtsh_ss(x[i].dmin);

      #pragma GCC unroll 8
      for (int b = 0; b < B; ++b) {
        const block_q8_K* y = reinterpret_cast<const block_q8_K*>(act + b * act_stride) + i;
        summs[b] = std::fma(-y->d * mw, static_cast<float>(mins_dot_avx2(sm + 8, y->bsums)), summs[b]);
        __m512i sumi = _mm512_setzero_si512();
        sumi = dpwssd<kVnni>(sumi, _mm512_maddubs_epi16(g[0], _mm512_loadu_si512(y->qs)), sc[0]);
        sumi = dpwssd<kVnni>(sumi, _mm512_maddubs_epi16(g[1], _mm512_loadu_si512(y->qs + 64)), sc[1]);
        sumi = dpwssd<kVnni>(sumi, _mm512_maddubs_epi16(g[2], _mm512_loadu_si512(y->qs + 128)), sc[2]);
        sumi = dpwssd<kVnni>(sumi, _mm512_maddubs_epi16(g[3], _mm512_loadu_si512(y->qs + 192)), sc[3]);
        const __m256i sumi8 = _mm256_add_epi32(_mm512_castsi512_si256(sumi), _mm512_extracti64x4_epi64(sumi, 1));
        acc[b] = _mm256_fmadd_ps(_mm256_set1_ps(y->d * dw), _mm256_cvtepi32_ps(sumi8), acc[b]);
      }
    }
    #pragma GCC unroll 8
    for (int b = 0; b < B; ++b) out[b * out_stride] = hsum_f32x8(acc[b]) + summs[b];
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

float dot_q5_k_neon(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const block_q5_K* x = reinterpret_cast<const block_q5_K*>(w);
  const block_q8_K* y = reinterpret_cast<const block_q8_K*>(act);
  const uint8x16_t low4 = vdupq_n_u8(0x0f), bit4 = vdupq_n_u8(0x10);
  float sum = 0.0f;
  for (int64_t i = 0; i < cols / QK_K; ++i) {
    uint8_t sm[16];
    unpack_scales_mins_k4(x[i].scales, sm);
    const int8_t* q8 = y[i].qs;
    uint8x16_t h0 = vld1q_u8(x[i].qh), h1 = vld1q_u8(x[i].qh + 16);  // bits 2j, 2j+1 at 0, 1
    int sumi = 0;
    for (int j = 0; j < 4; ++j, q8 += 64) {
      const uint8x16_t b0 = vld1q_u8(x[i].qs + 32 * j), b1 = vld1q_u8(x[i].qs + 32 * j + 16);
      const int8x16_t l0 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(b0, low4), vandq_u8(vshlq_n_u8(h0, 4), bit4)));
      const int8x16_t l1 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(b1, low4), vandq_u8(vshlq_n_u8(h1, 4), bit4)));
      const int8x16_t u0 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(b0, 4), vandq_u8(vshlq_n_u8(h0, 3), bit4)));
      const int8x16_t u1 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(b1, 4), vandq_u8(vshlq_n_u8(h1, 3), bit4)));
      const int32x4_t lo = dot_i8x16(dot_i8x16(vdupq_n_s32(0), l0, vld1q_s8(q8)), l1, vld1q_s8(q8 + 16));
      const int32x4_t hi = dot_i8x16(dot_i8x16(vdupq_n_s32(0), u0, vld1q_s8(q8 + 32)), u1, vld1q_s8(q8 + 48));
      sumi += sm[2 * j] * vaddvq_s32(lo) + sm[2 * j + 1] * vaddvq_s32(hi);
      h0 = vshrq_n_u8(h0, 2);
      h1 = vshrq_n_u8(h1, 2);
    }
    const int summ = mins_dot(sm + 8, y[i].bsums);
    sum += fp16_to_fp32(x[i].d) * y[i].d * static_cast<float>(sumi) -
           fp16_to_fp32(x[i].dmin) * y[i].d * static_cast<float>(summ);
  }
  return sum;
}

#endif  // __aarch64__

}  // namespace

TypeKernels q5_k_kernels(PathVariant v) {
  TypeKernels k{ActFormat::Q8_K, quantize_q8_K_fn(v.path), dequantize_q5_k_scalar, rows_by_dot<dot_q5_k_scalar>};
#if defined(__x86_64__)
  if (v.path == CpuPath::Avx2 || v.path == CpuPath::Avx512) k.dequantize = dequantize_q5_k_avx2;
  if (v.path == CpuPath::Avx2) k.rows = rows_by_tiles<Q5_KRowAvx2>;
  if (v.path == CpuPath::Avx512)
    k.rows = v.vnni ? rows_by_tiles<Q5_KRowAvx512<true>> : rows_by_tiles<Q5_KRowAvx512<false>>;
#elif defined(__aarch64__)
  if (v.path == CpuPath::Neon) k.rows = rows_by_dot<dot_q5_k_neon>;
#endif
  return k;
}

}  // namespace kimpl
}  // namespace ts
