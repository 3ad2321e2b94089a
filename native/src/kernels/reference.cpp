// The double-precision reference matmul, built only from the scalar
// dequantizers and quantizers (which tests pin to ggml's layouts by hand).
#include "kernels/reference.h"

#include <cstring>
#include <vector>

#include "bindings/errors.h"
#include "kernels/fp16.h"
#include "kernels/kernel_impl.h"

namespace ts {

using namespace kimpl;

void reference_matmul(uint32_t type, const void* w, int64_t rows, int64_t cols, const float* x, int64_t batch,
                      double* y) {
  const Kernels scalar = make_kernels(CpuPath::Scalar);
  const size_t row_bytes = ggml_row_size(type, cols);
  if (row_bytes == 0 || !ggml_type_traits(type).computable)
    throw EngineError("INVALID_ARGUMENT", "bad type or column count for the reference matmul");

  // Activations as the kernels see them. Q8_1 (for Q4_1/Q5_1) also carries
  // each block's sum as the fp16 s, which the kernels use for the weights'
  // "+ m" term in place of the exact sum of the values: s_minus_sum[block]
  // = s - sum(d * q) keeps that difference.
  std::vector<float> xq(static_cast<size_t>(batch * cols));
  const bool q8_0 = type == GGML_Q4_0 || type == GGML_Q5_0 || type == GGML_Q8_0;
  const bool q8_k = type == GGML_Q4_K || type == GGML_Q5_K || type == GGML_Q6_K;
  const bool q8_1 = type == GGML_Q4_1 || type == GGML_Q5_1;
  const int64_t nb32 = cols / 32;
  std::vector<double> s_minus_sum(q8_1 ? static_cast<size_t>(batch * nb32) : 0);
  std::vector<uint8_t> blocks(act_row_bytes(q8_k ? ActFormat::Q8_K : ActFormat::Q8_1, cols));
  for (int64_t b = 0; b < batch; ++b) {
    const float* xb = x + b * cols;
    float* out = xq.data() + b * cols;
    if (q8_1) {
      quantize_row_q8_1_scalar(xb, blocks.data(), cols);
      const block_q8_1* q = reinterpret_cast<const block_q8_1*>(blocks.data());
      for (int64_t i = 0; i < cols; ++i) out[i] = q[i / QK8_1].qs[i % QK8_1] * fp16_to_fp32(q[i / QK8_1].d);
      for (int64_t k = 0; k < nb32; ++k) {
        double sum = 0.0;
        for (int j = 0; j < QK8_1; ++j) sum += out[k * QK8_1 + j];
        s_minus_sum[static_cast<size_t>(b * nb32 + k)] = fp16_to_fp32(q[k].s) - sum;
      }
    } else if (q8_0) {
      quantize_row_q8_0_scalar(xb, blocks.data(), cols);
      const block_q8_0* q = reinterpret_cast<const block_q8_0*>(blocks.data());
      for (int64_t i = 0; i < cols; ++i) out[i] = q[i / QK8_0].qs[i % QK8_0] * fp16_to_fp32(q[i / QK8_0].d);
    } else if (q8_k) {
      quantize_row_q8_K_scalar(xb, blocks.data(), cols);
      const block_q8_K* q = reinterpret_cast<const block_q8_K*>(blocks.data());
      for (int64_t i = 0; i < cols; ++i) out[i] = q[i / QK_K].qs[i % QK_K] * q[i / QK_K].d;
    } else {
      for (int64_t i = 0; i < cols; ++i) out[i] = xb[i];
    }
  }

  std::vector<float> wrow(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* wr = static_cast<const uint8_t*>(w) + r * row_bytes;
    scalar.dequantize_row(type, wr, wrow.data(), cols);
    for (int64_t b = 0; b < batch; ++b) {
      const float* xb = xq.data() + b * cols;
      double s = 0.0;
      for (int64_t i = 0; i < cols; ++i) s += static_cast<double>(wrow[i]) * xb[i];
      if (q8_1) {  // m * (s - sum): block_q4_1 and block_q5_1 both start with d, m
        const size_t block_bytes = ggml_type_traits(type).type_size;
        for (int64_t k = 0; k < nb32; ++k) {
          uint16_t m;
          std::memcpy(&m, wr + k * block_bytes + 2, 2);
          s += static_cast<double>(fp16_to_fp32(m)) * s_minus_sum[static_cast<size_t>(b * nb32 + k)];
        }
      }
      y[b * rows + r] = s;
    }
  }
}

void quantize_row_q8_0(const Kernels& k, const float* x, void* dst, int64_t n) {
  if (n % QK8_0) throw EngineError("INVALID_ARGUMENT", "q8_0 rows are whole blocks of 32");
  quantize_q8_0_fn(k.path)(x, dst, n);
}

void quantize_row_q8_1(const Kernels& k, const float* x, void* dst, int64_t n) {
  if (n % QK8_1) throw EngineError("INVALID_ARGUMENT", "q8_1 rows are whole blocks of 32");
  quantize_q8_1_fn(k.path)(x, dst, n);
}

void quantize_row_q8_K(const Kernels& k, const float* x, void* dst, int64_t n) {
  if (n % QK_K) throw EngineError("INVALID_ARGUMENT", "q8_K rows are whole blocks of 256");
  quantize_q8_K_fn(k.path)(x, dst, n);
}

void fp32_to_fp16_row(const Kernels& k, const float* x, uint16_t* dst, int64_t n) {
  fp32_to_fp16_fn(k.path)(x, dst, n);
}

}  // namespace ts
