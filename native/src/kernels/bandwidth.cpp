// Streaming-read bandwidth kernel for benchmarks: the ceiling a memory-bound
// GEMV can reach on this machine with a given number of threads.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "bindings/errors.h"
#include "kernels/kernel_impl.h"
#include "kernels/kernels.h"
#include "runtime/thread_pool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace ts {

namespace {

uint64_t sum_scalar(const uint8_t* p, size_t n) {
  const uint64_t* q = reinterpret_cast<const uint64_t*>(p);
  uint64_t a = 0, b = 0, c = 0, d = 0;
  for (size_t i = 0; i + 4 <= n / 8; i += 4) {
    a += q[i];
    b += q[i + 1];
    c += q[i + 2];
    d += q[i + 3];
  }
  return a + b + c + d;
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) uint64_t sum_avx2(const uint8_t* p, size_t n) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  for (size_t i = 0; i + 128 <= n; i += 128) {
    a = _mm256_add_epi64(a, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    b = _mm256_add_epi64(b, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    c = _mm256_add_epi64(c, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    d = _mm256_add_epi64(d, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
  alignas(32) uint64_t out[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(out), s);
  return out[0] + out[1] + out[2] + out[3];
}

#endif

#if defined(__aarch64__)
uint64_t sum_neon(const uint8_t* p, size_t n) {
  uint64x2_t a = vdupq_n_u64(0), b = a, c = a, d = a;
  for (size_t i = 0; i + 64 <= n; i += 64) {
    a = vaddq_u64(a, vreinterpretq_u64_u8(vld1q_u8(p + i)));
    b = vaddq_u64(b, vreinterpretq_u64_u8(vld1q_u8(p + i + 16)));
    c = vaddq_u64(c, vreinterpretq_u64_u8(vld1q_u8(p + i + 32)));
    d = vaddq_u64(d, vreinterpretq_u64_u8(vld1q_u8(p + i + 48)));
  }
  const uint64x2_t s = vaddq_u64(vaddq_u64(a, b), vaddq_u64(c, d));
  return vgetq_lane_u64(s, 0) + vgetq_lane_u64(s, 1);
}
#endif

#if defined(__x86_64__)
// Four streams read side by side, 128 bytes of each per step, as the batch-1
// GEMV reads four weight rows from the four quarters of its share
// (kernel_impl.h, rows_by_blocks). Measured with 2 threads: 47-52 GB/s against
// 41-44 for one stream per thread, which the Q8_0 and F16 GEMVs exceeded
// (they read 47-51 GB/s): a ceiling must be the best way to read, not one way.
// kPrefetch adds software prefetch kPrefetchAhead bytes ahead on each stream,
// as the integer row kernels do; the ceiling is the faster of the two.
// n is a multiple of 4096, so the four quarters cover it.
template <bool kPrefetch>
__attribute__((target("avx512f"))) uint64_t sum4_avx512(const uint8_t* p, size_t n) {
  const size_t q = n / 4 / 128 * 128;
  const uint8_t* s[4] = {p, p + q, p + 2 * q, p + 3 * q};
  __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
  for (size_t i = 0; i < q; i += 128)
    for (int k = 0; k < 4; ++k) {
      if constexpr (kPrefetch) kimpl::prefetch_ahead<2>(s[k] + i);
      acc[k] = _mm512_add_epi64(acc[k], _mm512_add_epi64(_mm512_load_si512(s[k] + i), _mm512_load_si512(s[k] + i + 64)));
    }
  alignas(64) uint64_t out[8];
  _mm512_store_si512(out, _mm512_add_epi64(_mm512_add_epi64(acc[0], acc[1]), _mm512_add_epi64(acc[2], acc[3])));
  return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}
#endif

using SumFn = uint64_t (*)(const uint8_t*, size_t);

SumFn best_sum(bool prefetch) {
#if defined(__x86_64__)
  if (cpu_path_supported(CpuPath::Avx512)) return prefetch ? sum4_avx512<true> : sum4_avx512<false>;
  if (cpu_path_supported(CpuPath::Avx2)) return sum_avx2;
#elif defined(__aarch64__)
  return sum_neon;
#endif
  return sum_scalar;
}

volatile uint64_t g_sink;

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

}  // namespace

double measure_read_bandwidth(ThreadPool& pool, size_t bytes) {
  constexpr size_t kMin = size_t{1} << 20, kMax = size_t{1} << 34;
  if (bytes < kMin || bytes > kMax)
    throw EngineError("INVALID_ARGUMENT", "bandwidth buffer must be between 1 MiB and 16 GiB");
  constexpr size_t kSlice = 4096;  // threads read whole pages
  bytes = bytes / kSlice * kSlice;
  std::unique_ptr<uint8_t, FreeDeleter> buf(static_cast<uint8_t*>(std::aligned_alloc(kSlice, bytes)));
  if (!buf) throw std::bad_alloc();
  // Fault every page in before timing, with contents that differ page to page:
  // identical pages could be merged by the host (KSM) and then read from cache.
  uint64_t* words = reinterpret_cast<uint64_t*>(buf.get());
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0, n = bytes / sizeof(uint64_t); i < n; ++i) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;  // xorshift64
    words[i] = x;
  }

  SumFn sum = best_sum(false);
  const int threads = pool.size();
  const size_t pages = bytes / kSlice;
  std::vector<uint64_t> sinks(static_cast<size_t>(threads) * 8, 0);  // one cache line per thread
  const uint8_t* base = buf.get();
  auto read_share = [&](int t, int) {
    const size_t p0 = pages * t / threads, p1 = pages * (t + 1) / threads;
    sinks[static_cast<size_t>(t) * 8] += sum(base + p0 * kSlice, (p1 - p0) * kSlice);
  };
  double best = 1e30;
  for (int pass = 0; pass < 12; ++pass) {
    sum = best_sum(pass % 2 == 1);  // both ways of reading, alternately
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(threads, read_share);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (pass > 1) best = std::min(best, s);  // the first passes warm the pool and TLB
  }
  uint64_t total = 0;
  for (uint64_t v : sinks) total += v;
  g_sink = total;  // keeps the sums observable
  return static_cast<double>(bytes) / best / 1e9;
}

}  // namespace ts
