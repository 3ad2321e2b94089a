// Attention over a F16 cache, blocked over 16 positions at a time, with the
// bits of the per-position loop (attend_f16 in attention_kernels.cpp).
//
// Why blocked: position by position, every key costs a call to a dot kernel,
// a reduction of one vector, a scalar expf call and a call to a half-precision
// multiply-add, and the expf call spills every vector register. For a
// 512-token prompt that loop was ~45 % of the whole forward pass. Here, per
// block of 16 keys:
//   1. the keys and values are widened to f32 once for all heads of the task
//      (read straight from the half cache when one head reads them);
//   2. the 16 scores of a head come from 16 partial-sum vectors reduced
//      together by a butterfly that adds lanes in exactly the tree
//      _mm512_reduce_add_ps uses (distances 8, 4, 2, 1), so each score has the
//      bits of DotF16Avx512;
//   3. the running maximum before each key comes from a prefix-max scan, so
//      every key's weight (e^(s - M), or e^(M_old - s) when s is a new
//      maximum) is computed 16 at a time by exp_f32x16, which reproduces
//      glibc's expf bit for bit;
//   4. only the half-precision value sums stay sequential (their rounding
//      after every key is llama.cpp's order), kept in registers across the
//      block for up to four heads at once so their dependency chains overlap.
#include <cmath>
#include <cstring>
#include <limits>

#include "model/attention_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ts {

namespace {

// glibc's expf (sysdeps/ieee754/flt-32/e_expf.c): x/ln2 = k/32 + r/32,
// 2^(k/32) from a table of 32 doubles, a degree-3 polynomial in r, all in
// double precision, rounded once to float. The table entries are
// bits(2^(i/32)) - (i << 47), so adding k << 47 scales by 2^(k div 32).
struct ExpTable {
  uint64_t t[32];
  ExpTable() {
    for (int i = 0; i < 32; ++i) {
      const double d = static_cast<double>(std::exp2(static_cast<long double>(i) / 32));
      uint64_t u;
      std::memcpy(&u, &d, sizeof u);
      t[i] = u - (static_cast<uint64_t>(i) << 47);
    }
  }
};
const ExpTable kExpTable;

constexpr double kInvLn2N = 0x1.71547652b82fep+0 * 32;
constexpr double kShift = 0x1.8p+52;
constexpr double kC0 = 0x1.c6af84b912394p-5 / 32 / 32 / 32;
constexpr double kC1 = 0x1.ebfce50fac4f3p-3 / 32 / 32;
constexpr double kC2 = 0x1.62e42ff0c52d6p-1 / 32;

#if defined(__x86_64__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define TS_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))

TS_AVX512 inline __m256 Exp8(__m256 x) {
  const __m512d xd = _mm512_cvtps_pd(x);
  const __m512d z = _mm512_mul_pd(_mm512_set1_pd(kInvLn2N), xd);
  __m512d kd = _mm512_add_pd(z, _mm512_set1_pd(kShift));
  const __m512i ki = _mm512_castpd_si512(kd);
  kd = _mm512_sub_pd(kd, _mm512_set1_pd(kShift));
  const __m512d r = _mm512_sub_pd(z, kd);
  // The table lookup T[k % 32] as two 16-entry register permutes (a gather is slower).
  const __m512i lo = _mm512_permutex2var_epi64(_mm512_loadu_si512(kExpTable.t), ki, _mm512_loadu_si512(kExpTable.t + 8));
  const __m512i hi = _mm512_permutex2var_epi64(_mm512_loadu_si512(kExpTable.t + 16), ki, _mm512_loadu_si512(kExpTable.t + 24));
  __m512i t = _mm512_mask_blend_epi64(_mm512_test_epi64_mask(ki, _mm512_set1_epi64(16)), lo, hi);
  t = _mm512_add_epi64(t, _mm512_slli_epi64(ki, 47));
  const __m512d s = _mm512_castsi512_pd(t);
  const __m512d p = _mm512_fmadd_pd(_mm512_set1_pd(kC0), r, _mm512_set1_pd(kC1));
  const __m512d r2 = _mm512_mul_pd(r, r);
  __m512d y = _mm512_fmadd_pd(_mm512_set1_pd(kC2), r, _mm512_set1_pd(1.0));
  y = _mm512_fmadd_pd(p, r2, y);
  return _mm512_cvtpd_ps(_mm512_mul_pd(y, s));
}

// expf of 16 floats; glibc's special cases (|x| >= 88 or NaN) by mask.
TS_AVX512 inline __m512 ExpF32x16(__m512 x) {
  const __m256 lo = Exp8(_mm512_castps512_ps256(x));
  const __m256 hi = Exp8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
  __m512 y = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1));
  y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, _mm512_set1_ps(-0x1.9fe368p6f), _CMP_LT_OQ), _mm512_setzero_ps());
  y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, _mm512_set1_ps(0x1.62e42ep6f), _CMP_GT_OQ),
                         _mm512_set1_ps(std::numeric_limits<float>::infinity()));
  return _mm512_mask_add_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x, x);
}

// Round to half precision and back: the F16 value sums are rounded after
// every update, as llama.cpp stores them in half.
TS_AVX512 inline __m512 RoundHalf(__m512 x) {
  return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}

// R[t] = _mm512_reduce_add_ps(V[t]) for 16 vectors, with the same tree of
// additions (lane i + lane i+8, then +4, +2, +1), in key order.
TS_AVX512 inline __m512 ReduceAdd16(const __m512* V) {
  __m512 X[8], Y[4], Z[2];
  for (int a = 0; a < 8; ++a)  // distance 8: keys 2a | 2a+1, 8 lanes each
    X[a] = _mm512_add_ps(_mm512_shuffle_f32x4(V[2 * a], V[2 * a + 1], 0x44),
                         _mm512_shuffle_f32x4(V[2 * a], V[2 * a + 1], 0xEE));
  for (int c = 0; c < 4; ++c)  // distance 4: 128-bit block m holds key 4c+m
    Y[c] = _mm512_add_ps(_mm512_shuffle_f32x4(X[2 * c], X[2 * c + 1], 0x88),
                         _mm512_shuffle_f32x4(X[2 * c], X[2 * c + 1], 0xDD));
  for (int e = 0; e < 2; ++e) {  // distance 2: block m holds keys 8e+m, 8e+4+m
    const __m512d a = _mm512_castps_pd(Y[2 * e]), b = _mm512_castps_pd(Y[2 * e + 1]);
    Z[e] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  // distance 1: lane 4m + r holds key 4r + m
  const __m512 R = _mm512_add_ps(_mm512_shuffle_ps(Z[0], Z[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_ps(Z[0], Z[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(order, R);
}

// Where a block's keys or values come from: widened to f32 once for all heads
// (when several heads read them), or straight from the half cache (when one
// head does, as in decode, whose tasks take one head each).
struct WidenedRows {
  const float* p;
  int hd;
  TS_AVX512 __m512 load(int t, int i) const { return _mm512_load_ps(p + t * hd + i); }
};
struct HalfRows {
  const uint16_t* p;
  size_t stride;
  TS_AVX512 __m512 load(int t, int i) const {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + t * stride + i)));
  }
};

// Scores of one head for keys 0..c of the block (hd = 64 * NB), each
// summed as DotF16Avx512 sums it: 4 accumulators of 16 lanes over steps of
// 64, (a0 + a2) + (a1 + a3), then the reduction.
template <int NB, class Rows>
TS_AVX512 inline __m512 Scores(const float* q, const Rows& kr, int c) {
  __m512 qv[4 * NB];
  for (int m = 0; m < 4 * NB; ++m) qv[m] = _mm512_loadu_ps(q + 16 * m);
  __m512 V[16];
#pragma GCC unroll 16
  for (int t = 0; t < 16; ++t) {
    if (t >= c) {
      V[t] = _mm512_setzero_ps();
      continue;
    }
    __m512 a[4];
    for (int m = 0; m < 4; ++m) a[m] = _mm512_fmadd_ps(kr.load(t, 16 * m), qv[m], _mm512_setzero_ps());
    for (int nb = 1; nb < NB; ++nb)
      for (int m = 0; m < 4; ++m) a[m] = _mm512_fmadd_ps(kr.load(t, 64 * nb + 16 * m), qv[4 * nb + m], a[m]);
    V[t] = _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3]));
  }
  return ReduceAdd16(V);
}

// Per head and block: each key's weight e, and which keys raise the maximum
// (for those e is the factor that rescales the sums and the key's own weight is 1).
struct BlockWeights {
  alignas(64) float e[16];
  __mmask16 raises;
};

TS_AVX512 inline void Weights(__m512 s, int c, float* M, BlockWeights& w) {
  const __mmask16 valid = static_cast<__mmask16>((1u << c) - 1);
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  s = _mm512_mask_mov_ps(ninf, valid, s);
  // Inclusive prefix maximum P[t] = max(s[0..t]), then the running maximum
  // before each key: M for the first, P[t-1] for the others.
  __m512 P = s;
  P = _mm512_max_ps(P, _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(P), _mm512_castps_si512(ninf), 15)));
  P = _mm512_max_ps(P, _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(P), _mm512_castps_si512(ninf), 14)));
  P = _mm512_max_ps(P, _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(P), _mm512_castps_si512(ninf), 12)));
  P = _mm512_max_ps(P, _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(P), _mm512_castps_si512(ninf), 8)));
  const __m512 m_in = _mm512_set1_ps(*M);
  P = _mm512_max_ps(P, m_in);
  const __m512 before = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(P), _mm512_castps_si512(m_in), 15));
  w.raises = _mm512_mask_cmp_ps_mask(valid, s, before, _CMP_GT_OQ);
  // e^(M_old - s) where s raises the maximum, e^(s - M) elsewhere.
  const __m512 arg = _mm512_mask_sub_ps(_mm512_sub_ps(s, before), w.raises, before, s);
  _mm512_store_ps(w.e, ExpF32x16(arg));
  // The maximum after the block: lanes past c are -inf, so the last lane.
  alignas(64) float p[16];
  _mm512_store_ps(p, P);
  *M = p[15];
}

// The sequential part: G heads' half sums over the block's values 0..c,
// interleaved so that their rounding chains overlap.
template <int NB, int G, class Rows>
TS_AVX512 inline void Accumulate(const Rows& vr, int c, const BlockWeights* w, uint16_t* acc16, float* S) {
  constexpr int hd = 64 * NB;
  __m512 acc[G][4 * NB];
  for (int g = 0; g < G; ++g)
    for (int m = 0; m < 4 * NB; ++m)
      acc[g][m] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc16 + g * hd + 16 * m)));
  float sum[G];
  for (int g = 0; g < G; ++g) sum[g] = S[g];
  for (int t = 0; t < c; ++t) {
    __m512 v[4 * NB];
    for (int m = 0; m < 4 * NB; ++m) v[m] = vr.load(t, 16 * m);
    for (int g = 0; g < G; ++g) {
      float ms = 1.0f, vs = w[g].e[t];
      if ((w[g].raises >> t) & 1u) {
        ms = vs;
        vs = 1.0f;
        const __m512 f = _mm512_set1_ps(ms);
        for (int m = 0; m < 4 * NB; ++m) acc[g][m] = RoundHalf(_mm512_mul_ps(acc[g][m], f));
      }
      const __m512 f = _mm512_set1_ps(vs);
      for (int m = 0; m < 4 * NB; ++m) acc[g][m] = RoundHalf(_mm512_fmadd_ps(v[m], f, acc[g][m]));
      sum[g] = sum[g] * ms + vs;  // this file is built with -ffp-contract=off: no fma here
    }
  }
  for (int g = 0; g < G; ++g) {
    S[g] = sum[g];
    for (int m = 0; m < 4 * NB; ++m)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc16 + g * hd + 16 * m),
                          _mm512_cvtps_ph(acc[g][m], _MM_FROUND_TO_NEAREST_INT));
  }
}

// One block of keys for all heads, reading keys through K and values through V.
template <int NB, class K, class V>
TS_AVX512 inline void AttendBlock(const AttendF16Args& a, const K& kr, const V& vr, int c) {
  constexpr int hd = 64 * NB;
  constexpr int kGroup = NB == 1 ? 4 : 2;  // heads whose sums fit in registers together
  BlockWeights w[kGroup];
  for (int j0 = 0; j0 < a.span; j0 += kGroup) {
    const int G = a.span - j0 < kGroup ? a.span - j0 : kGroup;
    for (int g = 0; g < G; ++g) {
      const __m512 s = _mm512_mul_ps(Scores<NB>(a.qs + (j0 + g) * hd, kr, c), _mm512_set1_ps(a.scale));
      Weights(s, c, a.M + j0 + g, w[g]);
    }
    uint16_t* acc = a.acc16 + static_cast<size_t>(j0) * hd;
    float* S = a.S + j0;
    switch (G) {
      case 1: Accumulate<NB, 1>(vr, c, w, acc, S); break;
      case 2: Accumulate<NB, 2>(vr, c, w, acc, S); break;
      case 3: Accumulate<NB, 3>(vr, c, w, acc, S); break;
      default: Accumulate<NB, kGroup>(vr, c, w, acc, S); break;
    }
  }
}

template <int NB>
TS_AVX512 void AttendBlocked(const AttendF16Args& a) {
  constexpr int hd = 64 * NB;
  constexpr int kGroup = NB == 1 ? 4 : 2;
  // Widen keys once when 2+ heads score them; values when 2+ register groups
  // of heads read them (within one group each value is read once anyway).
  const bool widen_k = a.span > 1, widen_v = a.span > kGroup;
  alignas(64) float kf[16 * hd], vf[16 * hd];
  for (int p0 = 0; p0 < a.n_pos; p0 += 16) {
    const int c = a.n_pos - p0 < 16 ? a.n_pos - p0 : 16;
    const HalfRows kh{a.k + static_cast<size_t>(p0) * a.stride, a.stride};
    const HalfRows vh{a.v + static_cast<size_t>(p0) * a.stride, a.stride};
    for (int t = 0; t < c; ++t)
      for (int m = 0; m < 4 * NB; ++m) {
        if (widen_k) _mm512_store_ps(kf + t * hd + 16 * m, kh.load(t, 16 * m));
        if (widen_v) _mm512_store_ps(vf + t * hd + 16 * m, vh.load(t, 16 * m));
      }
    const WidenedRows kw{kf, hd}, vw{vf, hd};
    if (widen_k && widen_v) AttendBlock<NB>(a, kw, vw, c);
    else if (widen_k) AttendBlock<NB>(a, kw, vh, c);
    else AttendBlock<NB>(a, kh, vh, c);
  }
}

TS_AVX512 void ExpF32x16Avx512(const float* x, float* y) { _mm512_storeu_ps(y, ExpF32x16(_mm512_loadu_ps(x))); }

#undef TS_AVX512
#pragma GCC diagnostic pop
#endif  // __x86_64__

}  // namespace

#if defined(__x86_64__)
void AttendF16BlockedAvx512(const AttendF16Args& a) {
  if (a.hd == 64) AttendBlocked<1>(a);
  else AttendBlocked<2>(a);
}
#endif

void exp_f32x16_exact(const float* x, float* y, CpuPath path) {
#if defined(__x86_64__)
  if (path == CpuPath::Avx512) {
    ExpF32x16Avx512(x, y);
    return;
  }
#endif
  for (int i = 0; i < 16; ++i) y[i] = std::exp(x[i]);
}

}  // namespace ts
