// Q5_0 weights (blocks of 32 5-bit values, x = (q - 16) * d; byte j of qs
// holds the low 4 bits of element j in its low nibble and of element j + 16
// in its high nibble, bit 4 of element e is bit e of the little-endian
// uint32 qh) times Q8_0-quantized activations, as ggml pairs them.
// The SIMD variants sum in ggml's order (ggml_vec_dot_q5_0_q8_0 on AVX2, which
// llama.cpp also runs on AVX-512 machines): per block, 8 int32 lanes of 4
// products each, then acc = fma(d_w * d_x, lanes, acc) into one 8-lane
// accumulator, block after block, then one horizontal sum. Scalar reference
// first, then AVX2, AVX-512 and NEON variants.
#pragma GCC optimize("fp-contract=off")
#include <cstring>

#include "kernels/fp16.h"
#include "kernels/kernel_impl.h"
#include "kernels/simd.h"

namespace ts {
namespace kimpl {

namespace {

inline uint32_t load_qh(const uint8_t* qh) {
  uint32_t v;
  std::memcpy(&v, qh, 4);
  return v;
}

// ---------------------------------------------------------------- scalar

// Signed value (q - 16) of element j (0..15) and j + 16 of a block.
inline int q5_0_lo(const block_q5_0& b, uint32_t qh, int j) {
  return ((b.qs[j] & 0x0f) | (((qh >> j) << 4) & 0x10)) - 16;
}
inline int q5_0_hi(const block_q5_0& b, uint32_t qh, int j) {
  return ((b.qs[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16;
}

void dequantize_q5_0_scalar(const void* src, float* dst, int64_t n) {
  const block_q5_0* x = static_cast<const block_q5_0*>(src);
  for (int64_t i = 0; i < n / QK5_0; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const uint32_t qh = load_qh(x[i].qh);
    for (int j = 0; j < QK5_0 / 2; ++j) {
      dst[i * QK5_0 + j] = static_cast<float>(q5_0_lo(x[i], qh, j)) * d;
      dst[i * QK5_0 + j + QK5_0 / 2] = static_cast<float>(q5_0_hi(x[i], qh, j)) * d;
    }
  }
}

float dot_q5_0_scalar(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const block_q5_0* x = reinterpret_cast<const block_q5_0*>(w);
  const block_q8_0* y = reinterpret_cast<const block_q8_0*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < cols / QK5_0; ++i) {
    const uint32_t qh = load_qh(x[i].qh);
    int sumi = 0;
    for (int j = 0; j < QK5_0 / 2; ++j) {
      sumi += q5_0_lo(x[i], qh, j) * y[i].qs[j];
      sumi += q5_0_hi(x[i], qh, j) * y[i].qs[j + QK5_0 / 2];
    }
    sum += static_cast<float>(sumi) * (fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d));
  }
  return sum;
}

// ---------------------------------------------------------------- AVX2

#if defined(__x86_64__)

// 0xff in byte e where bit e of qh is set (ggml's bytes_from_bits_32).
TS_AVX2 inline __m256i bytes_from_bits_32(const uint8_t* qh) {
  const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
  const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(load_qh(qh))), shuf);
  return _mm256_cmpeq_epi8(_mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)), _mm256_set1_epi64x(-1));
}

// The block's 32 signed values (q - 16) in element order: the nibbles, with
// 0xf0 or-ed in where bit 4 is clear (nibble - 16 in two's complement).
TS_AVX2 inline __m256i unpack_q5_0_avx2(const block_q5_0& b) {
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
  const __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0f));
  return _mm256_or_si256(nib, _mm256_andnot_si256(bytes_from_bits_32(b.qh), _mm256_set1_epi8(static_cast<char>(0xf0))));
}

// acc += d_w * d_x * (8 int32 lanes of 4 products) for one block: ggml's
// per-block step. q: the block's signed values, yv: the activations, dx: d_x
// in every lane.
TS_AVX2 inline __m256 q5_0_block_step_avx2(__m256 acc, __m256i q, float dw, __m256i yv, __m256 dx) {
  const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(yv, q)),
                                      _mm256_set1_epi16(1));
  return _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(dw), dx), _mm256_cvtepi32_ps(p), acc);
}

// The plain Q8_0 blocks after a Q8_0G4 row's whole groups (nb / 4 of them).
inline const block_q8_0* q8_0g4_tail(const uint8_t* act_row, int64_t nb) {
  return reinterpret_cast<const block_q8_0*>(act_row + (nb / 4) * sizeof(Q8_0G4Group)) - nb / 4 * 4;
}

// Both SIMD kernels end alike: the last 1..3 blocks (from block i on, plain
// Q8_0 activations after the groups) one at a time in the same order, then
// each output's horizontal sum.
template <int R, int B>
TS_AVX2 inline void q5_0_finish_avx2(const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride,
                                     int64_t nb, int64_t i, __m256* acc, float* y, int64_t y_stride,
                                     int64_t y_row_step) {
  for (; i < nb; ++i) {
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const block_q5_0& x = reinterpret_cast<const block_q5_0*>(w + r * w_stride)[i];
      const __m256i q = unpack_q5_0_avx2(x);
      const float dw = _cvtsh_ss(x.d);
#pragma GCC unroll 4
      for (int b = 0; b < B; ++b) {
        const block_q8_0& yb = q8_0g4_tail(act + b * act_stride, nb)[i];
        acc[r * B + b] = q5_0_block_step_avx2(acc[r * B + b], q, dw,
                                              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb.qs)),
                                              _mm256_set1_ps(_cvtsh_ss(yb.d)));
      }
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
    for (int b = 0; b < B; ++b) y[b * y_stride + r * y_row_step] = hsum_f32x8(acc[r * B + b]);
}

// R weight rows against B activation rows (R * B <= 4 outputs; see
// rows_by_blocks) over Q8_0G4 activations (4 blocks' values back to back,
// their scales widened to f32 per lane). |q| times y with q's sign through
// maddubs (no saturation: 16 * 127 * 2 < 2^15); each output's sum in ggml's
// order in its own accumulator (for a batch of 1, four independent chains).
struct Q5_0BlockAvx2 {
  template <int R, int B>
  TS_AVX2 static void run(const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride, int64_t cols,
                          float* y, int64_t y_stride, int64_t y_row_step) {
    static_assert(R * B <= 4, "at most 4 outputs");
    const int64_t nb = cols / QK5_0;
    __m256 acc[R * B];
#pragma GCC unroll 4
    for (int s = 0; s < R * B; ++s) acc[s] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
          const block_q5_0& x = reinterpret_cast<const block_q5_0*>(w + r * w_stride)[i + k];
          const __m256i q = unpack_q5_0_avx2(x);
          const float dw = _cvtsh_ss(x.d);
#pragma GCC unroll 4
          for (int b = 0; b < B; ++b) {
            const Q8_0G4Group* g = reinterpret_cast<const Q8_0G4Group*>(act + b * act_stride) + i / 4;
            acc[r * B + b] = q5_0_block_step_avx2(acc[r * B + b], q, dw,
                                                  _mm256_load_si256(reinterpret_cast<const __m256i*>(g->qs + 32 * k)),
                                                  _mm256_load_ps(g->d + 8 * k));
          }
        }
      }
    }
    q5_0_finish_avx2<R, B>(w, w_stride, act, act_stride, nb, i, acc, y, y_stride, y_row_step);
  }
};

TS_AVX2 void dequantize_q5_0_avx2(const void* src, float* dst, int64_t n) {
  const block_q5_0* x = static_cast<const block_q5_0*>(src);
  for (int64_t i = 0; i < n / QK5_0; ++i, dst += QK5_0) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[i].d));
    const __m256i q = unpack_q5_0_avx2(x[i]);
    for (int j = 0; j < 4; ++j) {
      const __m128i part = j < 2 ? _mm256_castsi256_si128(q) : _mm256_extracti128_si256(q, 1);
      const __m256i q32 = _mm256_cvtepi8_epi32(j % 2 ? _mm_srli_si128(part, 8) : part);
      _mm256_storeu_ps(dst + 8 * j, _mm256_mul_ps(_mm256_cvtepi32_ps(q32), d));
    }
  }
}

// ---------------------------------------------------------------- AVX-512

template <bool kVnni>
TS_AVX512_VNNI inline __m512i dpbusd(__m512i acc, __m512i u, __m512i s) {
  if constexpr (kVnni) {
    return _mm512_dpbusd_epi32(acc, u, s);
  } else {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
  }
}

// Four blocks per step over Q8_0G4 activations, two per register:
// [block i | block i + 1], each in element order. Where bit 4 is clear the
// value is nibble - 16 < 0, so |value| = 16 - nibble and the activation's
// sign flips; where it is set the value is the nibble itself. The 16 int32
// lanes are one block's 8 lanes then the next's, each the same 4-product
// sums as ggml's, added to the output's 8-lane accumulator block after block
// (ggml's order). The four fp16 scales come out of the 88 bytes with one
// two-source word permute, already repeated for each block's 8 lanes. R
// weight rows against B activation rows (see rows_by_blocks).
template <bool kVnni>
struct Q5_0BlockAvx512 {
  // [nibbles of blocks k, k + 1] as [lo_k, hi_k, lo_k+1, hi_k+1] and the mask of their clear bit 4.
  TS_AVX512_VNNI static __m512i unpack2(const block_q5_0* x, __mmask64* clear) {
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const __m256i t = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(x[1].qs),
                                          reinterpret_cast<const __m128i*>(x[0].qs));
    const __m256i lo = _mm256_and_si256(t, low4), hi = _mm256_and_si256(_mm256_srli_epi16(t, 4), low4);
    const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);  // [lo_k, lo_k+1, hi_k, hi_k+1]
    *clear = ~(static_cast<__mmask64>(load_qh(x[0].qh)) | (static_cast<__mmask64>(load_qh(x[1].qh)) << 32));
    const __m512i nib = _mm512_shuffle_i64x2(both, both, _MM_SHUFFLE(3, 1, 2, 0));
    return _mm512_mask_sub_epi8(nib, *clear, _mm512_set1_epi8(16), nib);  // |value|
  }

  // acc += the two blocks' products, block k first (ggml's order).
  TS_AVX512_VNNI static __m256 step2(__m256 acc, __m512i a, __mmask64 clear, __m512i yv, __m512 ds) {
    const __m512i zero = _mm512_setzero_si512();
    const __m512 f = _mm512_cvtepi32_ps(dpbusd<kVnni>(zero, a, _mm512_mask_sub_epi8(yv, clear, zero, yv)));
    acc = _mm256_fmadd_ps(_mm512_castps512_ps256(ds), _mm512_castps512_ps256(f), acc);
    return _mm256_fmadd_ps(_mm512_extractf32x8_ps(ds, 1), _mm512_extractf32x8_ps(f, 1), acc);
  }

  template <int R, int B>
  TS_AVX512_VNNI static void run(const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride,
                                 int64_t cols, float* y, int64_t y_stride, int64_t y_row_step) {
    static_assert(R * B <= 4, "at most 4 outputs");
    const int64_t nb = cols / QK5_0;
    // word index of block k's d: 11k in the 64 bytes from block 0 (k = 0, 1), and
    // 32 + 11k - 12 in the 64 bytes from byte 24 (k = 2, 3; the group ends at byte 88)
    const __m512i d_index = _mm512_set_epi16(53, 53, 53, 53, 53, 53, 53, 53, 42, 42, 42, 42, 42, 42, 42, 42, 11, 11,
                                             11, 11, 11, 11, 11, 11, 0, 0, 0, 0, 0, 0, 0, 0);
    __m256 acc[R * B];
    #pragma GCC unroll 4
    for (int s = 0; s < R * B; ++s) acc[s] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
      #pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const block_q5_0* x = reinterpret_cast<const block_q5_0*>(w + r * w_stride) + i;
        const uint8_t* xb = reinterpret_cast<const uint8_t*>(x);
        __mmask64 clear01, clear23;
        const __m512i a01 = unpack2(x, &clear01), a23 = unpack2(x + 2, &clear23);
        const __m512i dh = _mm512_permutex2var_epi16(_mm512_loadu_si512(xb), d_index, _mm512_loadu_si512(xb + 24));
        const __m512 dw01 = _mm512_cvtph_ps(_mm512_castsi512_si256(dh));
        const __m512 dw23 = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(dh, 1));
        #pragma GCC unroll 4
        for (int b = 0; b < B; ++b) {
          const Q8_0G4Group* g = reinterpret_cast<const Q8_0G4Group*>(act + b * act_stride) + i / 4;
          __m256& s = acc[r * B + b];
          s = step2(s, a01, clear01, _mm512_load_si512(g->qs), _mm512_mul_ps(dw01, _mm512_load_ps(g->d)));
          s = step2(s, a23, clear23, _mm512_load_si512(g->qs + 64), _mm512_mul_ps(dw23, _mm512_load_ps(g->d + 16)));
        }
      }
    }
    q5_0_finish_avx2<R, B>(w, w_stride, act, act_stride, nb, i, acc, y, y_stride, y_row_step);
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

float dot_q5_0_neon(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const block_q5_0* x = reinterpret_cast<const block_q5_0*>(w);
  const block_q8_0* y = reinterpret_cast<const block_q8_0*>(act);
  const uint8x16_t low4 = vdupq_n_u8(0x0f);
  const int8x16_t sixteen = vdupq_n_s8(16);
  float32x4_t acc = vdupq_n_f32(0.0f);
  for (int64_t i = 0; i < cols / QK5_0; ++i) {
    const uint8x16_t b = vld1q_u8(x[i].qs);
    const uint8x16_t lo_u = vorrq_u8(vandq_u8(b, low4), high_bits_16(x[i].qh[0], x[i].qh[1]));
    const uint8x16_t hi_u = vorrq_u8(vshrq_n_u8(b, 4), high_bits_16(x[i].qh[2], x[i].qh[3]));
    const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(lo_u), sixteen);
    const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(hi_u), sixteen);
    int32x4_t p = dot_i8x16(vdupq_n_s32(0), lo, vld1q_s8(y[i].qs));
    p = dot_i8x16(p, hi, vld1q_s8(y[i].qs + 16));
    acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d));
  }
  return vaddvq_f32(acc);
}

#endif  // __aarch64__

}  // namespace

TypeKernels q5_0_kernels(PathVariant v) {
  TypeKernels k{ActFormat::Q8_0, quantize_q8_0_fn(v.path), dequantize_q5_0_scalar, rows_by_dot<dot_q5_0_scalar>};
#if defined(__x86_64__)
  if (v.path == CpuPath::Avx2 || v.path == CpuPath::Avx512) k.dequantize = dequantize_q5_0_avx2;
  if (v.path == CpuPath::Avx2 || v.path == CpuPath::Avx512) {
    k.act = ActFormat::Q8_0G4;
    k.quantize = quantize_q8_0g4_fn(v.path);
  }
  if (v.path == CpuPath::Avx2) k.rows = rows_by_blocks<Q5_0BlockAvx2>;
  if (v.path == CpuPath::Avx512)
    k.rows = v.vnni ? rows_by_blocks<Q5_0BlockAvx512<true>> : rows_by_blocks<Q5_0BlockAvx512<false>>;
#elif defined(__aarch64__)
  if (v.path == CpuPath::Neon) k.rows = rows_by_dot<dot_q5_0_neon>;
#endif
  return k;
}

}  // namespace kimpl
}  // namespace ts
