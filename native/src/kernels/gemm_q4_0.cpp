// GEMM path for Q4_0 weights (see gemm.h): AVX-512, with VNNI or with
// vpmaddubsw (weights are 0..15, so its int16 pair sums cannot saturate),
// and AVX2.
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
TS_AVX512 void repack_q4_0_panel(const GemmPanelArgs& a, const PanelJob& job, uint8_t* scratch) {
  const int64_t r0 = job.r0;
  const int64_t nb = a.cols / QK4_0;
  alignas(64) int32_t offs[16];
  const uint8_t* base = stage_panel_rows(a.w, a.w_row_bytes, a.rows, r0, job.prefetched,
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
                              int64_t y_stride, __mmask16 mask, PanelPrefetch& pf) {
  __m512 acc[N];
#pragma GCC unroll 8
  for (int j = 0; j < N; ++j) acc[j] = _mm512_setzero_ps();
  const size_t block_bytes = q8_0_tile_block_bytes(N, 1);
  for (int64_t i = 0; i < nb; ++i, act += block_bytes, q += kPanelBlockQuantBytes) {
    pf.step();
    __m512i s[N];
#pragma GCC unroll 8
    for (int j = 0; j < N; ++j) s[j] = _mm512_set1_epi32(load_i32(act + 36 * N + 4 * j));
    if constexpr (kVnni) {
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) {
        const __m512i w = _mm512_load_si512(q + 64 * k);
#pragma GCC unroll 8
        for (int j = 0; j < N; ++j) s[j] = _mm512_dpbusd_epi32(s[j], w, _mm512_set1_epi32(load_i32(act + 32 * j + 4 * k)));
      }
    } else {
      // vpmaddubsw's int16 pair sums (|.| <= 2 * 15 * 127) summed over the
      // block's 8 k-steps still fit int16 (8 * 3810 < 32768): one vpmaddwd per block
      __m512i s16[N];
#pragma GCC unroll 8
      for (int j = 0; j < N; ++j) s16[j] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) {
        const __m512i w = _mm512_load_si512(q + 64 * k);
#pragma GCC unroll 8
        for (int j = 0; j < N; ++j)
          s16[j] = _mm512_add_epi16(s16[j], _mm512_maddubs_epi16(w, _mm512_set1_epi32(load_i32(act + 32 * j + 4 * k))));
      }
#pragma GCC unroll 8
      for (int j = 0; j < N; ++j) s[j] = _mm512_add_epi32(s[j], _mm512_madd_epi16(s16[j], _mm512_set1_epi16(1)));
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
void q4_0_panel(const GemmPanelArgs& a, const PanelJob& job, uint8_t* scratch) {
  const int64_t r0 = job.r0;
  repack_q4_0_panel(a, job, scratch);
  const int64_t nb = a.cols / QK4_0;
  PanelPrefetch pf;
  pf.init(a, job.next_r0, nb * ((a.batch + kGemmTileCols - 1) / kGemmTileCols));
  const float* dw = reinterpret_cast<const float*>(scratch + static_cast<size_t>(nb) * kPanelBlockQuantBytes);
  const int64_t valid = std::min<int64_t>(kGemmPanelRows, a.rows - r0);
  const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1);
  for (int64_t b0 = 0, t = 0; b0 < a.batch; b0 += kGemmTileCols, ++t) {
    const uint8_t* act = a.act + q8_0_tile_offset(nb, t, 1);
    float* y = a.y + b0 * a.y_stride + r0;
    switch (std::min(kGemmTileCols, a.batch - b0)) {
      case 8: q4_0_tile<8, kVnni>(scratch, dw, act, nb, y, a.y_stride, mask, pf); break;
      case 7: q4_0_tile<7, kVnni>(scratch, dw, act, nb, y, a.y_stride, mask, pf); break;
      case 6: q4_0_tile<6, kVnni>(scratch, dw, act, nb, y, a.y_stride, mask, pf); break;
      case 5: q4_0_tile<5, kVnni>(scratch, dw, act, nb, y, a.y_stride, mask, pf); break;
      case 4: q4_0_tile<4, kVnni>(scratch, dw, act, nb, y, a.y_stride, mask, pf); break;
      case 3: q4_0_tile<3, kVnni>(scratch, dw, act, nb, y, a.y_stride, mask, pf); break;
      case 2: q4_0_tile<2, kVnni>(scratch, dw, act, nb, y, a.y_stride, mask, pf); break;
      default: q4_0_tile<1, kVnni>(scratch, dw, act, nb, y, a.y_stride, mask, pf); break;
    }
  }
}


// ---------------------------------------------------------------- AVX2
// The same panel layout, repacked with 256-bit registers (rows 0..7 and
// 8..15 of a k-step are its two 32-byte halves); the microkernel sums each
// block's vpmaddubsw pair sums in int16 (as the non-VNNI AVX-512 one), two
// 8-row halves per column, 3 columns per call (16 ymm registers).

TS_AVX2 void repack_q4_0_panel_avx2(const GemmPanelArgs& a, const PanelJob& job, uint8_t* scratch) {
  const int64_t r0 = job.r0;
  const int64_t nb = a.cols / QK4_0;
  alignas(64) int32_t offs[16];
  const uint8_t* base = stage_panel_rows(a.w, a.w_row_bytes, a.rows, r0, job.prefetched, scratch + block_panel_stage_offset(nb), offs);
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  uint8_t* q = scratch;
  float* d = reinterpret_cast<float*>(scratch + static_cast<size_t>(nb) * kPanelBlockQuantBytes);
  for (int64_t i = 0; i < nb; ++i, q += kPanelBlockQuantBytes) {
    const uint8_t* blk = base + i * sizeof(block_q4_0);
    for (int hf = 0; hf < 2; ++hf) {  // rows 8hf..8hf+7
      const int32_t* o = offs + 8 * hf;
      __m256i A[4];  // 128-bit lane j: the 16 value bytes of row 8hf + 4j + k
      for (int k = 0; k < 4; ++k)
        A[k] = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(blk + o[4 + k] + 2),
                                   reinterpret_cast<const __m128i*>(blk + o[k] + 2));
      const __m256i t0 = _mm256_unpacklo_epi32(A[0], A[1]), t1 = _mm256_unpackhi_epi32(A[0], A[1]);
      const __m256i t2 = _mm256_unpacklo_epi32(A[2], A[3]), t3 = _mm256_unpackhi_epi32(A[2], A[3]);
      const __m256i T[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2), _mm256_unpacklo_epi64(t1, t3),
                            _mm256_unpackhi_epi64(t1, t3)};
      for (int st = 0; st < 4; ++st) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(q + 64 * st + 32 * hf), _mm256_and_si256(T[st], low4));
        _mm256_store_si256(reinterpret_cast<__m256i*>(q + 64 * (st + 4) + 32 * hf),
                           _mm256_and_si256(_mm256_srli_epi16(T[st], 4), low4));
      }
    }
    for (int r = 0; r < 16; ++r) d[16 * i + r] = _cvtsh_ss(reinterpret_cast<const block_q4_0*>(blk + offs[r])->d);
  }
}

template <int N>
TS_AVX2 void q4_0_tile_avx2(const uint8_t* q, const float* dw, const uint8_t* act, int64_t n, int64_t j0, int64_t nb,
                            float* y, int64_t y_stride, __m256i mask_lo, __m256i mask_hi) {
  __m256 acc[N][2];
#pragma GCC unroll 4
  for (int j = 0; j < N; ++j) acc[j][0] = acc[j][1] = _mm256_setzero_ps();
  const size_t block_bytes = q8_0_tile_block_bytes(n, 1);
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t i = 0; i < nb; ++i, act += block_bytes, q += kPanelBlockQuantBytes) {
    __m256i s16[N][2];
#pragma GCC unroll 4
    for (int j = 0; j < N; ++j) s16[j][0] = s16[j][1] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(q + 64 * k));
      const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(q + 64 * k + 32));
#pragma GCC unroll 4
      for (int j = 0; j < N; ++j) {
        const __m256i x = _mm256_set1_epi32(load_i32(act + 32 * (j0 + j) + 4 * k));
        s16[j][0] = _mm256_add_epi16(s16[j][0], _mm256_maddubs_epi16(w0, x));
        s16[j][1] = _mm256_add_epi16(s16[j][1], _mm256_maddubs_epi16(w1, x));
      }
    }
#pragma GCC unroll 4
    for (int j = 0; j < N; ++j) {
      const __m256i off = _mm256_set1_epi32(load_i32(act + 36 * n + 4 * (j0 + j)));
      float dx;
      std::memcpy(&dx, act + 32 * n + 4 * (j0 + j), 4);
      const __m256 dxv = _mm256_set1_ps(dx);
      for (int h = 0; h < 2; ++h) {
        const __m256i sum = _mm256_add_epi32(off, _mm256_madd_epi16(s16[j][h], ones));
        const __m256 ds = _mm256_mul_ps(_mm256_load_ps(dw + 16 * i + 8 * h), dxv);
        acc[j][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), ds, acc[j][h]);
      }
    }
  }
#pragma GCC unroll 4
  for (int j = 0; j < N; ++j) {
    _mm256_maskstore_ps(y + j * y_stride, mask_lo, acc[j][0]);
    _mm256_maskstore_ps(y + j * y_stride + 8, mask_hi, acc[j][1]);
  }
}

TS_AVX2 void q4_0_panel_avx2(const GemmPanelArgs& a, const PanelJob& job, uint8_t* scratch) {
  const int64_t r0 = job.r0;
  repack_q4_0_panel_avx2(a, PanelJob{r0, -1, false}, scratch);
  const int64_t nb = a.cols / QK4_0;
  const float* dw = reinterpret_cast<const float*>(scratch + static_cast<size_t>(nb) * kPanelBlockQuantBytes);
  const int valid = static_cast<int>(std::min<int64_t>(kGemmPanelRows, a.rows - r0));
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mask_lo = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), lane);
  const __m256i mask_hi = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid - 8), lane);
  for (int64_t b0 = 0, t = 0; b0 < a.batch; b0 += kGemmTileCols, ++t) {
    const uint8_t* act = a.act + q8_0_tile_offset(nb, t, 1);
    const int64_t n = std::min(kGemmTileCols, a.batch - b0);
    for (int64_t j0 = 0; j0 < n; j0 += 3) {
      float* y = a.y + (b0 + j0) * a.y_stride + r0;
      switch (std::min<int64_t>(3, n - j0)) {
        case 3: q4_0_tile_avx2<3>(scratch, dw, act, n, j0, nb, y, a.y_stride, mask_lo, mask_hi); break;
        case 2: q4_0_tile_avx2<2>(scratch, dw, act, n, j0, nb, y, a.y_stride, mask_lo, mask_hi); break;
        default: q4_0_tile_avx2<1>(scratch, dw, act, n, j0, nb, y, a.y_stride, mask_lo, mask_hi); break;
      }
    }
  }
}

}  // namespace
#endif  // __x86_64__

GemmKernels gemm_q4_0_kernels(PathVariant v) {
  GemmKernels g;
#if defined(__x86_64__)
  if (v.path == CpuPath::Avx2 || v.path == CpuPath::Avx512) {
    g.panel = v.path == CpuPath::Avx2 ? q4_0_panel_avx2 : v.vnni ? q4_0_panel<true> : q4_0_panel<false>;
    // AVX2 measured behind the row kernels at 8 with the weights from memory
    g.min_batch = v.path == CpuPath::Avx2 ? 16 : 5;
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
