// Q4_1 and Q5_1 weights (blocks of 32, x = q * d + m; the 4-bit layout of
// Q4_0, and for Q5_1 bit 4 of element e in bit e of the little-endian qh)
// times Q8_1 activations, as ggml pairs them: Q8_0's values plus the block
// sum s = d_x * sum(q) as fp16 (quantize_q8_1.cpp), so a block's dot is
// d_w * d_x * sum(q_w * q_x) + m * s. The SIMD variants sum in ggml's order
// (ggml_vec_dot_q4_1_q8_1 / q5_1_q8_1 on AVX2, which llama.cpp also runs on
// AVX-512 machines): per block 8 int32 lanes of 4 products,
// acc = fma(d_w * d_x, lanes, acc) into one 8-lane accumulator, the m terms
// in a scalar chain summs = fma(m, s, summs) (ggml's C line, contracted by
// the compiler), result hsum(acc) + summs. Scalar reference first, then AVX2,
// AVX-512 and NEON variants.
#pragma GCC optimize("fp-contract=off")
#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/fp16.h"
#include "kernels/kernel_impl.h"
#include "kernels/simd.h"

namespace ts {
namespace kimpl {

namespace {

template <class Block>
constexpr bool kFive = std::is_same_v<Block, block_q5_1>;

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The block's high bits (Q5_1), 0 for Q4_1.
template <class Block>
inline uint32_t high_bits(const Block& b) {
  if constexpr (kFive<Block>) {
    return load_u32(b.qh);
  } else {
    return 0;
  }
}

// ---------------------------------------------------------------- scalar

// Unsigned value of element j (0..15) and j + 16.
template <class Block>
inline int q_1_lo(const Block& b, uint32_t qh, int j) {
  return (b.qs[j] & 0x0f) | (((qh >> j) << 4) & 0x10);
}
template <class Block>
inline int q_1_hi(const Block& b, uint32_t qh, int j) {
  return (b.qs[j] >> 4) | ((qh >> (j + 12)) & 0x10);
}

template <class Block>
void dequantize_q_1_scalar(const void* src, float* dst, int64_t n) {
  const Block* x = static_cast<const Block*>(src);
  for (int64_t i = 0; i < n / 32; ++i) {
    const float d = fp16_to_fp32(x[i].d), m = fp16_to_fp32(x[i].m);
    const uint32_t qh = high_bits(x[i]);
    for (int j = 0; j < 16; ++j) {
      dst[i * 32 + j] = static_cast<float>(q_1_lo(x[i], qh, j)) * d + m;
      dst[i * 32 + j + 16] = static_cast<float>(q_1_hi(x[i], qh, j)) * d + m;
    }
  }
}

template <class Block>
float dot_q_1_scalar(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const Block* x = reinterpret_cast<const Block*>(w);
  const block_q8_1* y = reinterpret_cast<const block_q8_1*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < cols / 32; ++i) {
    const uint32_t qh = high_bits(x[i]);
    int sumi = 0;
    for (int j = 0; j < 16; ++j) sumi += q_1_lo(x[i], qh, j) * y[i].qs[j] + q_1_hi(x[i], qh, j) * y[i].qs[j + 16];
    sum += fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d) * static_cast<float>(sumi) +
           fp16_to_fp32(x[i].m) * fp16_to_fp32(y[i].s);
  }
  return sum;
}

// ---------------------------------------------------------------- AVX2

#if defined(__x86_64__)

// 0xff in byte e where bit e of qh is set (ggml's bytes_from_bits_32).
TS_AVX2 inline __m256i bytes_from_bits_32(uint32_t qh) {
  const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
  const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(qh)), shuf);
  return _mm256_cmpeq_epi8(_mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)), _mm256_set1_epi64x(-1));
}

// The block's 32 unsigned values in element order.
template <class Block>
TS_AVX2 inline __m256i unpack_q_1_avx2(const Block& b) {
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
  const __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0f));
  if constexpr (kFive<Block>) {
    return _mm256_or_si256(nib, _mm256_and_si256(bytes_from_bits_32(load_u32(b.qh)), _mm256_set1_epi8(0x10)));
  } else {
    return nib;
  }
}

// acc += d_w * d_x * (8 int32 lanes of 4 products) for one block (no
// saturation in maddubs: 31 * 127 * 2 < 2^15); summs += m * s.
TS_AVX2 inline __m256 q_1_block_step_avx2(__m256 acc, float* summs, __m256i q, float dw, float mw,
                                          const block_q8_1& y) {
  *summs = std::fma(mw, _cvtsh_ss(y.s), *summs);
  const __m256i p = _mm256_madd_epi16(
      _mm256_maddubs_epi16(q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.qs))), _mm256_set1_epi16(1));
  return _mm256_fmadd_ps(_mm256_set1_ps(dw * _cvtsh_ss(y.d)), _mm256_cvtepi32_ps(p), acc);
}

// R weight rows against B activation rows (R * B <= 4 outputs; see
// rows_by_blocks); each output in its own accumulators, in ggml's order.
template <class Block>
struct Q_1BlockAvx2 {
  template <int R, int B>
  TS_AVX2 static void run(const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride, int64_t cols,
                          float* y, int64_t y_stride, int64_t y_row_step) {
    static_assert(R * B <= 4, "at most 4 outputs");
    __m256 acc[R * B];
    float summs[R * B];
#pragma GCC unroll 4
    for (int s = 0; s < R * B; ++s) {
      acc[s] = _mm256_setzero_ps();
      summs[s] = 0.0f;
    }
    for (int64_t i = 0; i < cols / 32; ++i) {
      // the activation side once for all R rows
      __m256i yv[B];
      float dy[B], sy[B];
#pragma GCC unroll 4
      for (int b = 0; b < B; ++b) {
        const block_q8_1& yb = reinterpret_cast<const block_q8_1*>(act + b * act_stride)[i];
        yv[b] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb.qs));
        dy[b] = _cvtsh_ss(yb.d);
        sy[b] = _cvtsh_ss(yb.s);
      }
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const Block& x = reinterpret_cast<const Block*>(w + r * w_stride)[i];
        const __m256i q = unpack_q_1_avx2(x);
        const float dw = _cvtsh_ss(x.d), mw = _cvtsh_ss(x.m);
#pragma GCC unroll 4
        for (int b = 0; b < B; ++b) {
          summs[r * B + b] = std::fma(mw, sy[b], summs[r * B + b]);
          const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, yv[b]), _mm256_set1_epi16(1));
          acc[r * B + b] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dy[b]), _mm256_cvtepi32_ps(p), acc[r * B + b]);
        }
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
      for (int b = 0; b < B; ++b) y[b * y_stride + r * y_row_step] = hsum_f32x8(acc[r * B + b]) + summs[r * B + b];
  }
};

template <class Block>
TS_AVX2 void dequantize_q_1_avx2(const void* src, float* dst, int64_t n) {
  const Block* x = static_cast<const Block*>(src);
  for (int64_t i = 0; i < n / 32; ++i, dst += 32) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[i].d)), m = _mm256_set1_ps(_cvtsh_ss(x[i].m));
    const __m256i q = unpack_q_1_avx2(x[i]);
    for (int j = 0; j < 4; ++j) {
      const __m128i part = j < 2 ? _mm256_castsi256_si128(q) : _mm256_extracti128_si256(q, 1);
      const __m256i q32 = _mm256_cvtepu8_epi32(j % 2 ? _mm_srli_si128(part, 8) : part);
      _mm256_storeu_ps(dst + 8 * j, _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q32), d), m));
    }
  }
}

// ---------------------------------------------------------------- AVX-512

// [a[0], a[1], b[0], b[1]] widened from halves (a block's d, m or d, s pair).
TS_AVX2 inline __m128 half_pairs(const uint16_t* a, const uint16_t* b) {
  uint32_t u, v;
  std::memcpy(&u, a, 4);
  std::memcpy(&v, b, 4);
  return _mm_cvtph_ps(_mm_insert_epi32(_mm_cvtsi32_si128(static_cast<int>(u)), static_cast<int>(v), 1));
}

template <bool kVnni>
TS_AVX512_VNNI inline __m512i dpbusd(__m512i acc, __m512i u, __m512i s) {
  if constexpr (kVnni) {
    return _mm512_dpbusd_epi32(acc, u, s);
  } else {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
  }
}

// Two blocks per step in one register, [block i | block i + 1] in element
// order (for Q5_1 bit 4 added through a byte mask of the two qh), one dpbusd
// against the two activation blocks' values; the 16 lanes are block i's 8
// then block i + 1's, added to the output's 8-lane accumulator block after
// block (ggml's order). R weight rows against B activation rows (see
// rows_by_blocks).
template <class Block, bool kVnni>
struct Q_1BlockAvx512 {
  template <int R, int B>
  TS_AVX512_VNNI static void run(const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride,
                                 int64_t cols, float* y, int64_t y_stride, int64_t y_row_step) {
    static_assert(R * B <= 4, "at most 4 outputs");
    const int64_t nb = cols / 32;
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256 acc[R * B];
    __m128 summs[R * B];
    #pragma GCC unroll 4
    for (int s = 0; s < R * B; ++s) {
      acc[s] = _mm256_setzero_ps();
      summs[s] = _mm_setzero_ps();
    }
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
      // the activation side once for all R rows: two blocks' values, and their
      // [d0, s0, d1, s1] widened (s0, s1 also moved to lane 0 for the scalar chain)
      __m512i yv[B];
      __m128 yds[B], ys0[B], ys1[B];
      #pragma GCC unroll 4
      for (int b = 0; b < B; ++b) {
        const block_q8_1* yb = reinterpret_cast<const block_q8_1*>(act + b * act_stride) + i;
        yv[b] = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb[0].qs))),
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb[1].qs)), 1);
        yds[b] = half_pairs(&yb[0].d, &yb[1].d);
        ys0[b] = _mm_movehdup_ps(yds[b]);
        ys1[b] = _mm_movehl_ps(ys0[b], ys0[b]);
      }
      #pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const Block* x = reinterpret_cast<const Block*>(w + r * w_stride) + i;
        const __m256i t = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(x[1].qs),
                                              reinterpret_cast<const __m128i*>(x[0].qs));
        const __m256i lo = _mm256_and_si256(t, low4), hi = _mm256_and_si256(_mm256_srli_epi16(t, 4), low4);
        // [lo_i, lo_i+1, hi_i, hi_i+1] -> [lo_i, hi_i, lo_i+1, hi_i+1]
        const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        __m512i q = _mm512_shuffle_i64x2(both, both, _MM_SHUFFLE(3, 1, 2, 0));
        if constexpr (kFive<Block>) {
          const __mmask64 set = static_cast<__mmask64>(load_u32(x[0].qh)) | (static_cast<__mmask64>(load_u32(x[1].qh)) << 32);
          q = _mm512_mask_add_epi8(q, set, q, _mm512_set1_epi8(16));
        }
        const __m128 dm = half_pairs(&x[0].d, &x[1].d);  // [d0, m0, d1, m1]
        const __m128 m0 = _mm_movehdup_ps(dm), m1 = _mm_movehl_ps(m0, m0);
        #pragma GCC unroll 4
        for (int b = 0; b < B; ++b) {
          const __m512 f = _mm512_cvtepi32_ps(dpbusd<kVnni>(_mm512_setzero_si512(), q, yv[b]));
          __m128& sm = summs[r * B + b];  // lane 0
          sm = _mm_fmadd_ss(m0, ys0[b], sm);
          sm = _mm_fmadd_ss(m1, ys1[b], sm);
          const __m128 dd = _mm_mul_ps(dm, yds[b]);  // lanes 0, 2: d_w * d_x of the two blocks
          __m256& acc_s = acc[r * B + b];
          acc_s = _mm256_fmadd_ps(_mm256_broadcastss_ps(dd), _mm512_castps512_ps256(f), acc_s);
          acc_s = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehl_ps(dd, dd)), _mm512_extractf32x8_ps(f, 1), acc_s);
        }
      }
    }
    if (i < nb) {  // the last block when there is an odd number
      #pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const Block& x = reinterpret_cast<const Block*>(w + r * w_stride)[i];
        const __m256i q = unpack_q_1_avx2(x);
        const float dw = _cvtsh_ss(x.d), mw = _cvtsh_ss(x.m);
        #pragma GCC unroll 4
        for (int b = 0; b < B; ++b) {
          const block_q8_1& yb = reinterpret_cast<const block_q8_1*>(act + b * act_stride)[i];
          float sm = _mm_cvtss_f32(summs[r * B + b]);
          acc[r * B + b] = q_1_block_step_avx2(acc[r * B + b], &sm, q, dw, mw, yb);
          summs[r * B + b] = _mm_set_ss(sm);
        }
      }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
      for (int b = 0; b < B; ++b)
        y[b * y_stride + r * y_row_step] = hsum_f32x8(acc[r * B + b]) + _mm_cvtss_f32(summs[r * B + b]);
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

// 0x10 in byte k where bit k % 8 of byte k / 8 of the pair (b0, b1) is set.
inline uint8x16_t high_bits_16(uint8_t b0, uint8_t b1) {
  static const uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  const uint8x16_t v = vcombine_u8(vdup_n_u8(b0), vdup_n_u8(b1));
  return vandq_u8(vtstq_u8(v, vld1q_u8(kBit)), vdupq_n_u8(0x10));
}

template <class Block>
float dot_q_1_neon(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const Block* x = reinterpret_cast<const Block*>(w);
  const block_q8_1* y = reinterpret_cast<const block_q8_1*>(act);
  const uint8x16_t low4 = vdupq_n_u8(0x0f);
  float32x4_t acc = vdupq_n_f32(0.0f);
  float summs = 0.0f;
  for (int64_t i = 0; i < cols / 32; ++i) {
    const uint8x16_t b = vld1q_u8(x[i].qs);
    uint8x16_t lo = vandq_u8(b, low4), hi = vshrq_n_u8(b, 4);
    if constexpr (kFive<Block>) {
      lo = vorrq_u8(lo, high_bits_16(x[i].qh[0], x[i].qh[1]));
      hi = vorrq_u8(hi, high_bits_16(x[i].qh[2], x[i].qh[3]));
    }
    int32x4_t p = dot_i8x16(vdupq_n_s32(0), vreinterpretq_s8_u8(lo), vld1q_s8(y[i].qs));
    p = dot_i8x16(p, vreinterpretq_s8_u8(hi), vld1q_s8(y[i].qs + 16));
    acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d));
    summs += fp16_to_fp32(x[i].m) * fp16_to_fp32(y[i].s);
  }
  return vaddvq_f32(acc) + summs;
}

#endif  // __aarch64__

template <class Block>
TypeKernels q_1_kernels(PathVariant v) {
  TypeKernels k{ActFormat::Q8_1, quantize_q8_1_fn(v.path), dequantize_q_1_scalar<Block>,
                rows_by_dot<dot_q_1_scalar<Block>>};
#if defined(__x86_64__)
  if (v.path == CpuPath::Avx2 || v.path == CpuPath::Avx512) k.dequantize = dequantize_q_1_avx2<Block>;
  if (v.path == CpuPath::Avx2) k.rows = rows_by_blocks<Q_1BlockAvx2<Block>>;
  if (v.path == CpuPath::Avx512)
    k.rows = v.vnni ? rows_by_blocks<Q_1BlockAvx512<Block, true>> : rows_by_blocks<Q_1BlockAvx512<Block, false>>;
#elif defined(__aarch64__)
  if (v.path == CpuPath::Neon) k.rows = rows_by_dot<dot_q_1_neon<Block>>;
#endif
  return k;
}

}  // namespace

TypeKernels q4_1_kernels(PathVariant v) { return q_1_kernels<block_q4_1>(v); }
TypeKernels q5_1_kernels(PathVariant v) { return q_1_kernels<block_q5_1>(v); }

}  // namespace kimpl
}  // namespace ts
