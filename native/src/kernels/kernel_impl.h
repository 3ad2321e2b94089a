// Internal plumbing shared by the kernel files (not part of the engine
// interface). Each weight-type family file exposes one function that returns
// its TypeKernels for a CPU path; dispatch.cpp builds the table from them.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

namespace ts {
namespace kimpl {

// Decode reads every weight once per token, and the integer kernels' loops do
// enough work per byte that the hardware prefetchers alone keep too few lines
// in flight: from memory the Q4_0 GEMV ran at ~25 GB/s on one core against
// 47 GB/s with the same matrix in cache. So each step of a row kernel asks for
// the lines kPrefetchAhead bytes further along its stream (rows follow each
// other in memory, so past a row's end that is the next row of the stream).
// 2048 bytes measured best of 512..8192 (docs/kernels.md); the K-quant
// kernels, which do more work per byte, ask 3072 ahead (Q4_K / Q6_K streamed
// from memory, paired runs: +1-7 %; TinyLlama Q4_K_M decode +6 %). The best
// distance moves with the memory's speed, which this VM changes by 2x within
// minutes. A prefetch never faults.
constexpr size_t kPrefetchAhead = 2048;
constexpr size_t kPrefetchAheadKQuant = 3072;
template <int Lines, size_t Ahead = kPrefetchAhead>
inline void prefetch_ahead(const void* p) {
  for (int l = 0; l < Lines; ++l) __builtin_prefetch(static_cast<const char*>(p) + Ahead + 64 * l, 0, 3);
}

// What a weight type's dot products consume on the activation side.
// Q8_0N4 / Q8_0G4: the Q8_0 values regrouped for the AVX-512 Q4_0 / Q8_0
// kernels (see Q8_0N4Group / Q8_0G4Group); a row is cols / 128 groups, then
// any remaining blocks as plain block_q8_0.
enum class ActFormat : uint8_t { F32, Q8_0, Q8_K, Q8_0N4, Q8_0G4, Q8_1 };

// Four Q8_0 blocks k = 0..3 laid out to match four Q4_0 blocks' nibbles in
// one 512-bit register: low nibbles hold values 0..15 of each block, high
// nibbles values 16..31.
struct alignas(64) Q8_0N4Group {
  int8_t lo[64];      // block k's values 0..15 at 16k
  int8_t hi[64];      // block k's values 16..31 at 16k
  int32_t offset[16];  // lane 4k: -8 * (sum of block k's values), others 0 (Q4_0's "- 8")
  float d[16];        // lanes 4k..4k+3: block k's scale (the fp16 d, widened)
};
static_assert(sizeof(Q8_0N4Group) == 256, "Q8_0N4Group layout");

// Four Q8_0 blocks' values back to back, with their scales widened to f32
// and repeated for the 8 int32 lanes each block's dot product fills.
struct alignas(64) Q8_0G4Group {
  int8_t qs[128];  // block k's values at 32k
  float d[32];     // lanes 8k..8k+7: block k's scale
};
static_assert(sizeof(Q8_0G4Group) == 256, "Q8_0G4Group layout");

// Bytes one activation row of `cols` elements occupies in scratch (a multiple
// of 64 so rows never share a cache line). For F32 this is the caller's
// stride: cols * 4 (F32 rows are read straight from X, not copied).
size_t act_row_bytes(ActFormat f, int64_t cols);

struct RowsArgs {
  const uint8_t* w;      // weight row 0
  size_t w_row_bytes;
  int64_t cols;
  const uint8_t* act;    // activation row 0 (f32 or quantized blocks)
  size_t act_row_bytes;
  int64_t batch;
  float* y;
  int64_t y_stride;
};

using QuantizeRowFn = void (*)(const float* x, void* dst, int64_t n);
using DequantizeRowFn = void (*)(const void* src, float* dst, int64_t n);
// y[b * y_stride + r] for r in [r0, r1), b in [0, batch).
using RowsFn = void (*)(const RowsArgs& a, int64_t r0, int64_t r1);

struct TypeKernels {
  ActFormat act = ActFormat::F32;
  QuantizeRowFn quantize = nullptr;  // activation quantizer; null for F32
  DequantizeRowFn dequantize = nullptr;
  RowsFn rows = nullptr;
};

// Variant selector within a path (AVX-512 with or without VNNI).
struct PathVariant {
  CpuPath path;
  bool vnni;
};

TypeKernels f32_kernels(PathVariant v);
TypeKernels f16_kernels(PathVariant v);
TypeKernels bf16_kernels(PathVariant v);
TypeKernels q8_0_kernels(PathVariant v);
TypeKernels q4_0_kernels(PathVariant v);
TypeKernels q5_0_kernels(PathVariant v);
TypeKernels q4_1_kernels(PathVariant v);
TypeKernels q5_1_kernels(PathVariant v);
TypeKernels q4_k_kernels(PathVariant v);
TypeKernels q5_k_kernels(PathVariant v);
TypeKernels q6_k_kernels(PathVariant v);

// Activation quantizers (quantize.cpp). Every path's variant gives the same
// bytes as the scalar one: q8_0 with d = amax / 127 (stored as fp16) and
// values x * (127 / amax), ggml's q8_K with iscale = -127 / max and bsums;
// rounding is to nearest even.
QuantizeRowFn quantize_q8_0_fn(CpuPath path);
QuantizeRowFn quantize_q8_0n4_fn(CpuPath path);
QuantizeRowFn quantize_q8_0g4_fn(CpuPath path);
QuantizeRowFn quantize_q8_K_fn(CpuPath path);
void quantize_row_q8_0_scalar(const float* x, void* dst, int64_t n);
void quantize_row_q8_K_scalar(const float* x, void* dst, int64_t n);
// Q8_1 for Q4_1/Q5_1 (quantize_q8_1.cpp): as ggml's x86 quantize_row_q8_1.
QuantizeRowFn quantize_q8_1_fn(CpuPath path);
void quantize_row_q8_1_scalar(const float* x, void* dst, int64_t n);

// f32 -> fp16 rows (f32_f16.cpp): scalar bit manipulation or F16C.
using Fp16RowFn = void (*)(const float* x, uint16_t* dst, int64_t n);
Fp16RowFn fp32_to_fp16_fn(CpuPath path);

// Row-times-batch driver from a single-dot function: for each tile of batch
// rows, walk the task's weight rows, so each weight row is fetched from
// memory once and re-read from cache for the other batch tiles.
template <float (*Dot)(const uint8_t* w, const uint8_t* act, int64_t cols)>
void rows_by_dot(const RowsArgs& a, int64_t r0, int64_t r1) {
  constexpr int64_t kBatchTile = 8;
  for (int64_t b0 = 0; b0 < a.batch; b0 += kBatchTile) {
    const int64_t b1 = a.batch < b0 + kBatchTile ? a.batch : b0 + kBatchTile;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wr = a.w + static_cast<size_t>(r) * a.w_row_bytes;
      for (int64_t b = b0; b < b1; ++b)
        a.y[b * a.y_stride + r] = Dot(wr, a.act + static_cast<size_t>(b) * a.act_row_bytes, a.cols);
    }
  }
}

// Driver for kernels that take one weight row against up to 4 activation
// rows at once, unpacking the weights once for all of them:
// K::run<B>(w_row, act, act_row_bytes, cols, y, y_stride) writes
// y[b * y_stride] for b < B. Tiles of 4 batch rows walk the task's weight
// rows (so the 4 activation rows stay in L1 and the weight rows in L2).
// For a batch of 1 this is the plain GEMV: run<1> row after row.
template <class K, int B>
void rows_tile(const RowsArgs& a, int64_t b0, int64_t r0, int64_t r1) {
  const uint8_t* act = a.act + static_cast<size_t>(b0) * a.act_row_bytes;
  float* y = a.y + b0 * a.y_stride;
  for (int64_t r = r0; r < r1; ++r)
    K::template run<B>(a.w + static_cast<size_t>(r) * a.w_row_bytes, act, a.act_row_bytes, a.cols, y + r, a.y_stride);
}

template <class K>
void rows_by_tiles(const RowsArgs& a, int64_t r0, int64_t r1) {
  int64_t b = 0;
  for (; b + 4 <= a.batch; b += 4) rows_tile<K, 4>(a, b, r0, r1);
  switch (a.batch - b) {
    case 3: rows_tile<K, 3>(a, b, r0, r1); break;
    case 2: rows_tile<K, 2>(a, b, r0, r1); break;
    case 1: rows_tile<K, 1>(a, b, r0, r1); break;
    default: break;
  }
}

// Driver for kernels that take R weight rows against B activation rows:
// K::run<R, B>(w, w_stride, act, act_row_bytes, cols, y, y_stride, y_row_step)
// reads weight row r at w + r * w_stride and writes
// y[b * y_stride + r * y_row_step] for r < R, b < B.
// For a batch of 1, 4 weight rows at a time (independent accumulator chains
// hide FMA latency), taken from the four quarters of the task's rows: each
// of the 4 then reads one long sequential stream, which the hardware
// prefetchers follow (4 adjacent rows read side by side are 4 streams of one
// row each, and measured at half the memory bandwidth). Otherwise one weight
// row against tiles of 4 activation rows, as rows_by_tiles.
template <class K, int R, int B>
void rows_block(const RowsArgs& a, int64_t b0, int64_t r, int64_t row_step) {
  K::template run<R, B>(a.w + static_cast<size_t>(r) * a.w_row_bytes, a.w_row_bytes * static_cast<size_t>(row_step),
                        a.act + static_cast<size_t>(b0) * a.act_row_bytes, a.act_row_bytes, a.cols,
                        a.y + b0 * a.y_stride + r, a.y_stride, row_step);
}

template <class K>
void rows_by_blocks(const RowsArgs& a, int64_t r0, int64_t r1) {
  if (a.batch == 1) {
    const int64_t quarter = (r1 - r0) / 4;
    for (int64_t t = 0; t < quarter; ++t) rows_block<K, 4, 1>(a, 0, r0 + t, quarter);
    int64_t r = r0 + 4 * quarter;
    switch (r1 - r) {
      case 3: rows_block<K, 3, 1>(a, 0, r, 1); break;
      case 2: rows_block<K, 2, 1>(a, 0, r, 1); break;
      case 1: rows_block<K, 1, 1>(a, 0, r, 1); break;
      default: break;
    }
    return;
  }
  int64_t b = 0;
  for (; b + 4 <= a.batch; b += 4)
    for (int64_t r = r0; r < r1; ++r) rows_block<K, 1, 4>(a, b, r, 1);
  for (int64_t r = r0; r < r1; ++r) {
    switch (a.batch - b) {
      case 3: rows_block<K, 1, 3>(a, b, r, 1); break;
      case 2: rows_block<K, 1, 2>(a, b, r, 1); break;
      case 1: rows_block<K, 1, 1>(a, b, r, 1); break;
      default: break;
    }
  }
}

}  // namespace kimpl
}  // namespace ts
