// Activation quantizers: f32 rows to the 8-bit blocks the quantized weight
// types are multiplied with (Q8_0 for Q4_0/Q8_0, Q8_K for Q4_K/Q6_K).
// Scalar reference first, SIMD variants after; every variant produces the
// same bytes as the scalar one (same formulas, round to nearest even).
#pragma GCC optimize("fp-contract=off")
#include <cmath>
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
// Round to nearest, ties to even, for |v| < 2^22 (ggml's nearest_int).
inline int nearest_int(float v) {
  const float shifted = v + 12582912.f;  // 1.5 * 2^23
  return static_cast<int>(f32_bits(shifted) & 0x007fffff) - 0x00400000;
}
}  // namespace

// ---------------------------------------------------------------- scalar

void quantize_row_q8_0_scalar(const float* x, void* dst, int64_t n) {
  block_q8_0* y = static_cast<block_q8_0*>(dst);
  for (int64_t i = 0; i < n / QK8_0; ++i, x += QK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; ++j) {
      const float ax = std::fabs(x[j]);
      amax = ax > amax ? ax : amax;
    }
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < QK8_0; ++j) y[i].qs[j] = static_cast<int8_t>(nearest_int(x[j] * id));
  }
}

// As ggml's quantize_row_q8_K_ref: the value of largest magnitude maps to -127.
void quantize_row_q8_K_scalar(const float* x, void* dst, int64_t n) {
  block_q8_K* y = static_cast<block_q8_K*>(dst);
  for (int64_t i = 0; i < n / QK_K; ++i, x += QK_K) {
    float max = 0.0f, amax = 0.0f;
    for (int j = 0; j < QK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      y[i].d = 0.0f;
      std::memset(y[i].qs, 0, sizeof(y[i].qs));
      std::memset(y[i].bsums, 0, sizeof(y[i].bsums));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < QK_K; ++j) {
      const int v = nearest_int(iscale * x[j]);
      y[i].qs[j] = static_cast<int8_t>(v < 127 ? v : 127);
    }
    for (int j = 0; j < QK_K / 16; ++j) {
      int sum = 0;
      for (int k = 0; k < 16; ++k) sum += y[i].qs[j * 16 + k];
      y[i].bsums[j] = static_cast<int16_t>(sum);
    }
    y[i].d = 1.0f / iscale;
  }
}

QuantizeRowFn quantize_q8_0_fn(CpuPath path) {
  switch (path) {
    default: return quantize_row_q8_0_scalar;
  }
}

QuantizeRowFn quantize_q8_K_fn(CpuPath path) {
  switch (path) {
    default: return quantize_row_q8_K_scalar;
  }
}

}  // namespace kimpl
}  // namespace ts
