// Q4_K weights times Q8_K-quantized activations. A super-block of 256 holds
// 8 sub-blocks of 32 with 6-bit scales and mins (packed in 12 bytes, see
// scale_min_k4); the 4-bit quants come in 4 groups of 64: 32 bytes whose low
// nibbles are sub-block 2g and high nibbles sub-block 2g + 1.
// x = d * scale * q - dmin * min. Scalar reference first, then AVX2, AVX-512
// and NEON variants.
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

// ggml's get_scale_min_k4: scale and min of sub-block j (0..7).
inline void scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// ---------------------------------------------------------------- scalar

void dequantize_q4_k_scalar(const void* src, float* dst, int64_t n) {
  const block_q4_K* x = static_cast<const block_q4_K*>(src);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float min = fp16_to_fp32(x[i].dmin);
    const uint8_t* q = x[i].qs;
    float* y = dst + i * QK_K;
    for (int g = 0; g < 4; ++g, q += 32, y += 64) {
      uint8_t sc, m;
      scale_min_k4(2 * g, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = min * m;
      scale_min_k4(2 * g + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = min * m;
      for (int l = 0; l < 32; ++l) y[l] = d1 * (q[l] & 0x0f) - m1;
      for (int l = 0; l < 32; ++l) y[l + 32] = d2 * (q[l] >> 4) - m2;
    }
  }
}

float dot_q4_k_scalar(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const block_q4_K* x = reinterpret_cast<const block_q4_K*>(w);
  const block_q8_K* y = reinterpret_cast<const block_q8_K*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < cols / QK_K; ++i) {
    const uint8_t* q = x[i].qs;
    const int8_t* q8 = y[i].qs;
    int sumi = 0, summ = 0;
    for (int g = 0; g < 4; ++g, q += 32, q8 += 64) {
      for (int h = 0; h < 2; ++h) {
        uint8_t sc, m;
        scale_min_k4(2 * g + h, x[i].scales, &sc, &m);
        int s = 0;
        for (int l = 0; l < 32; ++l) s += (h ? q[l] >> 4 : q[l] & 0x0f) * q8[h * 32 + l];
        sumi += sc * s;
        summ += m * (y[i].bsums[(2 * g + h) * 2] + y[i].bsums[(2 * g + h) * 2 + 1]);
      }
    }
    sum += fp16_to_fp32(x[i].d) * y[i].d * static_cast<float>(sumi) -
           fp16_to_fp32(x[i].dmin) * y[i].d * static_cast<float>(summ);
  }
  return sum;
}

}  // namespace

TypeKernels q4_k_kernels(PathVariant v) {
  TypeKernels k{ActFormat::Q8_K, quantize_q8_K_fn(v.path), dequantize_q4_k_scalar, rows_by_dot<dot_q4_k_scalar>};
  return k;
}

}  // namespace kimpl
}  // namespace ts
