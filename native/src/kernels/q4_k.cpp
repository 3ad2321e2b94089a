// Q4_K weights times Q8_K-quantized activations. A super-block of 256 holds
// 8 sub-blocks of 32 with 6-bit scales and mins (packed in 12 bytes, see
// scale_min_k4); the 4-bit quants come in 4 groups of 64: 32 bytes whose low
// nibbles are sub-block 2g and high nibbles sub-block 2g + 1.
// x = d * scale * q - dmin * min. Scalar reference first, then AVX2, AVX-512
// and NEON variants.
#pragma GCC optimize("fp-contract=off")
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

// ---------------------------------------------------------------- scalar

void dequantize_q4_k_scalar(const void* src, float* dst, int64_t n) {
  const block_q4_K* x = static_cast<const block_q4_K*>(src);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float min = fp16_to_fp32(x[i].dmin);
    const uint8_t* q = x[i].qs;
    float* y = dst + i * QK_K;
    for (int g = 0; g < 4; ++g, q += 32, y += 64) {
      uint8_t sc, m;
      scale_min_k4(2 * g, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = min * m;
      scale_min_k4(2 * g + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = min * m;
      for (int l = 0; l < 32; ++l) y[l] = d1 * (q[l] & 0x0f) - m1;
      for (int l = 0; l < 32; ++l) y[l + 32] = d2 * (q[l] >> 4) - m2;
    }
  }
}

float dot_q4_k_scalar(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const block_q4_K* x = reinterpret_cast<const block_q4_K*>(w);
  const block_q8_K* y = reinterpret_cast<const block_q8_K*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < cols / QK_K; ++i) {
    const uint8_t* q = x[i].qs;
    const int8_t* q8 = y[i].qs;
    int sumi = 0, summ = 0;
    for (int g = 0; g < 4; ++g, q += 32, q8 += 64) {
      for (int h = 0; h < 2; ++h) {
        uint8_t sc, m;
        scale_min_k4(2 * g + h, x[i].scales, &sc, &m);
        int s = 0;
        for (int l = 0; l < 32; ++l) s += (h ? q[l] >> 4 : q[l] & 0x0f) * q8[h * 32 + l];
        sumi += sc * s;
        summ += m * (y[i].bsums[(2 * g + h) * 2] + y[i].bsums[(2 * g + h) * 2 + 1]);
      }
    }
    sum += fp16_to_fp32(x[i].d) * y[i].d * static_cast<float>(sumi) -
           fp16_to_fp32(x[i].dmin) * y[i].d * static_cast<float>(summ);
  }
  return sum;
}


// The 8 scales (bytes 0..7) and 8 mins (bytes 8..15) of a super-block, all
// unpacked at once (same values as scale_min_k4 for j = 0..7).
inline void unpack_scales_mins_k4(const uint8_t* packed, uint8_t* out16) {
  constexpr uint32_t kLow6 = 0x3f3f3f3f, kLow4 = 0x0f0f0f0f, kLow2 = 0x03030303;
  uint32_t u[3], o[4];
  std::memcpy(u, packed, 12);
  o[0] = u[0] & kLow6;                                  // scales 0..3
  o[1] = (u[2] & kLow4) | (((u[0] >> 6) & kLow2) << 4);  // scales 4..7
  o[2] = u[1] & kLow6;                                  // mins 0..3
  o[3] = ((u[2] >> 4) & kLow4) | (((u[1] >> 6) & kLow2) << 4);  // mins 4..7
  std::memcpy(out16, o, 16);
}

// sum_j min_j * (bsums[2j] + bsums[2j + 1]): the mins' share of the dot.
inline int q4_k_mins_dot(const uint8_t* mins, const int16_t* bsums) {
  int s = 0;
  for (int j = 0; j < 8; ++j) s += mins[j] * (bsums[2 * j] + bsums[2 * j + 1]);
  return s;
}

// ---------------------------------------------------------------- AVX2

#if defined(__x86_64__)

TS_AVX2 float dot_q4_k_avx2(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const block_q4_K* x = reinterpret_cast<const block_q4_K*>(w);
  const block_q8_K* y = reinterpret_cast<const block_q8_K*>(act);
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  __m256 acc = _mm256_setzero_ps();
  __m128 acc_m = _mm_setzero_ps();
  for (int64_t i = 0; i < cols / QK_K; ++i) {
    const float d = y[i].d * _cvtsh_ss(x[i].d);
    const float dmin = y[i].d * _cvtsh_ss(x[i].dmin);
    alignas(16) uint8_t sm[16];
    unpack_scales_mins_k4(x[i].scales, sm);

    // mins: 8 x int16 mins times the 8 pair sums of bsums
    const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].bsums));
    const __m128i pair_sums = _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
    const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sm + 8)));
    acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(_mm_madd_epi16(mins, pair_sums)), acc_m);

    __m256i sumi = _mm256_setzero_si256();
    const uint8_t* q4 = x[i].qs;
    const int8_t* q8 = y[i].qs;
    for (int j = 0; j < 4; ++j, q4 += 32, q8 += 64) {
      const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q4));
      const __m256i lo = _mm256_and_si256(bits, low4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), low4);
      __m256i p_lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8)));
      __m256i p_hi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 32)));
      p_lo = _mm256_madd_epi16(_mm256_set1_epi16(sm[2 * j]), p_lo);
      p_hi = _mm256_madd_epi16(_mm256_set1_epi16(sm[2 * j + 1]), p_hi);
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  }
  __m128 m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
  m = _mm_add_ss(m, _mm_movehdup_ps(m));
  return hsum_f32x8(acc) - _mm_cvtss_f32(m);
}

TS_AVX2 void dequantize_q4_k_avx2(const void* src, float* dst, int64_t n) {
  const block_q4_K* x = static_cast<const block_q4_K*>(src);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = _cvtsh_ss(x[i].d);
    const float min = _cvtsh_ss(x[i].dmin);
    alignas(16) uint8_t sm[16];
    unpack_scales_mins_k4(x[i].scales, sm);
    const uint8_t* q = x[i].qs;
    float* y = dst + i * QK_K;
    for (int g = 0; g < 4; ++g, q += 32, y += 64) {
      for (int h = 0; h < 2; ++h) {
        const __m256 dv = _mm256_set1_ps(d * sm[2 * g + h]), mv = _mm256_set1_ps(min * sm[8 + 2 * g + h]);
        for (int l = 0; l < 32; l += 8) {
          __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + l));
          b = h ? _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0f)) : _mm_and_si128(b, _mm_set1_epi8(0x0f));
          const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
          _mm256_storeu_ps(y + 32 * h + l, _mm256_sub_ps(_mm256_mul_ps(dv, v), mv));
        }
      }
    }
  }
}

// ---------------------------------------------------------------- AVX-512

// unpack_scales_mins_k4 in registers (the scalar version's 16-byte result,
// stored and reloaded as a vector, stalled on store forwarding):
// 32-bit lanes [u0 & 63.., (u2 & 15..) | (u0 >> 6 & 3..) << 4, u1 & 63.., (u2 >> 4 & 15..) | (u1 >> 6 & 3..) << 4].
TS_AVX512_VNNI inline __m128i unpack_scales_mins_k4_sse(const uint8_t* packed) {
  uint32_t u2;
  std::memcpy(&u2, packed + 8, 4);
  const __m128i u = _mm_insert_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(packed)), static_cast<int>(u2), 2);
  const __m128i x = _mm_srlv_epi32(_mm_shuffle_epi32(u, _MM_SHUFFLE(2, 1, 2, 0)), _mm_set_epi32(4, 0, 0, 0));  // u0 u2 u1 u2>>4
  const __m128i y = _mm_shuffle_epi32(u, _MM_SHUFFLE(1, 1, 0, 0));                                             // u0 u0 u1 u1
  const __m128i even = _mm_and_si128(x, _mm_set1_epi8(0x3f));
  const __m128i odd = _mm_or_si128(_mm_and_si128(x, _mm_set1_epi8(0x0f)),
                                   _mm_slli_epi32(_mm_and_si128(_mm_srli_epi32(y, 6), _mm_set1_epi8(0x03)), 4));
  return _mm_blend_epi32(even, odd, 0xA);
}

// acc += pairwise int16 products of a and b, summed into int32 lanes.
template <bool kVnni>
TS_AVX512_VNNI inline __m512i dpwssd(__m512i acc, __m512i a, __m512i b) {
  if constexpr (kVnni) {
    return _mm512_dpwssd_epi32(acc, a, b);
  } else {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
  }
}

// Two 64-value groups per step: one 64-byte load holds groups j and j + 1;
// their low nibbles [L_j, L_j+1] and high nibbles [H_j, H_j+1] are regrouped
// into [L_j, H_j] and [L_j+1, H_j+1], each lining up with 64 contiguous
// activation bytes. Scales enter through dpwssd against int16 vectors made
// by one word permute of the 8 scales; the mins through bsums once per
// super-block. One weight row against B activation rows (see rows_by_tiles).
template <bool kVnni>
struct Q4_KRowAvx512 {
  template <int B>
  TS_AVX512_VNNI static void run(const uint8_t* w, const uint8_t* act, size_t act_stride, int64_t cols, float* out,
                                 int64_t out_stride) {
    const block_q4_K* x = reinterpret_cast<const block_q4_K*>(w);
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    // int16 lanes 0..15 -> scale 2g, lanes 16..31 -> scale 2g + 1 (g = 0 .. 3)
    const __m512i idx0 = _mm512_set_epi16(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                          0, 0, 0, 0, 0, 0, 0);
    const __m512i two = _mm512_set1_epi16(2);
    const __m512i idx1 = _mm512_add_epi16(idx0, two), idx2 = _mm512_add_epi16(idx1, two),
                  idx3 = _mm512_add_epi16(idx2, two);
    __m512 acc[B];
    __m128 acc_m[B];
    #pragma GCC unroll 8
    for (int b = 0; b < B; ++b) {
      acc[b] = _mm512_setzero_ps();
      acc_m[b] = _mm_setzero_ps();
    }
    for (int64_t i = 0; i < cols / QK_K; ++i) {
      prefetch_ahead<3, kPrefetchAheadKQuant>(x + i);  // 144 bytes a super-block
      uint32_t dd;  // the weights' [d, dmin]
      std::memcpy(&dd, &x[i].d, 4);
      const __m128 dmins_w = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(dd)));

      const __m128i sm16 = unpack_scales_mins_k4_sse(x[i].scales);
      const __m512i scales = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(sm16));  // lanes 0..7 scales, 8..15 mins
      const __m128i mins = _mm_cvtepu8_epi16(_mm_srli_si128(sm16, 8));
      const __m512i sc0 = _mm512_permutexvar_epi16(idx0, scales), sc1 = _mm512_permutexvar_epi16(idx1, scales);
      const __m512i sc2 = _mm512_permutexvar_epi16(idx2, scales), sc3 = _mm512_permutexvar_epi16(idx3, scales);

      __m512i g[4];  // the 4 groups of 64 values, in activation order
      #pragma GCC unroll 8
      for (int h = 0; h < 2; ++h) {
        const __m512i bits = _mm512_loadu_si512(x[i].qs + 64 * h);
        const __m512i lo = _mm512_and_si512(bits, low4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(bits, 4), low4);
        g[2 * h] = _mm512_shuffle_i64x2(lo, hi, _MM_SHUFFLE(1, 0, 1, 0));      // [L_j, H_j]
        g[2 * h + 1] = _mm512_shuffle_i64x2(lo, hi, _MM_SHUFFLE(3, 2, 3, 2));  // [L_j+1, H_j+1]
      }

      #pragma GCC unroll 8

      for (int b = 0; b < B; ++b) {
        const block_q8_K* y = reinterpret_cast<const block_q8_K*>(act + b * act_stride) + i;
        const __m128 dmins = _mm_mul_ps(dmins_w, _mm_set1_ps(y->d));  // [d, dmin] of the products
        // mins: 8 mins times the pair sums of bsums
        const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y->bsums));
        const __m128i pair_sums = _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
        acc_m[b] = _mm_fmadd_ps(_mm_shuffle_ps(dmins, dmins, 0x55), _mm_cvtepi32_ps(_mm_madd_epi16(mins, pair_sums)),
                                acc_m[b]);
        __m512i sumi = _mm512_setzero_si512();
        sumi = dpwssd<kVnni>(sumi, _mm512_maddubs_epi16(g[0], _mm512_loadu_si512(y->qs)), sc0);
        sumi = dpwssd<kVnni>(sumi, _mm512_maddubs_epi16(g[1], _mm512_loadu_si512(y->qs + 64)), sc1);
        sumi = dpwssd<kVnni>(sumi, _mm512_maddubs_epi16(g[2], _mm512_loadu_si512(y->qs + 128)), sc2);
        sumi = dpwssd<kVnni>(sumi, _mm512_maddubs_epi16(g[3], _mm512_loadu_si512(y->qs + 192)), sc3);
        acc[b] = _mm512_fmadd_ps(_mm512_broadcastss_ps(dmins), _mm512_cvtepi32_ps(sumi), acc[b]);
      }
    }
    #pragma GCC unroll 8
    for (int b = 0; b < B; ++b) {
      __m128 m = _mm_add_ps(acc_m[b], _mm_movehl_ps(acc_m[b], acc_m[b]));
      m = _mm_add_ss(m, _mm_movehdup_ps(m));
      out[b * out_stride] = hsum_f32x16(acc[b]) - _mm_cvtss_f32(m);
    }
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

float dot_q4_k_neon(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const block_q4_K* x = reinterpret_cast<const block_q4_K*>(w);
  const block_q8_K* y = reinterpret_cast<const block_q8_K*>(act);
  const uint8x16_t low4 = vdupq_n_u8(0x0f);
  float sum = 0.0f;
  for (int64_t i = 0; i < cols / QK_K; ++i) {
    uint8_t sm[16];
    unpack_scales_mins_k4(x[i].scales, sm);
    const uint8_t* q4 = x[i].qs;
    const int8_t* q8 = y[i].qs;
    int sumi = 0;
    for (int j = 0; j < 4; ++j, q4 += 32, q8 += 64) {
      const uint8x16_t b0 = vld1q_u8(q4), b1 = vld1q_u8(q4 + 16);
      int32x4_t lo = dot_i8x16(vdupq_n_s32(0), vreinterpretq_s8_u8(vandq_u8(b0, low4)), vld1q_s8(q8));
      lo = dot_i8x16(lo, vreinterpretq_s8_u8(vandq_u8(b1, low4)), vld1q_s8(q8 + 16));
      int32x4_t hi = dot_i8x16(vdupq_n_s32(0), vreinterpretq_s8_u8(vshrq_n_u8(b0, 4)), vld1q_s8(q8 + 32));
      hi = dot_i8x16(hi, vreinterpretq_s8_u8(vshrq_n_u8(b1, 4)), vld1q_s8(q8 + 48));
      sumi += sm[2 * j] * vaddvq_s32(lo) + sm[2 * j + 1] * vaddvq_s32(hi);
    }
    const int summ = q4_k_mins_dot(sm + 8, y[i].bsums);
    sum += fp16_to_fp32(x[i].d) * y[i].d * static_cast<float>(sumi) -
           fp16_to_fp32(x[i].dmin) * y[i].d * static_cast<float>(summ);
  }
  return sum;
}

#endif  // __aarch64__

}  // namespace

TypeKernels q4_k_kernels(PathVariant v) {
  TypeKernels k{ActFormat::Q8_K, quantize_q8_K_fn(v.path), dequantize_q4_k_scalar, rows_by_dot<dot_q4_k_scalar>};
#if defined(__x86_64__)
  if (v.path == CpuPath::Avx2 || v.path == CpuPath::Avx512) k.dequantize = dequantize_q4_k_avx2;
  if (v.path == CpuPath::Avx2) k.rows = rows_by_dot<dot_q4_k_avx2>;
  if (v.path == CpuPath::Avx512) k.rows = v.vnni ? rows_by_tiles<Q4_KRowAvx512<true>> : rows_by_tiles<Q4_KRowAvx512<false>>;
#elif defined(__aarch64__)
  if (v.path == CpuPath::Neon) k.rows = rows_by_dot<dot_q4_k_neon>;
#endif
  return k;
}

}  // namespace kimpl
}  // namespace ts
