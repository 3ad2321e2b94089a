// Kernel interface used by the model. One file per weight-type family
// (kernels/f32_f16.cpp, q8_0.cpp, q4_0.cpp, q5_0.cpp, q4_1_q5_1.cpp, q4_k.cpp,
// q5_k.cpp, q6_k.cpp) holds its scalar reference and SIMD variants side by
// side; the dispatch table
// (kernels/dispatch.cpp) is chosen once at model load from the CPU's features.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/ggml_types.h"

namespace ts {

class ThreadPool;

enum class CpuPath { Scalar = 0, Avx2 = 1, Avx512 = 2, Neon = 3 };
const char* cpu_path_name(CpuPath p);  // "scalar", "avx2", "avx512", "neon"

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false;
  bool avx_vnni = false, neon = false, neon_dotprod = false;
};
const CpuFeatures& cpu_features();
// Best path this CPU supports; `override_name` ("scalar"|"avx2"|"avx512"|"neon",
// or empty = auto; the TOKENSTREAM_CPU env var is read by the caller) picks
// another. Throws EngineError("INVALID_ARGUMENT") for an unknown or unsupported path.
CpuPath select_cpu_path(const std::string& override_name);
// Whether this CPU can run `p`.
bool cpu_path_supported(CpuPath p);

// A weight matrix in place in the mapping: `rows` output features, each a
// contiguous row of `cols` input features stored as `type`.
struct WeightMatrix {
  uint32_t type = 0;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  size_t row_bytes = 0;
};

// Scratch for quantized activations, sized once at session creation. The
// two-argument size is enough for every matmul but not for the blocked GEMM
// path (prompts, many-sequence decode), which also needs a repacked weight
// panel per pool thread: size with the thread count to enable it.
size_t matmul_scratch_bytes(int64_t max_cols, int64_t max_batch);
size_t matmul_scratch_bytes(int64_t max_cols, int64_t max_batch, int threads);

// A matmul scratch buffer (64-byte aligned) and its size in bytes.
struct MatmulScratch {
  void* data = nullptr;
  size_t bytes = 0;
};

struct Kernels {
  CpuPath path = CpuPath::Scalar;
  // AVX-512 path only: use VNNI dot instructions (set by make_kernels from the
  // CPU; tests clear it to exercise the maddubs variant).
  bool vnni = false;

  // dst[0..n) = dequantized src row (n a multiple of the type's block size).
  void dequantize_row(uint32_t type, const void* src, float* dst, int64_t n) const;

  // Y[b * y_stride + r] = sum_k W[r][k] * X[b * cols + k] for b in [0, batch),
  // r in [0, w.rows). Activations are quantized once per row of X to the type
  // the weight type pairs with (Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1,
  // Q8_K for Q4_K/Q5_K/Q6_K), as ggml does; F32/F16/BF16 use f32 activations. Work is split over the pool by
  // blocks of output rows; each weight row is read once per call for the whole
  // batch. scratch must hold matmul_scratch_bytes(w.cols, batch) bytes,
  // 64-byte aligned. Allocates nothing.
  void matmul(ThreadPool& pool, const WeightMatrix& w, const float* x, int64_t batch,
              float* y, int64_t y_stride, void* scratch) const;
  // As above; larger batches (5+ rows, per type and path) take the blocked GEMM path (same
  // results bit for bit) when the type has one on this path and the scratch
  // holds matmul_scratch_bytes(w.cols, batch, pool.size()).
  void matmul(ThreadPool& pool, const WeightMatrix& w, const float* x, int64_t batch,
              float* y, int64_t y_stride, MatmulScratch scratch) const;
};

// The table for a path (throws if the CPU lacks it).
Kernels make_kernels(CpuPath path);

// Streaming-read bandwidth of this machine in GB/s (10^9 bytes/s): `bytes`
// are allocated and touched once, then read with SIMD loads split over the
// pool; the best of several passes is reported. For benchmarks.
double measure_read_bandwidth(ThreadPool& pool, size_t bytes);

}  // namespace ts
