// The GEMM driver (see gemm.h): quantize the activations once into Q8_0
// column tiles, then one pool task per panel of 16 weight rows, each
// repacking its panel into its thread's scratch and running the family's
// microkernel over every tile.
#include <algorithm>
#include <cstring>

#include "kernels/fp16.h"
#include "kernels/gemm.h"
#include "runtime/thread_pool.h"

namespace ts {
namespace kimpl {

namespace {
constexpr size_t align64(size_t n) { return (n + 63) & ~size_t{63}; }

// Quantize columns [b0, b0 + n) of X (rows of `cols` floats) into one tile.
void quantize_tile(const GemmKernels& g, QuantizeRowFn quantize, const float* x, int64_t cols, int64_t b0, int64_t n,
                   uint8_t* tile) {
  const int64_t nb = cols / QK8_0;
  const int groups = g.offset_groups, group_len = QK8_0 / groups;
  const size_t block_bytes = q8_0_tile_block_bytes(n, groups);
  for (int64_t j = 0; j < n; ++j) {
    const float* xr = x + static_cast<size_t>(b0 + j) * cols;
    for (int64_t i = 0; i < nb; ++i) {
      uint8_t* blk = tile + static_cast<size_t>(i) * block_bytes;
      block_q8_0 q;
      if (g.q8_1) {
        block_q8_1 q1;
        quantize(xr + i * QK8_1, &q1, QK8_1);
        std::memcpy(blk + 32 * j, q1.qs, QK8_1);
        const float d = fp16_to_fp32(q1.d), s = fp16_to_fp32(q1.s);
        std::memcpy(blk + 32 * n + 4 * j, &d, 4);
        std::memcpy(blk + 36 * n + 4 * j, &s, 4);
        continue;
      }
      quantize(xr + i * QK8_0, &q, QK8_0);
      std::memcpy(blk + 32 * j, q.qs, QK8_0);
      const float d = fp16_to_fp32(q.d);
      std::memcpy(blk + 32 * n + 4 * j, &d, 4);
      int32_t* offsets = reinterpret_cast<int32_t*>(blk + 36 * n) + groups * j;
      for (int k = 0; k < groups; ++k) {
        int32_t sum = 0;
        for (int e = 0; e < group_len; ++e) sum += q.qs[k * group_len + e];
        offsets[k] = g.offset_mul * sum;
      }
    }
  }
}
}  // namespace

const uint8_t* stage_panel_rows(const uint8_t* w, size_t row_bytes, int64_t rows, int64_t r0, bool prefetched,
                                uint8_t* stage, int32_t* offs) {
  const int64_t valid = std::min<int64_t>(kGemmPanelRows, rows - r0);
  const uint8_t* src = w + static_cast<size_t>(r0) * row_bytes;
  for (int r = 0; r < kGemmPanelRows; ++r)
    offs[r] = static_cast<int32_t>(static_cast<size_t>(std::min<int64_t>(r, valid - 1)) * row_bytes);
  if (prefetched) return src;
  std::memcpy(stage, src, static_cast<size_t>(valid) * row_bytes);
  return stage;
}

size_t gemm_stage_bytes(int64_t cols) {
  // the widest row: Q8_0, 34 bytes per 32 values
  return align64(static_cast<size_t>(kGemmPanelRows) * static_cast<size_t>((cols + QK8_0 - 1) / QK8_0) * sizeof(block_q8_0));
}

size_t gemm_panel_bytes(int64_t cols) {
  // Q4_0, Q8_0: per 32-block, 8 k-steps of 64 bytes (16 rows x 4 values) and
  // 16 f32 scales; then the staged rows.
  const size_t nb = static_cast<size_t>((cols + QK8_0 - 1) / QK8_0);
  return align64(block_panel_stage_offset(static_cast<int64_t>(nb))) + gemm_stage_bytes(cols);
}

size_t gemm_scratch_bytes(int64_t cols, int64_t batch, int threads) {
  if (cols <= 0 || batch <= 0) return 0;
  const int64_t padded = (cols + QK8_0 - 1) / QK8_0 * QK8_0;
  return align64(q8_0_tiles_bytes(padded, batch, 8)) + static_cast<size_t>(std::max(threads, 1)) * gemm_panel_bytes(cols);
}

void gemm_matmul(ThreadPool& pool, const GemmKernels& g, const WeightMatrix& w, const float* x, int64_t batch,
                 float* y, int64_t y_stride, uint8_t* scratch) {
  const int64_t nb = w.cols / QK8_0;
  const int64_t n_tiles = (batch + kGemmTileCols - 1) / kGemmTileCols;
  uint8_t* act = scratch;
  const QuantizeRowFn quantize = g.q8_1 ? quantize_q8_1_fn(g.quantize_path) : quantize_q8_0_fn(g.quantize_path);
  auto quantize_task = [&](int t, int) {
    const int64_t b0 = t * kGemmTileCols;
    quantize_tile(g, quantize, x, w.cols, b0, std::min(kGemmTileCols, batch - b0), act + q8_0_tile_offset(nb, t, g.offset_groups));
  };
  if (batch * w.cols >= (int64_t{1} << 16)) {
    pool.parallel_for(static_cast<int>(n_tiles), quantize_task);
  } else {
    for (int t = 0; t < n_tiles; ++t) quantize_task(t, 0);
  }

  uint8_t* panel_scratch = scratch + align64(q8_0_tiles_bytes(w.cols, batch, g.offset_groups));
  const size_t panel_bytes = gemm_panel_bytes(w.cols);
  const GemmPanelArgs a{static_cast<const uint8_t*>(w.data), w.row_bytes, w.rows, w.cols, act, g.offset_groups, batch, y, y_stride};
  // Tasks of consecutive panels (about four per thread), so a thread knows
  // its next panel and can prefetch it (PanelPrefetch).
  const int64_t n_panels = (w.rows + kGemmPanelRows - 1) / kGemmPanelRows;
  const int64_t per_task = std::max<int64_t>(1, n_panels / (4 * pool.size()));
  const int64_t n_tasks = (n_panels + per_task - 1) / per_task;
  auto panel_task = [&](int task, int thread) {
    uint8_t* panel_scratch_t = panel_scratch + static_cast<size_t>(thread) * panel_bytes;
    const int64_t p1 = std::min(n_panels, (task + 1) * per_task);
    for (int64_t p = task * per_task; p < p1; ++p)
      g.panel(a, PanelJob{p * kGemmPanelRows, p + 1 < p1 ? (p + 1) * kGemmPanelRows : -1, p > task * per_task},
              panel_scratch_t);
  };
  pool.parallel_for(static_cast<int>(n_tasks), panel_task);
}

}  // namespace kimpl
}  // namespace ts
