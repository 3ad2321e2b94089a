// Kernels::matmul and Kernels::dequantize_row: look up the weight type's
// kernels for the chosen path, quantize the activations once into scratch,
// and split the output rows over the thread pool.
#include <algorithm>
#include <array>
#include <string>

#include "bindings/errors.h"
#include "kernels/gemm.h"
#include "kernels/kernel_impl.h"
#include "kernels/kernels.h"
#include "runtime/thread_pool.h"

namespace ts {

namespace kimpl {

size_t act_row_bytes(ActFormat f, int64_t cols) {
  size_t bytes = 0;
  switch (f) {
    case ActFormat::F32: return static_cast<size_t>(cols) * sizeof(float);
    case ActFormat::Q8_0: bytes = static_cast<size_t>((cols + QK8_0 - 1) / QK8_0) * sizeof(block_q8_0); break;
    case ActFormat::Q8_K: bytes = static_cast<size_t>((cols + QK_K - 1) / QK_K) * sizeof(block_q8_K); break;
    case ActFormat::Q8_1: bytes = static_cast<size_t>((cols + QK8_1 - 1) / QK8_1) * sizeof(block_q8_1); break;
    case ActFormat::Q8_0N4:
    case ActFormat::Q8_0G4: {
      static_assert(sizeof(Q8_0N4Group) == sizeof(Q8_0G4Group), "one size for both grouped formats");
      const int64_t nb = (cols + QK8_0 - 1) / QK8_0;
      bytes = static_cast<size_t>(nb / 4) * sizeof(Q8_0N4Group) + static_cast<size_t>(nb % 4) * sizeof(block_q8_0);
      break;
    }
  }
  return (bytes + 63) & ~size_t{63};
}

namespace {

constexpr int kPathCount = 4;
using TypeTable = std::array<TypeKernels, GGML_TYPE_COUNT>;
using GemmTable = std::array<GemmKernels, GGML_TYPE_COUNT>;

GemmTable build_gemm_table(PathVariant v) {
  GemmTable t{};
  t[GGML_Q4_0] = gemm_q4_0_kernels(v);
  t[GGML_Q8_0] = gemm_q8_0_kernels(v);
  t[GGML_Q5_0] = gemm_q5_0_kernels(v);
  t[GGML_Q4_1] = gemm_q4_1_kernels(v);
  t[GGML_Q5_1] = gemm_q5_1_kernels(v);
  return t;
}

TypeTable build_table(PathVariant v) {
  TypeTable t{};
  t[GGML_F32] = f32_kernels(v);
  t[GGML_F16] = f16_kernels(v);
  t[GGML_BF16] = bf16_kernels(v);
  t[GGML_Q8_0] = q8_0_kernels(v);
  t[GGML_Q4_0] = q4_0_kernels(v);
  t[GGML_Q5_0] = q5_0_kernels(v);
  t[GGML_Q4_1] = q4_1_kernels(v);
  t[GGML_Q5_1] = q5_1_kernels(v);
  t[GGML_Q4_K] = q4_k_kernels(v);
  t[GGML_Q5_K] = q5_k_kernels(v);
  t[GGML_Q6_K] = q6_k_kernels(v);
  return t;
}

// One table per (path, vnni); built on first use, after which lookups are plain loads.
const TypeKernels& lookup(const Kernels& k, uint32_t type) {
  static const std::array<std::array<TypeTable, 2>, kPathCount> tables = [] {
    std::array<std::array<TypeTable, 2>, kPathCount> all{};
    for (int p = 0; p < kPathCount; ++p)
      for (int vnni = 0; vnni < 2; ++vnni) all[p][vnni] = build_table({static_cast<CpuPath>(p), vnni == 1});
    return all;
  }();
  const int p = static_cast<int>(k.path);
  if (type >= GGML_TYPE_COUNT || p < 0 || p >= kPathCount || !tables[p][k.vnni ? 1 : 0][type].rows)
    throw EngineError("MODEL_UNSUPPORTED",
                      std::string("no kernels for tensor type ") + ggml_type_traits(type).name + " (" +
                          std::to_string(type) + ")");
  return tables[p][k.vnni ? 1 : 0][type];
}

const GemmKernels& lookup_gemm(const Kernels& k, uint32_t type) {
  static const std::array<std::array<GemmTable, 2>, kPathCount> tables = [] {
    std::array<std::array<GemmTable, 2>, kPathCount> all{};
    for (int p = 0; p < kPathCount; ++p)
      for (int vnni = 0; vnni < 2; ++vnni) all[p][vnni] = build_gemm_table({static_cast<CpuPath>(p), vnni == 1});
    return all;
  }();
  return tables[static_cast<int>(k.path)][k.vnni ? 1 : 0][type];  // type and path checked by lookup
}

}  // namespace
}  // namespace kimpl

using namespace kimpl;

size_t matmul_scratch_bytes(int64_t max_cols, int64_t max_batch) {
  if (max_cols <= 0 || max_batch <= 0) return 0;
  const int64_t cols = (max_cols + QK_K - 1) / QK_K * QK_K;
  const size_t row = std::max({act_row_bytes(ActFormat::Q8_0, cols), act_row_bytes(ActFormat::Q8_K, cols),
                               act_row_bytes(ActFormat::Q8_0N4, cols), act_row_bytes(ActFormat::Q8_1, cols)});
  return row * static_cast<size_t>(max_batch);
}

size_t matmul_scratch_bytes(int64_t max_cols, int64_t max_batch, int threads) {
  return std::max(matmul_scratch_bytes(max_cols, max_batch), gemm_scratch_bytes(max_cols, max_batch, threads));
}

Kernels make_kernels(CpuPath path) {
  if (!cpu_path_supported(path))
    throw EngineError("INVALID_ARGUMENT", std::string("CPU path '") + cpu_path_name(path) + "' is not supported by this CPU");
  Kernels k;
  k.path = path;
  k.vnni = path == CpuPath::Avx512 && cpu_features().avx512vnni;
  return k;
}

void Kernels::dequantize_row(uint32_t type, const void* src, float* dst, int64_t n) const {
  const TypeKernels& tk = lookup(*this, type);
  const int64_t bs = ggml_type_traits(type).block_size;
  if (n < 0 || n % bs != 0)
    throw EngineError("INVALID_ARGUMENT", "row length " + std::to_string(n) + " is not a multiple of the " +
                                              ggml_type_traits(type).name + " block size");
  tk.dequantize(src, dst, n);
}

void Kernels::matmul(ThreadPool& pool, const WeightMatrix& w, const float* x, int64_t batch, float* y,
                     int64_t y_stride, void* scratch) const {
  matmul(pool, w, x, batch, y, y_stride, MatmulScratch{scratch, 0});
}

void Kernels::matmul(ThreadPool& pool, const WeightMatrix& w, const float* x, int64_t batch, float* y,
                     int64_t y_stride, MatmulScratch ms) const {
  const TypeKernels& tk = lookup(*this, w.type);
  if (w.rows <= 0 || batch <= 0) return;
  if (w.row_bytes != ggml_row_size(w.type, w.cols) || w.cols <= 0)
    throw EngineError("INVALID_ARGUMENT", "weight matrix of " + std::to_string(w.cols) + " columns of type " +
                                              ggml_type_traits(w.type).name + " has a bad row size");
  if (batch > 1 && y_stride < w.rows) throw EngineError("INVALID_ARGUMENT", "matmul output stride is too small");
  void* scratch = ms.data;
  const GemmKernels& gk = lookup_gemm(*this, w.type);
  if (gk.panel && batch >= gk.min_batch && ms.bytes >= gemm_scratch_bytes(w.cols, batch, pool.size())) {
    gemm_matmul(pool, gk, w, x, batch, y, y_stride, static_cast<uint8_t*>(scratch));
    return;
  }

  RowsArgs a{static_cast<const uint8_t*>(w.data), w.row_bytes, w.cols,
             reinterpret_cast<const uint8_t*>(x), act_row_bytes(tk.act, w.cols), batch, y, y_stride};
  if (tk.act != ActFormat::F32) {
    // Quantize each activation row once; every output row reuses it.
    uint8_t* q = static_cast<uint8_t*>(scratch);
    const size_t qrow = a.act_row_bytes;
    const int64_t cols = w.cols;
    const QuantizeRowFn quantize = tk.quantize;
    auto quantize_row = [&](int b, int) {
      quantize(x + static_cast<size_t>(b) * cols, q + static_cast<size_t>(b) * qrow, cols);
    };
    if (batch * cols >= (int64_t{1} << 16) && batch > 1) {
      pool.parallel_for(static_cast<int>(batch), quantize_row);
    } else {
      for (int64_t b = 0; b < batch; ++b) quantize_row(static_cast<int>(b), 0);
    }
    a.act = q;
  }

  // Output rows in chunks of 16..128 (whole cache lines of Y), about four
  // chunks per thread so uneven progress evens out. Longer chunks keep each
  // thread's weight stream sequential for longer (measured: a few % more
  // GB/s at 128 than at 64 rows); 128 rows of a 4096-wide Q4_0 matrix are
  // 288 KiB, which stays in L2 while batch tiles re-read it.
  const int64_t per_thread = (w.rows + pool.size() * 4 - 1) / (pool.size() * 4);
  const int64_t chunk = std::min<int64_t>(128, std::max<int64_t>(16, (per_thread + 15) / 16 * 16));
  const int64_t n_chunks = (w.rows + chunk - 1) / chunk;
  const RowsFn rows = tk.rows;
  auto run_chunk = [&](int c, int) {
    const int64_t r0 = c * chunk;
    rows(a, r0, std::min(w.rows, r0 + chunk));
  };
  pool.parallel_for(static_cast<int>(n_chunks), run_chunk);
}

}  // namespace ts
