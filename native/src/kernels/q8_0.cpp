// Q8_0 weights (blocks of 32 int8 with an fp16 scale) times Q8_0-quantized
// activations. Scalar reference first, then AVX2, AVX-512 and NEON variants.
#pragma GCC optimize("fp-contract=off")
#include <cstring>

#include "kernels/fp16.h"
#include "kernels/kernel_impl.h"
#include "kernels/simd.h"

namespace ts {
namespace kimpl {

namespace {

// ---------------------------------------------------------------- scalar

void dequantize_q8_0_scalar(const void* src, float* dst, int64_t n) {
  const block_q8_0* x = static_cast<const block_q8_0*>(src);
  for (int64_t i = 0; i < n / QK8_0; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < QK8_0; ++j) dst[i * QK8_0 + j] = x[i].qs[j] * d;
  }
}

float dot_q8_0_scalar(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const block_q8_0* x = reinterpret_cast<const block_q8_0*>(w);
  const block_q8_0* y = reinterpret_cast<const block_q8_0*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < cols / QK8_0; ++i) {
    int sumi = 0;
    for (int j = 0; j < QK8_0; ++j) sumi += x[i].qs[j] * y[i].qs[j];
    sum += static_cast<float>(sumi) * (fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d));
  }
  return sum;
}


// ---------------------------------------------------------------- AVX2

#if defined(__x86_64__)

// sum over 4-byte groups of w * y (w any int8, y in [-127, 127]) as 8 x int32:
// |w| times y with w's sign, through maddubs (no saturation: 128 * 127 * 2 < 2^15).
TS_AVX2 inline __m256i dot_i8_avx2(__m256i w, __m256i y) {
  const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(y, w));
  return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

// One weight row against B activation rows (see rows_by_tiles) over Q8_0G4
// activations (values back to back, f32 scales per lane), in ggml's order:
// one 8-lane accumulator, one fma per block.
struct Q8_0RowAvx2 {
  template <int B>
  TS_AVX2 static void run(const uint8_t* w, const uint8_t* act, size_t act_stride, int64_t cols, float* y,
                          int64_t y_stride) {
    const int64_t nb = cols / QK8_0;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[B];
#pragma GCC unroll 8
    for (int b = 0; b < B; ++b) acc[b] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        const block_q8_0* x = reinterpret_cast<const block_q8_0*>(w) + i + k;
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x->qs));
        const __m256i aq = _mm256_sign_epi8(q, q);
        const float dw = _cvtsh_ss(x->d);
#pragma GCC unroll 8
        for (int b = 0; b < B; ++b) {
          const Q8_0G4Group* g = reinterpret_cast<const Q8_0G4Group*>(act + b * act_stride) + i / 4;
          const __m256i yv = _mm256_load_si256(reinterpret_cast<const __m256i*>(g->qs + 32 * k));
          const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, _mm256_sign_epi8(yv, q)), ones);
          acc[b] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(_mm256_set1_ps(dw), _mm256_load_ps(g->d + 8 * k)),
                                   acc[b]);
        }
      }
    }
    for (; i < nb; ++i) {  // the last 1..3 blocks (plain Q8_0 activations), same chain
      const block_q8_0* x = reinterpret_cast<const block_q8_0*>(w) + i;
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x->qs));
#pragma GCC unroll 8
      for (int b = 0; b < B; ++b) {
        const block_q8_0* yb =
            reinterpret_cast<const block_q8_0*>(act + b * act_stride + (nb / 4) * sizeof(Q8_0G4Group)) + (i - nb / 4 * 4);
        const __m256i p = dot_i8_avx2(q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb->qs)));
        acc[b] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(_cvtsh_ss(x->d) * _cvtsh_ss(yb->d)), acc[b]);
      }
    }
#pragma GCC unroll 8
    for (int b = 0; b < B; ++b) y[b * y_stride] = hsum_f32x8(acc[b]);
  }
};

TS_AVX2 void dequantize_q8_0_avx2(const void* src, float* dst, int64_t n) {
  const block_q8_0* x = static_cast<const block_q8_0*>(src);
  for (int64_t i = 0; i < n / QK8_0; ++i, dst += QK8_0) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[i].d));
    for (int j = 0; j < QK8_0; j += 8) {
      const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x[i].qs + j)));
      _mm256_storeu_ps(dst + j, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
    }
  }
}

// ---------------------------------------------------------------- AVX-512

// Two blocks' 32 bytes side by side in one register.
TS_AVX512_VNNI inline __m512i load_2x32(const int8_t* a, const int8_t* b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a))),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b)), 1);
}

template <bool kVnni>
TS_AVX512_VNNI inline __m512i dpbusd(__m512i acc, __m512i u, __m512i s) {
  if constexpr (kVnni) {
    return _mm512_dpbusd_epi32(acc, u, s);
  } else {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
  }
}

// R weight rows against B activation rows (see rows_by_blocks) over Q8_0G4
// activations, summed exactly as ggml's vec_dot_q8_0_q8_0 (and llamafile's
// tinyBLAS) do: per block, 8 int32 lane sums of 4 products, then
// acc = fma(float(lanes), d_w * d_x, acc) into one 8-lane accumulator, block
// after block, and ggml's horizontal sum at the end — so q8_0 results match
// llama.cpp's bit for bit. Two blocks share a 512-bit dpbusd; the four fp16
// weight scales of a group come from one two-source word permute.
template <bool kVnni>
struct Q8_0BlockAvx512 {
  template <int R, int B>
  TS_AVX512_VNNI static void run(const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride, int64_t cols,
                                 float* y, int64_t y_stride, int64_t y_row_step) {
    const int64_t nb = cols / QK8_0;
    // word index (in 128 bytes from block 0) of block k's d: 17k (34 bytes per block)
    const __m512i d_index = _mm512_set_epi16(51, 51, 51, 51, 51, 51, 51, 51, 34, 34, 34, 34, 34, 34, 34, 34, 17, 17,
                                             17, 17, 17, 17, 17, 17, 0, 0, 0, 0, 0, 0, 0, 0);
    __m256 acc[R][B];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (int b = 0; b < B; ++b) acc[r][b] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const block_q8_0* x = reinterpret_cast<const block_q8_0*>(w + r * w_stride) + i;
        prefetch_ahead<2>(x);  // 136 bytes a step
        const __m512i q01 = load_2x32(x[0].qs, x[1].qs);
        const __m512i q23 = load_2x32(x[2].qs, x[3].qs);
        // |w| times y with w's sign (u8 x s8 form)
        const __m512i a01 = _mm512_abs_epi8(q01), a23 = _mm512_abs_epi8(q23);
        const __mmask64 n01 = _mm512_movepi8_mask(q01), n23 = _mm512_movepi8_mask(q23);
        const uint8_t* xb = reinterpret_cast<const uint8_t*>(x);
        const __m512i dh = _mm512_permutex2var_epi16(_mm512_loadu_si512(xb), d_index, _mm512_loadu_si512(xb + 64));
        const __m512 dw01 = _mm512_cvtph_ps(_mm512_castsi512_si256(dh));
        const __m512 dw23 = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(dh, 1));
#pragma GCC unroll 8
        for (int b = 0; b < B; ++b) {
          const Q8_0G4Group* g = reinterpret_cast<const Q8_0G4Group*>(act + b * act_stride) + i / 4;
          const __m512i y01 = _mm512_load_si512(g->qs), y23 = _mm512_load_si512(g->qs + 64);
          const __m512 p01 = _mm512_cvtepi32_ps(
              dpbusd<kVnni>(_mm512_setzero_si512(), a01, _mm512_mask_sub_epi8(y01, n01, _mm512_setzero_si512(), y01)));
          const __m512 p23 = _mm512_cvtepi32_ps(
              dpbusd<kVnni>(_mm512_setzero_si512(), a23, _mm512_mask_sub_epi8(y23, n23, _mm512_setzero_si512(), y23)));
          const __m512 d01 = _mm512_mul_ps(dw01, _mm512_load_ps(g->d));
          const __m512 d23 = _mm512_mul_ps(dw23, _mm512_load_ps(g->d + 16));
          __m256 s = acc[r][b];
          s = _mm256_fmadd_ps(_mm512_castps512_ps256(d01), _mm512_castps512_ps256(p01), s);
          s = _mm256_fmadd_ps(_mm512_extractf32x8_ps(d01, 1), _mm512_extractf32x8_ps(p01, 1), s);
          s = _mm256_fmadd_ps(_mm512_castps512_ps256(d23), _mm512_castps512_ps256(p23), s);
          s = _mm256_fmadd_ps(_mm512_extractf32x8_ps(d23, 1), _mm512_extractf32x8_ps(p23, 1), s);
          acc[r][b] = s;
        }
      }
    }
    // the last 1..3 blocks (plain Q8_0 activations after the groups), same chain
    for (; i < nb; ++i) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const block_q8_0* x = reinterpret_cast<const block_q8_0*>(w + r * w_stride) + i;
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x->qs));
#pragma GCC unroll 8
        for (int b = 0; b < B; ++b) {
          const block_q8_0* yb = reinterpret_cast<const block_q8_0*>(act + b * act_stride + (nb / 4) * sizeof(Q8_0G4Group)) +
                                 (i - nb / 4 * 4);
          const __m256i p = dot_i8_avx2(q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb->qs)));
          acc[r][b] = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(x->d) * _cvtsh_ss(yb->d)), _mm256_cvtepi32_ps(p), acc[r][b]);
        }
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (int b = 0; b < B; ++b) y[b * y_stride + r * y_row_step] = hsum_f32x8(acc[r][b]);
  }
};

#endif  // __x86_64__

// ---------------------------------------------------------------- NEON

#if defined(__aarch64__)

// Dot of 16 int8 pairs, 4 int32 partial sums.
inline int32x4_t dot_i8x16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
  return vdotq_s32(acc, a, b);
#else
  const int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
  const int16x8_t hi = vmull_high_s8(a, b);
  return vaddq_s32(acc, vaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)));
#endif
}

float dot_q8_0_neon(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const block_q8_0* x = reinterpret_cast<const block_q8_0*>(w);
  const block_q8_0* y = reinterpret_cast<const block_q8_0*>(act);
  float32x4_t acc = vdupq_n_f32(0.0f);
  for (int64_t i = 0; i < cols / QK8_0; ++i) {
    int32x4_t p = vdupq_n_s32(0);
    p = dot_i8x16(p, vld1q_s8(x[i].qs), vld1q_s8(y[i].qs));
    p = dot_i8x16(p, vld1q_s8(x[i].qs + 16), vld1q_s8(y[i].qs + 16));
    acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d));
  }
  return vaddvq_f32(acc);
}

#endif  // __aarch64__

}  // namespace

TypeKernels q8_0_kernels(PathVariant v) {
  TypeKernels k{ActFormat::Q8_0, quantize_q8_0_fn(v.path), dequantize_q8_0_scalar, rows_by_dot<dot_q8_0_scalar>};
#if defined(__x86_64__)
  if (v.path == CpuPath::Avx2 || v.path == CpuPath::Avx512) k.dequantize = dequantize_q8_0_avx2;
  if (v.path == CpuPath::Avx2) {
    k.act = ActFormat::Q8_0G4;
    k.quantize = quantize_q8_0g4_fn(v.path);
    k.rows = rows_by_tiles<Q8_0RowAvx2>;
  }
  if (v.path == CpuPath::Avx512) {
    k.act = ActFormat::Q8_0G4;
    k.quantize = quantize_q8_0g4_fn(v.path);
    k.rows = v.vnni ? rows_by_blocks<Q8_0BlockAvx512<true>> : rows_by_blocks<Q8_0BlockAvx512<false>>;
  }
#elif defined(__aarch64__)
  if (v.path == CpuPath::Neon) k.rows = rows_by_dot<dot_q8_0_neon>;
#endif
  return k;
}

}  // namespace kimpl
}  // namespace ts
