// Scalar half / bfloat16 <-> float conversions: the reference every SIMD path
// (F16C on x86, vcvt on NEON) must agree with bit for bit. Pure bit
// manipulation, correct for subnormals, infinities and NaNs.
#pragma once
#include <cstdint>
#include <cstring>

namespace ts {

inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Round to nearest, ties to even, for |v| < 2^22 (ggml's nearest_int; the
// activation quantizers round with it so their bytes match ggml's).
inline int nearest_int(float v) {
  const float shifted = v + 12582912.f;  // 1.5 * 2^23
  return static_cast<int>(f32_bits(shifted) & 0x007fffff) - 0x00400000;
}

inline float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f)  // inf, or NaN made quiet (as vcvtph2ps does)
    return f32_from_bits(sign | 0x7f800000u | (mant << 13) | (mant ? 0x400000u : 0u));
  if (exp != 0) return f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
  // zero or subnormal: mant * 2^-24 is exact in float
  return f32_from_bits(sign | f32_bits(static_cast<float>(mant) * 0x1p-24f));
}

// Round to nearest even; overflow gives inf, NaN stays NaN (quiet). The
// float arithmetic does the rounding: scaling pushes the value to where the
// float's mantissa has exactly the half's precision (the method of the FP16
// library that ggml also uses).
inline uint16_t fp32_to_fp16(float f) {
  const uint32_t w = f32_bits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  float base = (f32_from_bits(w & 0x7fffffffu) * 0x1p+112f) * 0x1p-110f;
  uint32_t bias = shl1_w & 0xff000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = f32_from_bits((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = f32_bits(base);
  const uint32_t exp_bits = (bits >> 13) & 0x00007c00u;
  const uint32_t mantissa_bits = bits & 0x00000fffu;
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return static_cast<uint16_t>((sign >> 16) | (shl1_w > 0xff000000u ? (0x7e00u | ((w >> 13) & 0x3ffu)) : nonsign));
}

inline float bf16_to_fp32(uint16_t h) { return f32_from_bits(static_cast<uint32_t>(h) << 16); }

}  // namespace ts
