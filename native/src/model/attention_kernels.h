// The inner loops of attention over the KV cache: dot products of a query
// head with cached keys, and weighted sums of cached values, for F16 and F32
// caches. Scalar reference plus AVX2/AVX-512 variants, chosen with the model's
// kernel path.
#pragma once
#include <cstdint>

#include "kernels/kernels.h"

namespace ts {

struct AttentionKernels {
  float (*dot_f16)(const float* q, const uint16_t* k, int n);    // sum q[i] * k[i]
  float (*dot_f32)(const float* q, const float* k, int n);
  void (*axpy_f16)(float* y, float a, const uint16_t* v, int n); // y[i] += a * v[i]
  void (*axpy_f32)(float* y, float a, const float* v, int n);
  void (*f32_to_f16)(const float* x, uint16_t* y, int n);        // round to nearest even
  // Half-precision accumulator updates, as llama.cpp's CPU flash attention
  // keeps its F16 value sums: y = half(y * s); y = half(y + v * s).
  void (*scale_f16)(uint16_t* y, float s, int n);
  void (*mad_f16)(uint16_t* y, const uint16_t* v, float s, int n);
};

const AttentionKernels& attention_kernels(CpuPath path);

}  // namespace ts
