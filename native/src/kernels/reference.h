// Test and benchmark support: the double-precision reference matmul every
// kernel path is checked against, and direct access to the activation
// quantizers and fp16 conversion of each path.
#pragma once
#include <cstdint>

#include "kernels/kernels.h"

namespace ts {

// y[b * rows + r] = sum_k W[r][k] * X'[b][k] in double, where W is the scalar
// dequantization of `w` and X' is X put through the 8-bit quantization the
// weight type pairs with (unchanged for F32/F16/BF16).
void reference_matmul(uint32_t type, const void* w, int64_t rows, int64_t cols, const float* x, int64_t batch,
                      double* y);

// Quantizes n values (a multiple of 32 / 256 / 32) the way `k`'s matmul does.
void quantize_row_q8_0(const Kernels& k, const float* x, void* dst, int64_t n);
void quantize_row_q8_K(const Kernels& k, const float* x, void* dst, int64_t n);
void quantize_row_q8_1(const Kernels& k, const float* x, void* dst, int64_t n);

// f32 -> fp16 with the path's conversion (F16C on x86 SIMD paths).
void fp32_to_fp16_row(const Kernels& k, const float* x, uint16_t* dst, int64_t n);

}  // namespace ts
