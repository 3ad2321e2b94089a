// Vocabulary-wide passes the sampler makes on every token: max/argmax, a
// shifted-and-scaled exp with its sum, and "first element >= threshold".
// Each has a scalar reference and AVX2 / AVX-512 variants (sampler_math.cpp),
// picked once per Sampler from the CPU path. Results of the exp pass may differ
// in the last bits between paths (polynomial evaluated with or without FMA,
// different summation order), so a sampled sequence is reproducible for a given
// build and CPU path.
#pragma once
#include <cstdint>

#include "kernels/kernels.h"

namespace ts {

// Block length of exp_block: the sampler keeps one partial sum per block so a
// cumulative-distribution walk over the whole vocabulary can skip whole blocks.
constexpr int kSamplerExpBlock = 256;

struct SamplerMath {
  // *max = largest x[i] (NaN never wins; -inf if none is a number),
  // *argmax = its first index (0 if none). n >= 1.
  void (*max_argmax)(const float* x, int n, float* max, int* argmax);
  // out[i] = exp((x[i] - shift) * scale) for i in [0, n), n <= kSamplerExpBlock;
  // returns their sum. Inputs whose argument is below -87.3 or NaN give 0.
  float (*exp_block)(const float* x, int n, float shift, float scale, float* out);
  // Smallest i in [0, n) with x[i] >= thr (ordered compare), or n.
  int (*find_ge)(const float* x, int n, float thr);
};

// The variant set for a path (Neon on arm64; anything this build lacks gets the scalar reference).
SamplerMath sampler_math_for(CpuPath path);
// The best path this CPU runs (own CPUID check, independent of the kernels'
// dispatch table so the sampler works on its own).
CpuPath sampler_best_path();

// Scalar exp used by the reference path and for SIMD tails.
float sampler_exp_scalar(float x);

}  // namespace ts
