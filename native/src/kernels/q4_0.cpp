// Q4_0 weights (blocks of 32 4-bit values, x = (q - 8) * d; byte j holds
// element j in its low nibble and element j + 16 in its high nibble) times
// Q8_0-quantized activations. Scalar reference first, then AVX2, AVX-512 and
// NEON variants.
#pragma GCC optimize("fp-contract=off")
#include <cstring>

#include "kernels/fp16.h"
#include "kernels/kernel_impl.h"
#include "kernels/simd.h"

namespace ts {
namespace kimpl {

namespace {

// ---------------------------------------------------------------- scalar

void dequantize_q4_0_scalar(const void* src, float* dst, int64_t n) {
  const block_q4_0* x = static_cast<const block_q4_0*>(src);
  for (int64_t i = 0; i < n / QK4_0; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      dst[i * QK4_0 + j] = static_cast<float>((x[i].qs[j] & 0x0f) - 8) * d;
      dst[i * QK4_0 + j + QK4_0 / 2] = static_cast<float>((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

float dot_q4_0_scalar(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const block_q4_0* x = reinterpret_cast<const block_q4_0*>(w);
  const block_q8_0* y = reinterpret_cast<const block_q8_0*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < cols / QK4_0; ++i) {
    int sumi = 0;
    for (int j = 0; j < QK4_0 / 2; ++j) {
      sumi += ((x[i].qs[j] & 0x0f) - 8) * y[i].qs[j];
      sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + QK4_0 / 2];
    }
    sum += static_cast<float>(sumi) * (fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d));
  }
  return sum;
}


// ---------------------------------------------------------------- AVX2

#if defined(__x86_64__)

// The 32 4-bit values of a block in element order (0..15), as unsigned bytes.
TS_AVX2 inline __m256i unpack_q4_0_avx2(const uint8_t* qs) {
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0f));
}

// Exact integer sum of (q - 8) * y over one block, for the kernels' last
// 1..3 blocks (a row of 576 columns, as in SmolLM2, ends in 2 of them: done
// with scalar code they took half the time of a batch-1 decode there).
// maddubs pairs u8 nibbles (<= 15) with s8 values, so no int16 saturation;
// the "- 8" is 8 * the sum of y, taken with maddubs against ones.
TS_AVX2 inline int isum_q4_0_block(const block_q4_0& x, const block_q8_0& y) {
  const __m128i low4 = _mm_set1_epi8(0x0f), ones8 = _mm_set1_epi8(1), ones16 = _mm_set1_epi16(1);
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.qs));
  const __m128i y0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(y.qs));
  const __m128i y1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(y.qs + 16));
  const __m128i p16 = _mm_add_epi16(_mm_maddubs_epi16(_mm_and_si128(q, low4), y0),
                                    _mm_maddubs_epi16(_mm_and_si128(_mm_srli_epi16(q, 4), low4), y1));
  const __m128i s16 = _mm_add_epi16(_mm_maddubs_epi16(ones8, y0), _mm_maddubs_epi16(ones8, y1));
  __m128i v = _mm_sub_epi32(_mm_madd_epi16(p16, ones16), _mm_slli_epi32(_mm_madd_epi16(s16, ones16), 3));
  v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(v);
}

// R weight rows against B activation rows (R * B <= 4 outputs, "slots";
// see rows_by_blocks) over Q8_0N4 activations, in llama.cpp's order (see
// Q4_0BlockAvx512): each block's products summed exactly, then one fma per
// block into one accumulator per output. Two blocks per step: [A, B] nibble
// bytes give [A lo, B lo] and [A hi, B hi], which line up with 32
// contiguous bytes of group.lo and group.hi; the "- 8" comes in as the
// group's precomputed offset.
struct Q4_0BlockAvx2 {
  template <int R, int B>
  TS_AVX2 static void run(const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride, int64_t cols,
                          float* y, int64_t y_stride, int64_t y_row_step) {
    static_assert(R * B <= 4, "at most 4 outputs");
    const int64_t nb = cols / QK4_0;
    const __m256i low4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    const __m256i dup4 = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    __m128 acc = _mm_setzero_ps();  // lane s: output slot s = r * B + b
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {  // blocks i + 2h, i + 2h + 1
        __m256i p[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        __m256 d[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
          const block_q4_0* x = reinterpret_cast<const block_q4_0*>(w + r * w_stride) + i + 2 * h;
          const __m256i q = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(x[1].qs),
                                                reinterpret_cast<const __m128i*>(x[0].qs));
          const __m256i lo = _mm256_and_si256(q, low4);
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
          const __m128i d2 = _mm_insert_epi16(_mm_cvtsi32_si128(x[0].d), x[1].d, 1);
          const __m256 dw = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_cvtph_ps(d2)), dup4);
#pragma GCC unroll 4
          for (int b = 0; b < B; ++b) {
            const Q8_0N4Group* g = reinterpret_cast<const Q8_0N4Group*>(act + b * act_stride) + i / 4;
            const __m256i p16 = _mm256_add_epi16(
                _mm256_maddubs_epi16(lo, _mm256_load_si256(reinterpret_cast<const __m256i*>(g->lo + 32 * h))),
                _mm256_maddubs_epi16(hi, _mm256_load_si256(reinterpret_cast<const __m256i*>(g->hi + 32 * h))));
            p[r * B + b] = _mm256_add_epi32(_mm256_madd_epi16(p16, ones),
                                            _mm256_load_si256(reinterpret_cast<const __m256i*>(g->offset + 8 * h)));
            d[r * B + b] = _mm256_mul_ps(dw, _mm256_load_ps(g->d + 8 * h));
          }
        }
        // 128-bit lane k: block 2h + k's exact sums for slots 0..3
        const __m256i s01 = _mm256_add_epi32(_mm256_unpacklo_epi32(p[0], p[1]), _mm256_unpackhi_epi32(p[0], p[1]));
        const __m256i s23 = _mm256_add_epi32(_mm256_unpacklo_epi32(p[2], p[3]), _mm256_unpackhi_epi32(p[2], p[3]));
        const __m256 sums =
            _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_unpacklo_epi64(s01, s23), _mm256_unpackhi_epi64(s01, s23)));
        __m256 ds = _mm256_blend_ps(d[0], d[1], 0x22);
        ds = _mm256_blend_ps(ds, d[2], 0x44);
        ds = _mm256_blend_ps(ds, d[3], 0x88);
        acc = _mm_fmadd_ps(_mm256_castps256_ps128(sums), _mm256_castps256_ps128(ds), acc);
        acc = _mm_fmadd_ps(_mm256_extractf128_ps(sums, 1), _mm256_extractf128_ps(ds, 1), acc);
      }
    }
    for (; i < nb; ++i) {  // the last 1..3 blocks (plain Q8_0 activations after the groups)
      alignas(16) float sums[4] = {0, 0, 0, 0}, ds[4] = {0, 0, 0, 0};
      for (int r = 0; r < R; ++r) {
        const block_q4_0& x = reinterpret_cast<const block_q4_0*>(w + r * w_stride)[i];
        for (int b = 0; b < B; ++b) {
          const block_q8_0& yb =
              reinterpret_cast<const block_q8_0*>(act + b * act_stride + (nb / 4) * sizeof(Q8_0N4Group))[i - nb / 4 * 4];
          sums[r * B + b] = static_cast<float>(isum_q4_0_block(x, yb));
          ds[r * B + b] = _cvtsh_ss(x.d) * _cvtsh_ss(yb.d);
        }
      }
      acc = _mm_fmadd_ps(_mm_load_ps(sums), _mm_load_ps(ds), acc);
    }
    alignas(16) float out[4];
    _mm_store_ps(out, acc);
    for (int r = 0; r < R; ++r)
      for (int b = 0; b < B; ++b) y[b * y_stride + r * y_row_step] = out[r * B + b];
  }
};

TS_AVX2 void dequantize_q4_0_avx2(const void* src, float* dst, int64_t n) {
  const block_q4_0* x = static_cast<const block_q4_0*>(src);
  for (int64_t i = 0; i < n / QK4_0; ++i, dst += QK4_0) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[i].d));
    const __m256i q = _mm256_sub_epi8(unpack_q4_0_avx2(x[i].qs), _mm256_set1_epi8(8));
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

// R weight rows against B activation rows (R * B <= 4 outputs, "slots";
// see rows_by_blocks) over Q8_0N4 activations, summed as llama.cpp's
// repacked q4_0 kernels do on x86: each block's 32 products summed exactly
// in int32, then acc = fma(float(sum), d_w * d_x, acc) block after block,
// one accumulator per output and no horizontal sum. Per group of 4 blocks
// each slot's dpbusd leaves block k's partial sums in lanes 4k..4k+3; a
// 4-way unpack-and-add turns the 4 slots' registers into one whose 128-bit
// lane k holds block k's sums for slots 0..3, so the 4 fmas per group
// advance all slots at once.
template <bool kVnni>
struct Q4_0BlockAvx512 {
  template <int R, int B>
  TS_AVX512_VNNI static void run(const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride, int64_t cols,
                                 float* y, int64_t y_stride, int64_t y_row_step) {
    static_assert(R * B <= 4, "at most 4 outputs");
    const int64_t nb = cols / QK4_0;
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    // 16-bit word index of block k's d in 64 bytes from block 0: 9k (18 bytes per block)
    const __m512i d_index = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 27, 27, 27, 27, 18, 18,
                                             18, 18, 9, 9, 9, 9, 0, 0, 0, 0);
    const __m512i q_index = _mm512_set_epi16(35, 34, 33, 32, 31, 30, 29, 28, 26, 25, 24, 23, 22, 21, 20, 19, 17, 16, 15, 14,
                                             13, 12, 11, 10, 8, 7, 6, 5, 4, 3, 2, 1);
    __m128 acc = _mm_setzero_ps();  // lane s: output slot s = r * B + b
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
      __m512i p[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
      __m512 d[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const uint8_t* xb = w + r * w_stride + i * sizeof(block_q4_0);
        // 72 bytes a step: at batch 1 (bound by memory) 2 lines, or every 9th line
        // of the stream would go unprefetched (+2-3 % streaming, paired runs)
        prefetch_ahead<B == 1 ? 2 : 1>(xb);
        // The 4 blocks' 72 bytes as 64 + 8: block k's 16 nibble bytes are the
        // words 9k+1 .. 9k+8, gathered into 128-bit lane k by one word permute.
        const __m512i head = _mm512_loadu_si512(xb);
        const __m512i tail = _mm512_castsi128_si512(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(xb + 64)));
        const __m512i q = _mm512_permutex2var_epi16(head, q_index, tail);
        const __m512i lo = _mm512_and_si512(q, low4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), low4);
        const __m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(d_index, head)));
#pragma GCC unroll 4
        for (int b = 0; b < B; ++b) {
          const Q8_0N4Group* g = reinterpret_cast<const Q8_0N4Group*>(act + b * act_stride) + i / 4;
          __m512i s = _mm512_load_si512(g->offset);  // the "- 8"
          s = dpbusd<kVnni>(s, lo, _mm512_load_si512(g->lo));
          p[r * B + b] = dpbusd<kVnni>(s, hi, _mm512_load_si512(g->hi));
          d[r * B + b] = _mm512_mul_ps(dw, _mm512_load_ps(g->d));
        }
      }
      // 128-bit lane k of `sums`: block k's exact sums for slots 0..3
      const __m512i s01 = _mm512_add_epi32(_mm512_unpacklo_epi32(p[0], p[1]), _mm512_unpackhi_epi32(p[0], p[1]));
      const __m512i s23 = _mm512_add_epi32(_mm512_unpacklo_epi32(p[2], p[3]), _mm512_unpackhi_epi32(p[2], p[3]));
      const __m512 sums =
          _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23)));
      // the scales the same way (a block's 4 lanes hold the same scale)
      __m512 ds = _mm512_mask_blend_ps(0x2222, d[0], d[1]);
      ds = _mm512_mask_blend_ps(0x4444, ds, d[2]);
      ds = _mm512_mask_blend_ps(0x8888, ds, d[3]);
      acc = _mm_fmadd_ps(_mm512_castps512_ps128(sums), _mm512_castps512_ps128(ds), acc);
      acc = _mm_fmadd_ps(_mm512_extractf32x4_ps(sums, 1), _mm512_extractf32x4_ps(ds, 1), acc);
      acc = _mm_fmadd_ps(_mm512_extractf32x4_ps(sums, 2), _mm512_extractf32x4_ps(ds, 2), acc);
      acc = _mm_fmadd_ps(_mm512_extractf32x4_ps(sums, 3), _mm512_extractf32x4_ps(ds, 3), acc);
    }
    for (; i < nb; ++i) {  // the last 1..3 blocks (plain Q8_0 activations after the groups)
      alignas(16) float sums[4] = {0, 0, 0, 0}, ds[4] = {0, 0, 0, 0};
      for (int r = 0; r < R; ++r) {
        const block_q4_0& x = reinterpret_cast<const block_q4_0*>(w + r * w_stride)[i];
        for (int b = 0; b < B; ++b) {
          const block_q8_0& yb =
              reinterpret_cast<const block_q8_0*>(act + b * act_stride + (nb / 4) * sizeof(Q8_0N4Group))[i - nb / 4 * 4];
          sums[r * B + b] = static_cast<float>(isum_q4_0_block(x, yb));
          ds[r * B + b] = _cvtsh_ss(x.d) * _cvtsh_ss(yb.d);
        }
      }
      acc = _mm_fmadd_ps(_mm_load_ps(sums), _mm_load_ps(ds), acc);
    }
    alignas(16) float out[4];
    _mm_store_ps(out, acc);
    for (int r = 0; r < R; ++r)
      for (int b = 0; b < B; ++b) y[b * y_stride + r * y_row_step] = out[r * B + b];
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

float dot_q4_0_neon(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const block_q4_0* x = reinterpret_cast<const block_q4_0*>(w);
  const block_q8_0* y = reinterpret_cast<const block_q8_0*>(act);
  const uint8x16_t low4 = vdupq_n_u8(0x0f);
  const int8x16_t eight = vdupq_n_s8(8);
  float32x4_t acc = vdupq_n_f32(0.0f);
  for (int64_t i = 0; i < cols / QK4_0; ++i) {
    const uint8x16_t b = vld1q_u8(x[i].qs);
    const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(b, low4)), eight);
    const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(b, 4)), eight);
    int32x4_t p = dot_i8x16(vdupq_n_s32(0), lo, vld1q_s8(y[i].qs));
    p = dot_i8x16(p, hi, vld1q_s8(y[i].qs + 16));
    acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d));
  }
  return vaddvq_f32(acc);
}

#endif  // __aarch64__

}  // namespace

TypeKernels q4_0_kernels(PathVariant v) {
  TypeKernels k{ActFormat::Q8_0, quantize_q8_0_fn(v.path), dequantize_q4_0_scalar, rows_by_dot<dot_q4_0_scalar>};
#if defined(__x86_64__)
  if (v.path == CpuPath::Avx2 || v.path == CpuPath::Avx512) k.dequantize = dequantize_q4_0_avx2;
  if (v.path == CpuPath::Avx2) {
    k.act = ActFormat::Q8_0N4;
    k.quantize = quantize_q8_0n4_fn(v.path);
    k.rows = rows_by_blocks<Q4_0BlockAvx2>;
  }
  if (v.path == CpuPath::Avx512) {
    k.act = ActFormat::Q8_0N4;
    k.quantize = quantize_q8_0n4_fn(v.path);
    k.rows = v.vnni ? rows_by_blocks<Q4_0BlockAvx512<true>> : rows_by_blocks<Q4_0BlockAvx512<false>>;
  }
#elif defined(__aarch64__)
  if (v.path == CpuPath::Neon) k.rows = rows_by_dot<dot_q4_0_neon>;
#endif
  return k;
}

}  // namespace kimpl
}  // namespace ts
