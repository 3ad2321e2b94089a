// Stand-alone kernel check, for paths the test machine cannot run natively
// (NEON): every weight type on every path this CPU supports against the
// double-precision reference, and SIMD dequantization / activation
// quantization against scalar bit for bit. Built and run by
// scripts/check-kernels-cross.sh (aarch64 cross compiler + qemu-user), or
// natively the same way. Not part of the addon (outside native/src).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "bindings/errors.h"
#include "kernels/fp16.h"
#include "kernels/kernels.h"
#include "kernels/reference.h"
#include "runtime/thread_pool.h"

using namespace ts;

namespace {

int failures = 0;

void fail(const char* what, const char* path, uint32_t type, int64_t cols, double err) {
  std::printf("FAIL %s path=%s type=%s cols=%lld err=%g\n", what, path, ggml_type_traits(type).name,
              static_cast<long long>(cols), err);
  ++failures;
}

uint16_t random_half(std::mt19937& g, int min_exp, int max_exp, bool allow_negative) {
  const uint16_t sign = allow_negative && (g() & 1) ? 0x8000 : 0;
  const uint16_t exp = static_cast<uint16_t>(min_exp + g() % (max_exp - min_exp + 1));
  return static_cast<uint16_t>(sign | (exp << 10) | (g() & 0x3ff));
}

std::vector<uint8_t> random_weights(uint32_t type, int64_t rows, int64_t cols, std::mt19937& g) {
  const size_t row = ggml_row_size(type, cols);
  std::vector<uint8_t> w(row * rows);
  for (auto& b : w) b = static_cast<uint8_t>(g());
  const GgmlTypeTraits& t = ggml_type_traits(type);
  const size_t blocks = w.size() / t.type_size;
  auto put16 = [&](size_t at, uint16_t v) { std::memcpy(w.data() + at, &v, 2); };
  for (size_t i = 0; i < blocks; ++i) {
    switch (type) {
      case GGML_F32: {
        const float f = std::uniform_real_distribution<float>(-1, 1)(g);
        std::memcpy(w.data() + i * 4, &f, 4);
        break;
      }
      case GGML_F16: put16(i * 2, random_half(g, 0, 15, true)); break;
      case GGML_BF16: put16(i * 2, static_cast<uint16_t>(((g() & 1) << 15) | ((118 + g() % 10) << 7) | (g() & 127))); break;
      case GGML_Q8_0: put16(i * 34, random_half(g, 8, 14, true)); break;
      case GGML_Q4_0: put16(i * 18, random_half(g, 8, 14, true)); break;
      case GGML_Q5_0: put16(i * 22, random_half(g, 8, 14, true)); break;
      case GGML_Q4_1:
      case GGML_Q5_1:  // d, m first
        put16(i * t.type_size, random_half(g, 8, 14, true));
        put16(i * t.type_size + 2, random_half(g, 8, 14, true));
        break;
      case GGML_Q4_K:
      case GGML_Q5_K:  // d, dmin first
        put16(i * t.type_size, random_half(g, 8, 14, false));
        put16(i * t.type_size + 2, random_half(g, 8, 14, false));
        break;
      case GGML_Q6_K: put16(i * 210 + 208, random_half(g, 8, 14, true)); break;
    }
  }
  return w;
}

void check_path(const char* path_name, const Kernels& k, ThreadPool& pool) {
  const uint32_t types[] = {GGML_F32, GGML_F16, GGML_BF16, GGML_Q8_0, GGML_Q4_0, GGML_Q5_0, GGML_Q4_1, GGML_Q5_1, GGML_Q4_K, GGML_Q5_K, GGML_Q6_K};
  const Kernels scalar = make_kernels(CpuPath::Scalar);
  std::mt19937 g(1234);
  for (uint32_t type : types) {
    const int64_t bs = ggml_type_traits(type).block_size;
    for (int64_t cols : {int64_t{256}, int64_t{768}, int64_t{2304}, int64_t{2336}, int64_t{37}, int64_t{160}}) {
      if (cols % bs) continue;
      for (auto [rows, batch] : {std::pair<int64_t, int64_t>{1, 1}, {17, 5}, {129, 3}}) {
        std::vector<uint8_t> w = random_weights(type, rows, cols, g);
        std::vector<float> x(batch * cols);
        for (auto& v : x) v = std::uniform_real_distribution<float>(-1, 1)(g) * ((g() % 50) ? 1.0f : 8.0f);
        std::vector<double> ref(batch * rows);
        reference_matmul(type, w.data(), rows, cols, x.data(), batch, ref.data());
        std::vector<float> y(batch * rows);
        std::vector<uint8_t> scratch_buf(matmul_scratch_bytes(cols, batch) + 64);
        void* scratch = scratch_buf.data() + (64 - reinterpret_cast<uintptr_t>(scratch_buf.data()) % 64) % 64;
        WeightMatrix m{type, w.data(), rows, cols, ggml_row_size(type, cols)};
        k.matmul(pool, m, x.data(), batch, y.data(), rows, scratch);
        double max_ref = 0, max_err = 0;
        for (size_t i = 0; i < ref.size(); ++i) {
          max_ref = std::max(max_ref, std::fabs(ref[i]));
          max_err = std::max(max_err, std::fabs(y[i] - ref[i]));
        }
        const double rel = max_ref > 0 ? max_err / max_ref : max_err;
        if (!(rel <= 1e-4)) fail("matmul", path_name, type, cols, rel);
      }
      // dequantization equals scalar bit for bit
      std::vector<uint8_t> w = random_weights(type, 1, cols, g);
      std::vector<float> a(cols), b(cols);
      scalar.dequantize_row(type, w.data(), a.data(), cols);
      k.dequantize_row(type, w.data(), b.data(), cols);
      if (std::memcmp(a.data(), b.data(), cols * 4) != 0) fail("dequantize", path_name, type, cols, 0);
    }
  }
  // activation quantizers and fp16 conversion equal scalar
  for (int64_t n : {int64_t{256}, int64_t{2304}}) {
    std::vector<float> x(n);
    for (auto& v : x) v = std::uniform_real_distribution<float>(-3, 3)(g);
    std::vector<uint8_t> qa(ggml_row_size(GGML_Q8_K, n) + 64), qb(qa.size());
    quantize_row_q8_0(scalar, x.data(), qa.data(), n);
    quantize_row_q8_0(k, x.data(), qb.data(), n);
    if (std::memcmp(qa.data(), qb.data(), ggml_row_size(GGML_Q8_0, n)) != 0) fail("quantize q8_0", path_name, GGML_Q8_0, n, 0);
    quantize_row_q8_1(scalar, x.data(), qa.data(), n);
    quantize_row_q8_1(k, x.data(), qb.data(), n);
    if (std::memcmp(qa.data(), qb.data(), ggml_row_size(GGML_Q8_1, n)) != 0) fail("quantize q8_1", path_name, GGML_Q8_1, n, 0);
    quantize_row_q8_K(scalar, x.data(), qa.data(), n);
    quantize_row_q8_K(k, x.data(), qb.data(), n);
    if (std::memcmp(qa.data(), qb.data(), ggml_row_size(GGML_Q8_K, n)) != 0) fail("quantize q8_K", path_name, GGML_Q8_K, n, 0);
    std::vector<uint16_t> ha(n), hb(n);
    fp32_to_fp16_row(scalar, x.data(), ha.data(), n);
    fp32_to_fp16_row(k, x.data(), hb.data(), n);
    if (ha != hb) fail("fp32_to_fp16", path_name, GGML_F16, n, 0);
  }
  std::vector<uint16_t> all(65536);
  for (int i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> fa(65536), fb(65536);
  scalar.dequantize_row(GGML_F16, all.data(), fa.data(), 65536);
  k.dequantize_row(GGML_F16, all.data(), fb.data(), 65536);
  if (std::memcmp(fa.data(), fb.data(), fa.size() * 4) != 0) fail("fp16 to fp32 (all halves)", path_name, GGML_F16, 65536, 0);
}

}  // namespace

int main() {
  try {
    ThreadPool pool(2);
    int paths = 0;
    for (CpuPath p : {CpuPath::Scalar, CpuPath::Avx2, CpuPath::Avx512, CpuPath::Neon}) {
      if (!cpu_path_supported(p)) continue;
      Kernels k = make_kernels(p);
      check_path(cpu_path_name(p), k, pool);
      ++paths;
      if (p == CpuPath::Avx512 && k.vnni) {
        k.vnni = false;
        check_path("avx512-novnni", k, pool);
      }
    }
    const CpuFeatures& f = cpu_features();
    std::printf("%d path(s) checked (neon=%d dotprod=%d avx512vnni=%d), %d failure(s)\n", paths, f.neon, f.neon_dotprod,
                f.avx512vnni, failures);
  } catch (const std::exception& e) {
    std::printf("error: %s\n", e.what());
    return 2;
  }
  return failures ? 1 : 0;
}
