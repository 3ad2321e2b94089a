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

// sum (q - 8) * y over the block as 8 x int32: q * y - 8 * y, both via maddubs.
TS_AVX2 inline __m256i dot_q4_0_block_avx2(const uint8_t* qs, const int8_t* ys) {
  const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ys));
  const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(unpack_q4_0_avx2(qs), y),
                                     _mm256_maddubs_epi16(_mm256_set1_epi8(8), y));
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

TS_AVX2 float dot_q4_0_avx2(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const block_q4_0* x = reinterpret_cast<const block_q4_0*>(w);
  const block_q8_0* y = reinterpret_cast<const block_q8_0*>(act);
  const int64_t nb = cols / QK4_0;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const __m256i p0 = dot_q4_0_block_avx2(x[i].qs, y[i].qs);
    const __m256i p1 = dot_q4_0_block_avx2(x[i + 1].qs, y[i + 1].qs);
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(_cvtsh_ss(x[i].d) * _cvtsh_ss(y[i].d)), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(_cvtsh_ss(x[i + 1].d) * _cvtsh_ss(y[i + 1].d)), acc1);
  }
  for (; i < nb; ++i) {
    const __m256i p0 = dot_q4_0_block_avx2(x[i].qs, y[i].qs);
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(_cvtsh_ss(x[i].d) * _cvtsh_ss(y[i].d)), acc0);
  }
  return hsum_f32x8(_mm256_add_ps(acc0, acc1));
}

// One weight row against B activation rows (see rows_by_tiles) over Q8_0N4
// activations, two blocks per step: [A, B] nibble bytes give [A lo, B lo]
// and [A hi, B hi], which line up with 32 contiguous bytes of group.lo and
// group.hi; the "- 8" comes in as the group's precomputed offset.
struct Q4_0RowAvx2 {
  template <int B>
  TS_AVX2 static void run(const uint8_t* w, const uint8_t* act, size_t act_stride, int64_t cols, float* y,
                          int64_t y_stride) {
    const int64_t nb = cols / QK4_0;
    const __m256i low4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    const __m256i dup4 = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    __m256 acc[B];
#pragma GCC unroll 8
    for (int b = 0; b < B; ++b) acc[b] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {  // blocks i + 2h, i + 2h + 1
        const block_q4_0* x = reinterpret_cast<const block_q4_0*>(w) + i + 2 * h;
        const __m256i q = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(x[1].qs),
                                              reinterpret_cast<const __m128i*>(x[0].qs));
        const __m256i lo = _mm256_and_si256(q, low4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
        const __m128i d2 = _mm_insert_epi16(_mm_cvtsi32_si128(x[0].d), x[1].d, 1);
        const __m256 dw = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_cvtph_ps(d2)), dup4);
#pragma GCC unroll 8
        for (int b = 0; b < B; ++b) {
          const Q8_0N4Group* g = reinterpret_cast<const Q8_0N4Group*>(act + b * act_stride) + i / 4;
          const __m256i p16 = _mm256_add_epi16(
              _mm256_maddubs_epi16(lo, _mm256_load_si256(reinterpret_cast<const __m256i*>(g->lo + 32 * h))),
              _mm256_maddubs_epi16(hi, _mm256_load_si256(reinterpret_cast<const __m256i*>(g->hi + 32 * h))));
          const __m256i p = _mm256_add_epi32(_mm256_madd_epi16(p16, ones),
                                             _mm256_load_si256(reinterpret_cast<const __m256i*>(g->offset + 8 * h)));
          acc[b] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw, _mm256_load_ps(g->d + 8 * h)), acc[b]);
        }
      }
    }
#pragma GCC unroll 8
    for (int b = 0; b < B; ++b) {
      float sum = hsum_f32x8(acc[b]);
      if (i < nb) {
        const uint8_t* tail = act + b * act_stride + (nb / 4) * sizeof(Q8_0N4Group);
        sum += dot_q4_0_avx2(w + i * sizeof(block_q4_0), tail, (nb - i) * QK4_0);
      }
      y[b * y_stride] = sum;
    }
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

// Four blocks at a time against Q8_0N4 activations: the four blocks' 16
// nibble bytes fill one register whose low nibbles line up with group.lo and
// high nibbles with group.hi; the "- 8" enters as the group's precomputed
// offset, and the four fp16 scales are picked out of the blocks with one
// word permute. Any last 1..3 blocks use plain Q8_0 activations. One weight
// row against B activation rows (see rows_by_tiles).
template <bool kVnni>
struct Q4_0RowAvx512 {
  template <int B>
  TS_AVX512_VNNI static void run(const uint8_t* w, const uint8_t* act, size_t act_stride, int64_t cols, float* y,
                                 int64_t y_stride) {
    const int64_t nb = cols / QK4_0;
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    // 16-bit word index of block k's d in 64 bytes from block 0: 9k (18 bytes per block)
    const __m512i d_index = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 27, 27, 27, 27, 18, 18,
                                             18, 18, 9, 9, 9, 9, 0, 0, 0, 0);
    __m512 acc0[B], acc1[B];
    #pragma GCC unroll 8
    for (int b = 0; b < B; ++b) acc0[b] = acc1[b] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
      const uint8_t* xb = w + i * sizeof(block_q4_0);
      __m512i q = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb + 2)));
      q = _mm512_inserti32x4(q, _mm_loadu_si128(reinterpret_cast<const __m128i*>(xb + 20)), 1);
      q = _mm512_inserti32x4(q, _mm_loadu_si128(reinterpret_cast<const __m128i*>(xb + 38)), 2);
      q = _mm512_inserti32x4(q, _mm_loadu_si128(reinterpret_cast<const __m128i*>(xb + 56)), 3);
      const __m512i lo = _mm512_and_si512(q, low4);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), low4);
      const __m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(d_index, _mm512_loadu_si512(xb))));
      #pragma GCC unroll 8
      for (int b = 0; b < B; ++b) {
        const Q8_0N4Group* g = reinterpret_cast<const Q8_0N4Group*>(act + b * act_stride) + i / 4;
        __m512i p = _mm512_load_si512(g->offset);
        p = dpbusd<kVnni>(p, lo, _mm512_load_si512(g->lo));
        p = dpbusd<kVnni>(p, hi, _mm512_load_si512(g->hi));
        const __m512 d = _mm512_mul_ps(dw, _mm512_load_ps(g->d));
        if (i & 4)
          acc1[b] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), d, acc1[b]);
        else
          acc0[b] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), d, acc0[b]);
      }
    }
    #pragma GCC unroll 8
    for (int b = 0; b < B; ++b) {
      float sum = hsum_f32x16(_mm512_add_ps(acc0[b], acc1[b]));
      if (i < nb) {
        const uint8_t* tail = act + b * act_stride + (nb / 4) * sizeof(Q8_0N4Group);
        sum += dot_q4_0_avx2(w + i * sizeof(block_q4_0), tail, (nb - i) * QK4_0);
      }
      y[b * y_stride] = sum;
    }
  }
};

// Exact integer sum of (q - 8) * y over one block (tails of the kernel below).
inline int isum_q4_0_block(const block_q4_0& x, const block_q8_0& y) {
  int s = 0;
  for (int j = 0; j < QK4_0 / 2; ++j)
    s += ((x.qs[j] & 0x0f) - 8) * y.qs[j] + ((x.qs[j] >> 4) - 8) * y.qs[j + QK4_0 / 2];
  return s;
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
                                 float* y, int64_t y_stride) {
    static_assert(R * B <= 4, "at most 4 outputs");
    const int64_t nb = cols / QK4_0;
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    // 16-bit word index of block k's d in 64 bytes from block 0: 9k (18 bytes per block)
    const __m512i d_index = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 27, 27, 27, 27, 18, 18,
                                             18, 18, 9, 9, 9, 9, 0, 0, 0, 0);
    __m128 acc = _mm_setzero_ps();  // lane s: output slot s = r * B + b
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
      __m512i p[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
      __m512 d[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const uint8_t* xb = w + r * w_stride + i * sizeof(block_q4_0);
        __m512i q = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb + 2)));
        q = _mm512_inserti32x4(q, _mm_loadu_si128(reinterpret_cast<const __m128i*>(xb + 20)), 1);
        q = _mm512_inserti32x4(q, _mm_loadu_si128(reinterpret_cast<const __m128i*>(xb + 38)), 2);
        q = _mm512_inserti32x4(q, _mm_loadu_si128(reinterpret_cast<const __m128i*>(xb + 56)), 3);
        const __m512i lo = _mm512_and_si512(q, low4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), low4);
        const __m512 dw =
            _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(d_index, _mm512_loadu_si512(xb))));
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
      for (int b = 0; b < B; ++b) y[b * y_stride + r] = out[r * B + b];
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
    k.rows = rows_by_tiles<Q4_0RowAvx2>;
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
