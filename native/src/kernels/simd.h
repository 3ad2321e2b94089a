// Intrinsics headers, target-attribute macros and small horizontal helpers
// shared by the kernel files. Each SIMD function carries its own target
// attribute so the build needs no -m flags and the scalar code stays portable.
#pragma once

#if defined(__x86_64__)
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on _mm512_undefined_*.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#define TS_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TS_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
// The AVX-512 kernels are templates on <bool kVnni>; both instantiations are
// compiled for this target but only the kVnni = true one emits VNNI
// instructions (through if constexpr), so the other runs on AVX-512 CPUs
// without VNNI.
#define TS_AVX512_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))

namespace ts {
namespace kimpl {

TS_AVX2 inline float hsum_f32x8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

TS_AVX512 inline float hsum_f32x16(__m512 v) {
  return hsum_f32x8(_mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)));
}

}  // namespace kimpl
}  // namespace ts

#elif defined(__aarch64__)
#include <arm_neon.h>
#endif
