// Float weight types — F32, F16 (IEEE half) and BF16 — times f32 activations.
// Scalar reference first (accumulating in double), then the AVX2, AVX-512
// and NEON variants, each converting weights to f32 in registers.
#pragma GCC optimize("fp-contract=off")
#include <cstring>

#include "kernels/fp16.h"
#include "kernels/kernel_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace ts {
namespace kimpl {

namespace {

// ---------------------------------------------------------------- scalar

void dequantize_f32_scalar(const void* src, float* dst, int64_t n) { std::memcpy(dst, src, n * sizeof(float)); }

void dequantize_f16_scalar(const void* src, float* dst, int64_t n) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(s[i]);
}

void dequantize_bf16_scalar(const void* src, float* dst, int64_t n) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(s[i]);
}

void fp32_to_fp16_scalar(const float* x, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp32_to_fp16(x[i]);
}

// Weights may sit at any offset in the mapping, so they are read with memcpy.
float dot_f32_scalar(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const float* x = reinterpret_cast<const float*>(act);
  double sum = 0.0;
  for (int64_t i = 0; i < cols; ++i) {
    float wi;
    std::memcpy(&wi, w + i * 4, 4);
    sum += static_cast<double>(wi) * x[i];
  }
  return static_cast<float>(sum);
}

float dot_f16_scalar(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const float* x = reinterpret_cast<const float*>(act);
  double sum = 0.0;
  for (int64_t i = 0; i < cols; ++i) {
    uint16_t h;
    std::memcpy(&h, w + i * 2, 2);
    sum += static_cast<double>(fp16_to_fp32(h)) * x[i];
  }
  return static_cast<float>(sum);
}

float dot_bf16_scalar(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const float* x = reinterpret_cast<const float*>(act);
  double sum = 0.0;
  for (int64_t i = 0; i < cols; ++i) {
    uint16_t h;
    std::memcpy(&h, w + i * 2, 2);
    sum += static_cast<double>(bf16_to_fp32(h)) * x[i];
  }
  return static_cast<float>(sum);
}

}  // namespace

Fp16RowFn fp32_to_fp16_fn(CpuPath path) {
  switch (path) {
    default: return fp32_to_fp16_scalar;
  }
}

TypeKernels f32_kernels(PathVariant v) {
  TypeKernels k{ActFormat::F32, nullptr, dequantize_f32_scalar, rows_by_dot<dot_f32_scalar>};
  return k;
}

TypeKernels f16_kernels(PathVariant v) {
  TypeKernels k{ActFormat::F32, nullptr, dequantize_f16_scalar, rows_by_dot<dot_f16_scalar>};
  return k;
}

TypeKernels bf16_kernels(PathVariant v) {
  TypeKernels k{ActFormat::F32, nullptr, dequantize_bf16_scalar, rows_by_dot<dot_bf16_scalar>};
  return k;
}

}  // namespace kimpl
}  // namespace ts
