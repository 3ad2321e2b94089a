// GEMM path for Q4_0 weights (see gemm.h): AVX-512, with VNNI or with the
// maddubs emulation of vpdpbusd (weights are 0..15, so the int16 pair sums
// of maddubs cannot saturate).
//
// Panel layout (per-thread scratch): for each 32-block i, 8 k-steps of 64
// bytes — lane r (4 bytes) holds row r's values 4k..4k+3 of the block as
// unsigned 0..15 — then the 16 rows' scales widened to f32. Within a block
// the order of the products does not matter (the block sum is exact in
// int32), so k-step s takes the low nibbles of bytes 4s..4s+3 for s < 4 and
// the high nibbles of bytes 4(s-4).. for s >= 4, i.e. values 4s..4s+3 in
// element order, matching the activation bytes at 4s.
#pragma GCC optimize("fp-contract=off")
#include <algorithm>
#include <cstring>

#include "kernels/gemm.h"
#include "kernels/simd.h"

namespace ts {
namespace kimpl {

#if defined(__x86_64__)
namespace {

constexpr size_t kPanelBlockQuantBytes = kBlockPanelQuantBytes;

// Rows r0..r0+15 of the weights (rows past the end repeat the last row; their
// outputs are not stored) into the panel layout.
TS_AVX512 void repack_q4_0_panel(const GemmPanelArgs& a, int64_t r0, uint8_t* scratch) {
  const int64_t nb = a.cols / QK4_0;
  alignas(64) int32_t offs[16];
  const uint8_t* base = stage_panel_rows(a.w, a.w_row_bytes, a.rows, r0,
                                         scratch + block_panel_stage_offset(nb), offs);
  const __m512i gather_index = _mm512_load_si512(offs);
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  uint8_t* q = scratch;
  float* d = reinterpret_cast<float*>(scratch + static_cast<size_t>(nb) * kPanelBlockQuantBytes);
  for (int64_t i = 0; i < nb; ++i, q += kPanelBlockQuantBytes) {
    const uint8_t* blk = base + i * sizeof(block_q4_0);
    // A[k] 128-bit lane j: the 16 value bytes of row 4j + k
    __m512i A[4];
    for (int k = 0; k < 4; ++k) {
      __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + offs[k] + 2)));
      v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + offs[4 + k] + 2)), 1);
      v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + offs[8 + k] + 2)), 2);
      A[k] = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + offs[12 + k] + 2)), 3);
    }
    // 4x4 transpose of dwords within each 128-bit lane: T[s] lane 4j + k = row 4j + k's bytes 4s..4s+3
    const __m512i t0 = _mm512_unpacklo_epi32(A[0], A[1]), t1 = _mm512_unpackhi_epi32(A[0], A[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(A[2], A[3]), t3 = _mm512_unpackhi_epi32(A[2], A[3]);
    const __m512i T[4] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2), _mm512_unpacklo_epi64(t1, t3),
                          _mm512_unpackhi_epi64(t1, t3)};
    for (int s = 0; s < 4; ++s) {
      _mm512_store_si512(q + 64 * s, _mm512_and_si512(T[s], low4));
      _mm512_store_si512(q + 64 * (s + 4), _mm512_and_si512(_mm512_srli_epi16(T[s], 4), low4));
    }
    // the 16 rows' fp16 d (the 4 bytes at each block's start: d, then 2 value bytes)
    const __m512i dd = _mm512_i32gather_epi32(gather_index, blk, 1);
    _mm512_store_ps(d + 16 * i, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd)));
  }
}

template <bool kVnni>
TS_AVX512_VNNI inline __m512i dpbusd(__m512i acc, __m512i u, __m512i s) {
  if constexpr (kVnni) {
    return _mm512_dpbusd_epi32(acc, u, s);
  } else {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
  }
}

inline int32_t load_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The panel's 16 rows times one tile of N columns. Per block and column: the
// exact int32 sum (offset -8 * sum(x) + sum of (q)(x)), then
// acc = fma(float(sum), d_w * d_x, acc), as Q4_0BlockAvx512 sums.
template <int N, bool kVnni>
TS_AVX512_VNNI void q4_0_tile(const uint8_t* q, const float* dw, const uint8_t* act, int64_t nb, float* y,
                              int64_t y_stride, __mmask16 mask) {
  __m512 acc[N];
#pragma GCC unroll 8
  for (int j = 0; j < N; ++j) acc[j] = _mm512_setzero_ps();
  const size_t block_bytes = q8_0_tile_block_bytes(N, 1);
  for (int64_t i = 0; i < nb; ++i, act += block_bytes, q += kPanelBlockQuantBytes) {
    __m512i s[N];
#pragma GCC unroll 8
    for (int j = 0; j < N; ++j) s[j] = _mm512_set1_epi32(load_i32(act + 36 * N + 4 * j));
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      const __m512i w = _mm512_load_si512(q + 64 * k);
#pragma GCC unroll 8
      for (int j = 0; j < N; ++j) s[j] = dpbusd<kVnni>(s[j], w, _mm512_set1_epi32(load_i32(act + 32 * j + 4 * k)));
    }
    const __m512 d = _mm512_load_ps(dw + 16 * i);
#pragma GCC unroll 8
    for (int j = 0; j < N; ++j) {
      float dx;
      std::memcpy(&dx, act + 32 * N + 4 * j, 4);
      acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[j]), _mm512_mul_ps(d, _mm512_set1_ps(dx)), acc[j]);
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < N; ++j) _mm512_mask_storeu_ps(y + j * y_stride, mask, acc[j]);
}

template <bool kVnni>
void q4_0_panel(const GemmPanelArgs& a, int64_t r0, uint8_t* scratch) {
  repack_q4_0_panel(a, r0, scratch);
  const int64_t nb = a.cols / QK4_0;
  const float* dw = reinterpret_cast<const float*>(scratch + static_cast<size_t>(nb) * kPanelBlockQuantBytes);
  const int64_t valid = std::min<int64_t>(kGemmPanelRows, a.rows - r0);
  const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1);
  for (int64_t b0 = 0, t = 0; b0 < a.batch; b0 += kGemmTileCols, ++t) {
    const uint8_t* act = a.act + q8_0_tile_offset(nb, t, 1);
    float* y = a.y + b0 * a.y_stride + r0;
    switch (std::min(kGemmTileCols, a.batch - b0)) {
      case 8: q4_0_tile<8, kVnni>(scratch, dw, act, nb, y, a.y_stride, mask); break;
      case 7: q4_0_tile<7, kVnni>(scratch, dw, act, nb, y, a.y_stride, mask); break;
      case 6: q4_0_tile<6, kVnni>(scratch, dw, act, nb, y, a.y_stride, mask); break;
      case 5: q4_0_tile<5, kVnni>(scratch, dw, act, nb, y, a.y_stride, mask); break;
      case 4: q4_0_tile<4, kVnni>(scratch, dw, act, nb, y, a.y_stride, mask); break;
      case 3: q4_0_tile<3, kVnni>(scratch, dw, act, nb, y, a.y_stride, mask); break;
      case 2: q4_0_tile<2, kVnni>(scratch, dw, act, nb, y, a.y_stride, mask); break;
      default: q4_0_tile<1, kVnni>(scratch, dw, act, nb, y, a.y_stride, mask); break;
    }
  }
}

}  // namespace
#endif  // __x86_64__

GemmKernels gemm_q4_0_kernels(PathVariant v) {
  GemmKernels g;
#if defined(__x86_64__)
  if (v.path == CpuPath::Avx512) {
    g.panel = v.vnni ? q4_0_panel<true> : q4_0_panel<false>;
    g.min_batch = 8;
    g.quantize_path = v.path;
    g.offset_groups = 1;
    g.offset_mul = -8;
  }
#else
  (void)v;
#endif
  return g;
}

}  // namespace kimpl
}  // namespace ts
