// Internal interface of the blocked GEMM path (prompt processing and
// many-sequence decode): Kernels::matmul hands batches of at least
// GemmKernels::min_batch activation rows to gemm_matmul (gemm.cpp), which
// quantizes the activations once into column tiles, then gives each pool
// task a panel of 16 weight rows. The task repacks its panel once into
// per-thread scratch in the layout the microkernel wants (lanes = rows) and
// multiplies it with every column tile, so the unpacking of each weight row
// is paid once per call instead of once per 4 activation rows.
//
// Each type family provides its repack + microkernel (gemm_q4_0.cpp, ...);
// they sum in the same order as the family's row kernels (each block's
// products exactly in int32, then one fma per block into one accumulator per
// output, blocks in order), so the results are bit-identical to theirs.
#pragma once
#include <cstddef>
#include <algorithm>
#include <cstdint>

#include "kernels/kernel_impl.h"

namespace ts {
namespace kimpl {

constexpr int64_t kGemmPanelRows = 16;  // one 512-bit register of int32 / f32 lanes
constexpr int64_t kGemmTileCols = 8;    // activation columns per microkernel call

// Q8_0 activations for the GEMM ("Q8_0 tiles"): columns in tiles of up to
// kGemmTileCols; a tile of n columns holds, for each 32-block i in order,
// n x 32 value bytes (column j's at 32 j), then n f32 scales, then n x G
// int32 offsets (column j's at G j) — so a microkernel call streams one
// sequential buffer. Tiles follow each other (the last one may be narrower).
// The values are those of quantize_q8_0 (bit for bit); offset g of a block
// is offset_mul * (sum of its values in group g), the block cut into G equal
// groups: Q4_0 (G = 1, -8) brings in its "- 8"; Q8_0 (G = 8, -128) undoes the
// +128 that makes its signed weights unsigned, per 4-value lane group.
inline size_t q8_0_tile_block_bytes(int64_t n, int groups) {
  return static_cast<size_t>(n) * (32 + 4 + 4 * static_cast<size_t>(groups));
}
inline size_t q8_0_tiles_bytes(int64_t cols, int64_t batch, int groups) {
  return static_cast<size_t>(cols / QK8_0) * q8_0_tile_block_bytes(batch, groups);
}
inline size_t q8_0_tile_offset(int64_t nb, int64_t tile, int groups) {
  return static_cast<size_t>(tile) * static_cast<size_t>(nb) * q8_0_tile_block_bytes(kGemmTileCols, groups);
}

// A panel's 16 rows are contiguous in the weights, but the repack reads them
// side by side: 16 streams per thread, which the hardware prefetchers follow
// poorly (from memory, under half the GEMV's rate even with software
// prefetch per row). So a panel whose rows were not prefetched
// (PanelPrefetch, below) is first copied in order into scratch (one
// sequential stream) and repacked from there; one whose rows were is
// repacked in place. Returns where the rows are and each row's byte offset
// there (rows past the end repeat the last row).
const uint8_t* stage_panel_rows(const uint8_t* w, size_t row_bytes, int64_t rows, int64_t r0, bool prefetched,
                                uint8_t* stage, int32_t* offs);
size_t gemm_stage_bytes(int64_t cols);

// Panels of 32-blocks (Q4_0, Q8_0, Q5_0, Q4_1, Q5_1): per block 8 k-steps of
// 64 bytes, then per block 16 f32 scales, then (Q4_1, Q5_1) per block 16 f32
// mins; the staged rows after that.
constexpr size_t kBlockPanelQuantBytes = 8 * 64;
inline size_t block_panel_stage_offset(int64_t nb) {
  return static_cast<size_t>(nb) * (kBlockPanelQuantBytes + 2 * 64);
}

struct GemmPanelArgs {
  const uint8_t* w;  // weight row 0
  size_t w_row_bytes;
  int64_t rows;      // all weight rows (the last panel may be partial)
  int64_t cols;
  const uint8_t* act;  // the activation tiles
  int offset_groups;   // of the tiles
  int64_t batch;
  float* y;
  int64_t y_stride;
};

// Which panel a call computes: rows [r0, r0 + 16) (clamped to a.rows);
// next_r0: the panel this thread takes next (-1: none), whose rows it
// prefetches meanwhile; prefetched: whether the previous call prefetched r0's.
struct PanelJob {
  int64_t r0;
  int64_t next_r0;
  bool prefetched;
};

// Repack the job's rows into `scratch` and write their outputs for every column.
using GemmPanelFn = void (*)(const GemmPanelArgs& a, const PanelJob& job, uint8_t* scratch);

// With few columns a panel's copy from memory (stage_panel_rows) costs about
// as much as its arithmetic, and the two would not overlap: so while one
// panel computes, its microkernel calls prefetch the next panel's rows (into
// L2), a few lines per block, spread over the calls.
struct PanelPrefetch {
  const char* p = nullptr;
  const char* end = nullptr;
  int lines_per_step = 0;
  // Set up for the panel at next_r0 over `steps` microkernel block steps.
  void init(const GemmPanelArgs& a, int64_t next_r0, int64_t steps) {
    if (next_r0 < 0 || steps <= 0) return;
    const int64_t rows = std::min<int64_t>(kGemmPanelRows, a.rows - next_r0);
    p = reinterpret_cast<const char*>(a.w + static_cast<size_t>(next_r0) * a.w_row_bytes);
    end = p + static_cast<size_t>(rows) * a.w_row_bytes;
    const int64_t lines = (end - p + 63) / 64;
    lines_per_step = static_cast<int>((lines + steps - 1) / steps);
  }
  void step() {
    for (int i = 0; i < lines_per_step && p < end; ++i, p += 64) __builtin_prefetch(p, 0, 2);
  }
};

struct GemmKernels {
  GemmPanelFn panel = nullptr;  // null: no GEMM path for this type / CPU path
  int64_t min_batch = 0;
  CpuPath quantize_path = CpuPath::Scalar;  // which quantize_q8_0 variant fills the tiles
  int offset_groups = 1;  // G above: 1 or 8
  int32_t offset_mul = 0;
  // Q8_1 activations (Q4_1, Q5_1): the tiles hold quantize_q8_1's values and
  // d, and in place of the (single) offset its s = d * sum as f32.
  bool q8_1 = false;
};

// Per-thread panel scratch for `cols` columns (the largest any family needs).
size_t gemm_panel_bytes(int64_t cols);
// Everything gemm_matmul needs in the matmul scratch.
size_t gemm_scratch_bytes(int64_t cols, int64_t batch, int threads);

// Families (null panel when the path has none).
GemmKernels gemm_q4_0_kernels(PathVariant v);
GemmKernels gemm_q8_0_kernels(PathVariant v);
GemmKernels gemm_q5_0_kernels(PathVariant v);
GemmKernels gemm_q4_1_kernels(PathVariant v);
GemmKernels gemm_q5_1_kernels(PathVariant v);

// Runs the GEMM path; scratch holds gemm_scratch_bytes(w.cols, batch, pool.size()).
void gemm_matmul(ThreadPool& pool, const GemmKernels& g, const WeightMatrix& w, const float* x, int64_t batch,
                 float* y, int64_t y_stride, uint8_t* scratch);

}  // namespace kimpl
}  // namespace ts
