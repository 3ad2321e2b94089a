// GEMM path for Q8_0, Q5_0, Q4_1 and Q5_1 weights (see gemm.h), in ggml's
// 8-lane order. Q8_0: AVX-512 with VNNI only: without
// VNNI the unsigned side of vpmaddubsw would be w + 128 (up to 255) and its
// int16 pair sums could saturate, so those CPUs keep the row kernels.
//
// Q8_0's row kernels (and ggml's vec_dot_q8_0_q8_0 and llamafile's tinyBLAS,
// which llama.cpp uses for prompts) do NOT sum a block exactly: each output
// keeps 8 float lanes, lane l takes the exact sum of products 4l..4l+3 of
// every block, acc_l = fma(d_w * d_x, float(sum), acc_l), and the 8 lanes are
// added at the end as ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)). The microkernel
// keeps that order: per (column, lane) one 16-row accumulator, so a column
// costs 8 accumulators and a block 8 conversions and fmas per column — about
// twice Q4_0's GEMM per product, for the same bits as the row kernels.
//
// Panel layout: as Q4_0's (gemm_q4_0.cpp), 8 k-steps of 64 bytes per block —
// lane r = row r's values 4k..4k+3 — XOR 0x80 (signed to u8 + 128), then the
// 16 rows' f32 scales. The activation tiles carry -128 * (sum of each lane
// group's 4 values) to undo the + 128 exactly.
#pragma GCC optimize("fp-contract=off")
#include <algorithm>
#include <cstddef>
#include <cstring>

#include "kernels/gemm.h"
#include "kernels/simd.h"

namespace ts {
namespace kimpl {

#if defined(__x86_64__)
namespace {

constexpr size_t kPanelBlockQuantBytes = kBlockPanelQuantBytes;
constexpr int kGroups = 8;  // offset groups per block in the activation tiles

TS_AVX512 void repack_q8_0_panel(const GemmPanelArgs& a, const PanelJob& job, uint8_t* scratch) {
  const int64_t r0 = job.r0;
  const int64_t nb = a.cols / QK8_0;
  alignas(64) int32_t offs[16];
  const uint8_t* base = stage_panel_rows(a.w, a.w_row_bytes, a.rows, r0, job.prefetched,
                                         scratch + block_panel_stage_offset(nb), offs);
  const __m512i gather_index = _mm512_load_si512(offs);
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  uint8_t* q = scratch;
  float* d = reinterpret_cast<float*>(scratch + static_cast<size_t>(nb) * kPanelBlockQuantBytes);
  for (int64_t i = 0; i < nb; ++i, q += kPanelBlockQuantBytes) {
    const uint8_t* blk = base + i * sizeof(block_q8_0);
    for (int h = 0; h < 2; ++h) {  // values 16h..16h+15
      // A[k] 128-bit lane j: row 4j + k's 16 values
      __m512i A[4];
      for (int k = 0; k < 4; ++k) {
        const uint8_t* v = blk + 2 + 16 * h;
        __m512i t = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + offs[k])));
        t = _mm512_inserti32x4(t, _mm_loadu_si128(reinterpret_cast<const __m128i*>(v + offs[4 + k])), 1);
        t = _mm512_inserti32x4(t, _mm_loadu_si128(reinterpret_cast<const __m128i*>(v + offs[8 + k])), 2);
        A[k] = _mm512_inserti32x4(t, _mm_loadu_si128(reinterpret_cast<const __m128i*>(v + offs[12 + k])), 3);
      }
      const __m512i t0 = _mm512_unpacklo_epi32(A[0], A[1]), t1 = _mm512_unpackhi_epi32(A[0], A[1]);
      const __m512i t2 = _mm512_unpacklo_epi32(A[2], A[3]), t3 = _mm512_unpackhi_epi32(A[2], A[3]);
      _mm512_store_si512(q + 64 * (4 * h + 0), _mm512_xor_si512(_mm512_unpacklo_epi64(t0, t2), bias));
      _mm512_store_si512(q + 64 * (4 * h + 1), _mm512_xor_si512(_mm512_unpackhi_epi64(t0, t2), bias));
      _mm512_store_si512(q + 64 * (4 * h + 2), _mm512_xor_si512(_mm512_unpacklo_epi64(t1, t3), bias));
      _mm512_store_si512(q + 64 * (4 * h + 3), _mm512_xor_si512(_mm512_unpackhi_epi64(t1, t3), bias));
    }
    const __m512i dd = _mm512_i32gather_epi32(gather_index, blk, 1);
    _mm512_store_ps(d + 16 * i, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd)));
  }
}

// Q5_0, Q4_1, Q5_1 (the same order as Q8_0's row kernels: ggml's
// vec_dot_q5_0_q8_0 / q4_1_q8_1 / q5_1_q8_1): the panel holds the 4- or 5-bit
// values q (0..31) as they are, in element order — the nibbles as Q4_0's
// repack takes them, bit 4 from qh — then the scales (and Q4_1/Q5_1's mins
// m). Q5_0's "- 16" comes in as the tiles' offsets (-16 * each group's sum);
// Q4_1/Q5_1 add m * s per block in their own chain. q <= 31 keeps
// vpmaddubsw's pair sums in range, so these have non-VNNI variants.
template <class Block, bool kFive, bool kMin>
TS_AVX512 void repack_nibbles_panel(const GemmPanelArgs& a, const PanelJob& job, uint8_t* scratch) {
  const int64_t r0 = job.r0;
  const int64_t nb = a.cols / 32;
  alignas(64) int32_t offs[16];
  const uint8_t* base = stage_panel_rows(a.w, a.w_row_bytes, a.rows, r0, job.prefetched, scratch + block_panel_stage_offset(nb), offs);
  const __m512i gather_index = _mm512_load_si512(offs);
  const __m512i low4 = _mm512_set1_epi8(0x0f), bit0s = _mm512_set1_epi32(0x01010101);
  // spreads bits 0..3 of a lane to bits 0, 8, 16, 24 (the 4-bit terms of the product cannot overlap)
  const __m512i spread = _mm512_set1_epi32(0x00204081);
  uint8_t* q = scratch;
  float* d = reinterpret_cast<float*>(scratch + static_cast<size_t>(nb) * kPanelBlockQuantBytes);
  float* m = d + 16 * nb;
  for (int64_t i = 0; i < nb; ++i, q += kPanelBlockQuantBytes) {
    const uint8_t* blk = base + i * sizeof(Block);
    __m512i A[4];  // 128-bit lane j: row 4j + k's 16 nibble bytes
    for (int k = 0; k < 4; ++k) {
      const uint8_t* v = blk + offsetof(Block, qs);
      __m512i t = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + offs[k])));
      t = _mm512_inserti32x4(t, _mm_loadu_si128(reinterpret_cast<const __m128i*>(v + offs[4 + k])), 1);
      t = _mm512_inserti32x4(t, _mm_loadu_si128(reinterpret_cast<const __m128i*>(v + offs[8 + k])), 2);
      A[k] = _mm512_inserti32x4(t, _mm_loadu_si128(reinterpret_cast<const __m128i*>(v + offs[12 + k])), 3);
    }
    const __m512i t0 = _mm512_unpacklo_epi32(A[0], A[1]), t1 = _mm512_unpackhi_epi32(A[0], A[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(A[2], A[3]), t3 = _mm512_unpackhi_epi32(A[2], A[3]);
    const __m512i T[4] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2), _mm512_unpacklo_epi64(t1, t3),
                          _mm512_unpackhi_epi64(t1, t3)};
    __m512i qh = _mm512_setzero_si512();  // lane r: row r's bits 4
    if constexpr (kFive) qh = _mm512_i32gather_epi32(gather_index, blk + offsetof(Block, qh), 1);
    for (int s = 0; s < 8; ++s) {  // k-step s: elements 4s..4s+3
      __m512i v = s < 4 ? _mm512_and_si512(T[s], low4) : _mm512_and_si512(_mm512_srli_epi16(T[s - 4], 4), low4);
      if constexpr (kFive) {
        const __m512i bits = _mm512_and_si512(_mm512_srli_epi32(qh, 4 * s), _mm512_set1_epi32(0x0f));
        v = _mm512_or_si512(v, _mm512_slli_epi32(_mm512_and_si512(_mm512_mullo_epi32(bits, spread), bit0s), 4));
      }
      _mm512_store_si512(q + 64 * s, v);
    }
    const __m512i dd = _mm512_i32gather_epi32(gather_index, blk, 1);  // d (and m) at the block's start
    _mm512_store_ps(d + 16 * i, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd)));
    if constexpr (kMin) _mm512_store_ps(m + 16 * i, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16))));
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

// The panel's 16 rows times columns j0..j0+N-1 of a tile of n columns.
// kMins (Q4_1, Q5_1): no offsets; the tile's s and the panel's mins (after
// its scales) feed the chain sm = fma(m_w, s_x, sm), added at the end.
template <int N, bool kVnni, bool kMins>
TS_AVX512_VNNI void q8_0_tile(const uint8_t* q, const float* dw, const uint8_t* act, int64_t n, int64_t j0, int64_t nb,
                              float* y, int64_t y_stride, __mmask16 mask, PanelPrefetch& pf) {
  constexpr int G = kMins ? 1 : kGroups;
  __m512 acc[N][8], sm[N];
#pragma GCC unroll 8
  for (int j = 0; j < N; ++j) {
    sm[j] = _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int l = 0; l < 8; ++l) acc[j][l] = _mm512_setzero_ps();
  }
  const float* mw = dw + 16 * nb;
  const size_t block_bytes = q8_0_tile_block_bytes(n, G);
  for (int64_t i = 0; i < nb; ++i, act += block_bytes, q += kPanelBlockQuantBytes) {
    pf.step();
    const uint8_t* values = act + 32 * j0;
    const uint8_t* dx = act + 32 * n + 4 * j0;
    const uint8_t* offsets = act + 36 * n + 4 * G * j0;
    if constexpr (kMins) {
      const __m512 m = _mm512_load_ps(mw + 16 * i);
#pragma GCC unroll 8
      for (int j = 0; j < N; ++j) {
        float sx;
        std::memcpy(&sx, offsets + 4 * j, 4);
        sm[j] = _mm512_fmadd_ps(m, _mm512_set1_ps(sx), sm[j]);
      }
    }
    const __m512 d = _mm512_load_ps(dw + 16 * i);
    __m512 ds[N];
#pragma GCC unroll 8
    for (int j = 0; j < N; ++j) {
      float s;
      std::memcpy(&s, dx + 4 * j, 4);
      ds[j] = _mm512_mul_ps(d, _mm512_set1_ps(s));
    }
#pragma GCC unroll 8
    for (int l = 0; l < 8; ++l) {
      const __m512i w = _mm512_load_si512(q + 64 * l);
#pragma GCC unroll 8
      for (int j = 0; j < N; ++j) {
        const __m512i init = kMins ? _mm512_setzero_si512() : _mm512_set1_epi32(load_i32(offsets + 4 * (G * j + l)));
        const __m512i p = dpbusd<kVnni>(init, w, _mm512_set1_epi32(load_i32(values + 32 * j + 4 * l)));
        acc[j][l] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), ds[j], acc[j][l]);
      }
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < N; ++j) {
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(acc[j][0], acc[j][4]), _mm512_add_ps(acc[j][2], acc[j][6])),
                             _mm512_add_ps(_mm512_add_ps(acc[j][1], acc[j][5]), _mm512_add_ps(acc[j][3], acc[j][7])));
    if constexpr (kMins) s = _mm512_add_ps(s, sm[j]);
    _mm512_mask_storeu_ps(y + j * y_stride, mask, s);
  }
}

using RepackFn = void (*)(const GemmPanelArgs& a, const PanelJob& job, uint8_t* scratch);

template <RepackFn Repack, bool kVnni, bool kMins = false>
void eight_lane_panel(const GemmPanelArgs& a, const PanelJob& job, uint8_t* scratch) {
  const int64_t r0 = job.r0;
  constexpr int64_t kCols = kMins ? 2 : 3;  // columns per microkernel call (8 accumulators each, + 1)
  constexpr int G = kMins ? 1 : kGroups;
  Repack(a, job, scratch);
  const int64_t nb = a.cols / QK8_0;
  int64_t calls = 0;
  for (int64_t b0 = 0; b0 < a.batch; b0 += kGemmTileCols) calls += (std::min(kGemmTileCols, a.batch - b0) + kCols - 1) / kCols;
  PanelPrefetch pf;
  pf.init(a, job.next_r0, nb * calls);
  const float* dw = reinterpret_cast<const float*>(scratch + static_cast<size_t>(nb) * kPanelBlockQuantBytes);
  const int64_t valid = std::min<int64_t>(kGemmPanelRows, a.rows - r0);
  const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1);
  for (int64_t b0 = 0, t = 0; b0 < a.batch; b0 += kGemmTileCols, ++t) {
    const uint8_t* act = a.act + q8_0_tile_offset(nb, t, G);
    const int64_t n = std::min(kGemmTileCols, a.batch - b0);
    for (int64_t j0 = 0; j0 < n; j0 += kCols) {
      float* y = a.y + (b0 + j0) * a.y_stride + r0;
      switch (std::min(kCols, n - j0)) {
        case 3: q8_0_tile<3, kVnni, kMins>(scratch, dw, act, n, j0, nb, y, a.y_stride, mask, pf); break;
        case 2: q8_0_tile<2, kVnni, kMins>(scratch, dw, act, n, j0, nb, y, a.y_stride, mask, pf); break;
        default: q8_0_tile<1, kVnni, kMins>(scratch, dw, act, n, j0, nb, y, a.y_stride, mask, pf); break;
      }
    }
  }
}

}  // namespace
#endif  // __x86_64__

GemmKernels gemm_q8_0_kernels(PathVariant v) {
  GemmKernels g;
#if defined(__x86_64__)
  if (v.path == CpuPath::Avx512 && v.vnni) {
    g.panel = eight_lane_panel<repack_q8_0_panel, true>;
    g.min_batch = 5;
    g.quantize_path = v.path;
    g.offset_groups = kGroups;
    g.offset_mul = -128;
  }
#else
  (void)v;
#endif
  return g;
}

GemmKernels gemm_q5_0_kernels(PathVariant v) {
  GemmKernels g;
#if defined(__x86_64__)
  if (v.path == CpuPath::Avx512) {
    g.panel = v.vnni ? eight_lane_panel<repack_nibbles_panel<block_q5_0, true, false>, true>
                     : eight_lane_panel<repack_nibbles_panel<block_q5_0, true, false>, false>;
    g.min_batch = 5;
    g.quantize_path = v.path;
    g.offset_groups = kGroups;
    g.offset_mul = -16;
  }
#else
  (void)v;
#endif
  return g;
}

template <class Block, bool kFive>
GemmKernels gemm_q_1_kernels(PathVariant v) {
  GemmKernels g;
#if defined(__x86_64__)
  if (v.path == CpuPath::Avx512) {
    g.panel = v.vnni ? eight_lane_panel<repack_nibbles_panel<Block, kFive, true>, true, true>
                     : eight_lane_panel<repack_nibbles_panel<Block, kFive, true>, false, true>;
    g.min_batch = 5;
    g.quantize_path = v.path;
    g.offset_groups = 1;
    g.q8_1 = true;
  }
#else
  (void)v;
#endif
  return g;
}

GemmKernels gemm_q4_1_kernels(PathVariant v) { return gemm_q_1_kernels<block_q4_1, false>(v); }
GemmKernels gemm_q5_1_kernels(PathVariant v) { return gemm_q_1_kernels<block_q5_1, true>(v); }

}  // namespace kimpl
}  // namespace ts
