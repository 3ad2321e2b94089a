// JS surface of the kernels for tests and benchmarks: addon.kernels = {...}
// (typed in server/src/engine/kernels.ts). Every call validates its input
// sizes before touching memory; errors carry code INVALID_ARGUMENT.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bindings/errors.h"
#include "bindings/registry.h"
#include "kernels/kernels.h"
#include "kernels/reference.h"
#include "model/attention_kernels.h"
#include "model/fp16.h"
#include "runtime/thread_pool.h"

namespace ts {

namespace {

[[noreturn]] void bad(const std::string& msg) { throw EngineError("INVALID_ARGUMENT", msg); }

int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi) {
  if (info.Length() <= i || !info[i].IsNumber()) bad(std::string(name) + " must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v == std::floor(v)) || v < static_cast<double>(lo) || v > static_cast<double>(hi))
    bad(std::string(name) + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int64_t>(v);
}

std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString()) bad(std::string(name) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

template <typename T>
Napi::TypedArrayOf<T> array_arg(const Napi::CallbackInfo& info, size_t i, const char* name, napi_typedarray_type t) {
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != t)
    bad(std::string(name) + " has the wrong type");
  return info[i].As<Napi::TypedArrayOf<T>>();
}

// "scalar" | "avx2" | "avx512" | "neon", plus "avx512-novnni" (the AVX-512
// path without VNNI instructions, for testing on a VNNI machine).
Kernels kernels_arg(const Napi::CallbackInfo& info, size_t i) {
  std::string name = string_arg(info, i, "path");
  const bool no_vnni = name == "avx512-novnni";
  if (no_vnni) name = "avx512";
  Kernels k = make_kernels(select_cpu_path(name));
  if (no_vnni) k.vnni = false;
  return k;
}

uint32_t computable_type_arg(const Napi::CallbackInfo& info, size_t i) {
  const uint32_t type = static_cast<uint32_t>(int_arg(info, i, "type", 0, GGML_TYPE_COUNT - 1));
  if (!ggml_type_traits(type).computable)
    bad(std::string("no kernels for type ") + ggml_type_traits(type).name);
  return type;
}

// 64-byte aligned scratch owned by a binding call.
struct AlignedBuffer {
  explicit AlignedBuffer(size_t n) : p(static_cast<uint8_t*>(std::aligned_alloc(64, (n + 63) / 64 * 64 + 64))) {
    if (!p) throw std::bad_alloc();
  }
  ~AlignedBuffer() { std::free(p); }
  uint8_t* p;
};

struct MatmulArgs {
  Kernels k;
  WeightMatrix w;
  Napi::Float32Array x;
  int64_t batch;
};

// (type, path, weightBytes, rows, cols, x, batch) shared by matmul and benchMatmul.
MatmulArgs matmul_args(const Napi::CallbackInfo& info, int64_t copies = 1) {
  MatmulArgs a{};
  a.w.type = computable_type_arg(info, 0);
  a.k = kernels_arg(info, 1);
  auto bytes = array_arg<uint8_t>(info, 2, "weightBytes", napi_uint8_array);
  a.w.rows = int_arg(info, 3, "rows", 1, 1 << 24);
  a.w.cols = int_arg(info, 4, "cols", 1, 1 << 24);
  a.x = array_arg<float>(info, 5, "x", napi_float32_array);
  a.batch = int_arg(info, 6, "batch", 1, 1 << 16);
  a.w.row_bytes = ggml_row_size(a.w.type, a.w.cols);
  if (a.w.row_bytes == 0) bad("cols must be a multiple of the type's block size");
  if (bytes.ByteLength() != a.w.row_bytes * static_cast<size_t>(a.w.rows * copies))
    bad("weightBytes must hold exactly rows * row size bytes (" +
        std::to_string(a.w.row_bytes * static_cast<size_t>(a.w.rows * copies)) + ")");
  if (a.x.ElementLength() != static_cast<size_t>(a.batch * a.w.cols)) bad("x must hold batch * cols floats");
  a.w.data = bytes.Data();
  return a;
}

Napi::Value CpuFeaturesJs(const Napi::CallbackInfo& info) {
  const CpuFeatures& f = cpu_features();
  Napi::Object o = Napi::Object::New(info.Env());
  const std::pair<const char*, bool> flags[] = {
      {"avx2", f.avx2},         {"fma", f.fma},           {"f16c", f.f16c},         {"avx512f", f.avx512f},
      {"avx512bw", f.avx512bw}, {"avx512vl", f.avx512vl}, {"avx512dq", f.avx512dq}, {"avx512vnni", f.avx512vnni},
      {"avxVnni", f.avx_vnni},  {"neon", f.neon},         {"neonDotprod", f.neon_dotprod}};
  for (const auto& [name, on] : flags) o.Set(name, Napi::Boolean::New(info.Env(), on));
  return o;
}

Napi::Value SupportedPaths(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env());
  uint32_t n = 0;
  for (CpuPath p : {CpuPath::Scalar, CpuPath::Avx2, CpuPath::Avx512, CpuPath::Neon})
    if (cpu_path_supported(p)) a.Set(n++, Napi::String::New(info.Env(), cpu_path_name(p)));
  return a;
}

Napi::Value TypeInfo(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&] {
    const GgmlTypeTraits& t = ggml_type_traits(static_cast<uint32_t>(int_arg(info, 0, "type", 0, 1 << 30)));
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("name", t.name);
    o.Set("blockSize", Napi::Number::New(info.Env(), static_cast<double>(t.block_size)));
    o.Set("typeSize", Napi::Number::New(info.Env(), static_cast<double>(t.type_size)));
    o.Set("computable", t.computable);
    return o;
  });
}

// dequantizeRow(type, path, bytes, n) -> Float32Array(n)
Napi::Value DequantizeRow(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    const uint32_t type = computable_type_arg(info, 0);
    const Kernels k = kernels_arg(info, 1);
    auto bytes = array_arg<uint8_t>(info, 2, "bytes", napi_uint8_array);
    const int64_t n = int_arg(info, 3, "n", 0, 1 << 28);
    const size_t need = ggml_row_size(type, n);
    if (n > 0 && need == 0) bad("n must be a multiple of the type's block size");
    if (bytes.ByteLength() != need) bad("bytes must hold exactly one row of n elements (" + std::to_string(need) + ")");
    Napi::Float32Array out = Napi::Float32Array::New(info.Env(), static_cast<size_t>(n));
    k.dequantize_row(type, bytes.Data(), out.Data(), n);
    return out;
  });
}

// matmul(type, path, weightBytes, rows, cols, x, batch, threads) -> Float32Array(batch * rows)
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    MatmulArgs a = matmul_args(info);
    const int threads = static_cast<int>(int_arg(info, 7, "threads", 1, 256));
    const size_t scratch_bytes = matmul_scratch_bytes(a.w.cols, a.batch, threads);
    AlignedBuffer scratch(scratch_bytes);
    Napi::Float32Array y = Napi::Float32Array::New(info.Env(), static_cast<size_t>(a.batch * a.w.rows));
    ThreadPool pool(threads);
    a.k.matmul(pool, a.w, a.x.Data(), a.batch, y.Data(), a.w.rows, MatmulScratch{scratch.p, scratch_bytes});
    return y;
  });
}

// benchMatmul(type, path, weightBytes, rows, cols, x, batch, threads, iterations, copies = 1)
//   -> best seconds per call. weightBytes may hold `copies` matrices back to back;
//   calls cycle through them, so with enough copies the weights come from
//   memory rather than the last-level cache, as in a real decode step.
Napi::Value BenchMatmul(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    const int64_t copies = info.Length() > 9 ? int_arg(info, 9, "copies", 1, 4096) : 1;
    MatmulArgs a = matmul_args(info, copies);
    const int threads = static_cast<int>(int_arg(info, 7, "threads", 1, 256));
    const int iterations = static_cast<int>(int_arg(info, 8, "iterations", 1, 1 << 20));
    const size_t scratch_bytes = matmul_scratch_bytes(a.w.cols, a.batch, threads);
    AlignedBuffer scratch(scratch_bytes);
    const MatmulScratch ms{scratch.p, scratch_bytes};
    std::vector<float> y(static_cast<size_t>(a.batch * a.w.rows) + 16);
    ThreadPool pool(threads);
    const size_t matrix_bytes = a.w.row_bytes * static_cast<size_t>(a.w.rows);
    const uint8_t* base = static_cast<const uint8_t*>(a.w.data);
    for (int64_t c = 0; c < copies; ++c) {  // warm-up: page in every copy
      a.w.data = base + c * matrix_bytes;
      a.k.matmul(pool, a.w, a.x.Data(), a.batch, y.data(), a.w.rows, ms);
    }
    double best = 1e30;
    for (int i = 0; i < iterations; ++i) {
      a.w.data = base + (i % copies) * matrix_bytes;
      const auto t0 = std::chrono::steady_clock::now();
      a.k.matmul(pool, a.w, a.x.Data(), a.batch, y.data(), a.w.rows, ms);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return Napi::Number::New(info.Env(), best);
  });
}

// referenceMatmul(type, weightBytes, rows, cols, x, batch) -> Float64Array(batch * rows)
Napi::Value ReferenceMatmul(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    const uint32_t type = computable_type_arg(info, 0);
    auto bytes = array_arg<uint8_t>(info, 1, "weightBytes", napi_uint8_array);
    const int64_t rows = int_arg(info, 2, "rows", 1, 1 << 24);
    const int64_t cols = int_arg(info, 3, "cols", 1, 1 << 24);
    auto x = array_arg<float>(info, 4, "x", napi_float32_array);
    const int64_t batch = int_arg(info, 5, "batch", 1, 1 << 16);
    const size_t row_bytes = ggml_row_size(type, cols);
    if (row_bytes == 0) bad("cols must be a multiple of the type's block size");
    if (bytes.ByteLength() != row_bytes * static_cast<size_t>(rows)) bad("weightBytes must hold rows * row size bytes");
    if (x.ElementLength() != static_cast<size_t>(batch * cols)) bad("x must hold batch * cols floats");
    Napi::Float64Array y = Napi::Float64Array::New(info.Env(), static_cast<size_t>(batch * rows));
    reference_matmul(type, bytes.Data(), rows, cols, x.Data(), batch, y.Data());
    return y;
  });
}

// quantizeRowQ8_0(path, x) / quantizeRowQ8K(path, x) / quantizeRowQ8_1(path, x)
//   -> Uint8Array of ggml blocks
template <uint32_t kType>
Napi::Value QuantizeRow(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    const Kernels k = kernels_arg(info, 0);
    auto x = array_arg<float>(info, 1, "x", napi_float32_array);
    const int64_t n = static_cast<int64_t>(x.ElementLength());
    const size_t bytes = ggml_row_size(kType, n);
    if (bytes == 0 && n > 0) bad("x length must be a multiple of the block size");
    AlignedBuffer tmp(bytes + 64);
    if (kType == GGML_Q8_K)
      quantize_row_q8_K(k, x.Data(), tmp.p, n);
    else if (kType == GGML_Q8_1)
      quantize_row_q8_1(k, x.Data(), tmp.p, n);
    else
      quantize_row_q8_0(k, x.Data(), tmp.p, n);
    Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), bytes);
    if (bytes) std::memcpy(out.Data(), tmp.p, bytes);
    return out;
  });
}

// fp32ToFp16(path, Float32Array) -> Uint16Array
Napi::Value Fp32ToFp16(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    const Kernels k = kernels_arg(info, 0);
    auto x = array_arg<float>(info, 1, "x", napi_float32_array);
    Napi::Uint16Array out = Napi::Uint16Array::New(info.Env(), x.ElementLength());
    fp32_to_fp16_row(k, x.Data(), out.Data(), static_cast<int64_t>(x.ElementLength()));
    return out;
  });
}

// attendF16(path, blocked, hd, span, nPos, q, k, v, scale) -> Float32Array
// One attention task over a F16 cache (q: [span][hd] f32, rounded to half
// here as the forward pass does; k, v: [nPos][hd] half bits). Returns the
// unnormalised half sums widened to f32 [span][hd], then M [span] and S [span].
// blocked = false runs the per-position loop even where a blocked kernel exists.
Napi::Value AttendF16(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    const CpuPath path = kernels_arg(info, 0).path;
    if (info.Length() <= 1 || !info[1].IsBoolean()) bad("blocked must be a boolean");
    const bool blocked = info[1].As<Napi::Boolean>().Value();
    const int hd = static_cast<int>(int_arg(info, 2, "hd", 1, 1024));
    const int span = static_cast<int>(int_arg(info, 3, "span", 1, 64));
    const int n_pos = static_cast<int>(int_arg(info, 4, "nPos", 0, 1 << 20));
    auto q = array_arg<float>(info, 5, "q", napi_float32_array);
    auto k = array_arg<uint16_t>(info, 6, "k", napi_uint16_array);
    auto v = array_arg<uint16_t>(info, 7, "v", napi_uint16_array);
    if (info.Length() <= 8 || !info[8].IsNumber()) bad("scale must be a number");
    const float scale = info[8].As<Napi::Number>().FloatValue();
    const size_t qn = static_cast<size_t>(span) * hd, kvn = static_cast<size_t>(n_pos) * hd;
    if (q.ElementLength() != qn) bad("q must hold span * hd values");
    if (k.ElementLength() != kvn || v.ElementLength() != kvn) bad("k and v must hold nPos * hd values");
    const AttentionKernels& ak = attention_kernels(path);
    std::vector<float> qs(qn);
    std::vector<uint16_t> acc(qn, 0);
    ak.f32_to_f16(q.Data(), acc.data(), static_cast<int>(qn));
    for (size_t i = 0; i < qn; ++i) qs[i] = HalfToFloat(acc[i]);
    std::fill(acc.begin(), acc.end(), static_cast<uint16_t>(0));
    std::vector<float> M(span, -std::numeric_limits<float>::infinity()), S(span, 0.0f);
    attend_f16(ak, AttendF16Args{qs.data(), span, hd, k.Data(), v.Data(), static_cast<size_t>(hd), n_pos, scale, acc.data(),
                                 M.data(), S.data()},
               blocked);
    Napi::Float32Array out = Napi::Float32Array::New(info.Env(), qn + 2 * span);
    for (size_t i = 0; i < qn; ++i) out[i] = HalfToFloat(acc[i]);
    for (int j = 0; j < span; ++j) {
      out[qn + j] = M[j];
      out[qn + span + j] = S[j];
    }
    return out;
  });
}

// expSweep(path, firstBits, step, count) -> [mismatches, firstMismatchBits]
// Compares exp_f32x16_exact with std::exp on the floats whose bit patterns
// are firstBits + i * step (mod 2^32), i < count.
Napi::Value ExpSweep(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    const CpuPath path = kernels_arg(info, 0).path;
    const uint32_t first = static_cast<uint32_t>(int_arg(info, 1, "firstBits", 0, 0xffffffffLL));
    const uint32_t step = static_cast<uint32_t>(int_arg(info, 2, "step", 1, 0xffffffffLL));
    const int64_t count = int_arg(info, 3, "count", 0, int64_t{1} << 32);
    double mismatches = 0, first_bad = -1;
    float x[16], y[16];
    for (int64_t i0 = 0; i0 < count; i0 += 16) {
      const int n = static_cast<int>(std::min<int64_t>(16, count - i0));
      for (int i = 0; i < 16; ++i) {
        const uint32_t bits = first + static_cast<uint32_t>(i0 + std::min(i, n - 1)) * step;
        std::memcpy(&x[i], &bits, 4);
      }
      exp_f32x16_exact(x, y, path);
      for (int i = 0; i < n; ++i) {
        const float want = std::exp(x[i]);
        if (std::memcmp(&want, &y[i], 4) != 0 && !(std::isnan(want) && std::isnan(y[i]))) {
          if (mismatches == 0) {
            uint32_t bits;
            std::memcpy(&bits, &x[i], 4);
            first_bad = bits;
          }
          ++mismatches;
        }
      }
    }
    Napi::Array out = Napi::Array::New(info.Env(), 2);
    out[0u] = Napi::Number::New(info.Env(), mismatches);
    out[1u] = Napi::Number::New(info.Env(), first_bad);
    return out;
  });
}

// readBandwidth(bytes, threads) -> GB/s
Napi::Value ReadBandwidth(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    const int64_t bytes = int_arg(info, 0, "bytes", 1 << 20, int64_t{1} << 34);
    const int threads = static_cast<int>(int_arg(info, 1, "threads", 1, 256));
    ThreadPool pool(threads);
    return Napi::Number::New(info.Env(), measure_read_bandwidth(pool, static_cast<size_t>(bytes)));
  });
}

// threadPoolRun(threads, taskCounts: Int32Array, repeats, pauseMicros) -> Int32Array
// For each entry n of taskCounts, runs parallel_for(n) `repeats` times on one
// pool (sleeping pauseMicros between runs, so workers also get woken from
// sleep) and counts how often each task index ran. Returns, per entry, the
// number of (task, run) pairs that did not run exactly once — all zeros when
// the pool is correct — followed by the largest thread index seen.
Napi::Value ThreadPoolRun(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    const int threads = static_cast<int>(int_arg(info, 0, "threads", 1, 256));
    auto sizes = array_arg<int32_t>(info, 1, "taskCounts", napi_int32_array);
    const int repeats = static_cast<int>(int_arg(info, 2, "repeats", 1, 1 << 20));
    const int64_t pause_us = int_arg(info, 3, "pauseMicros", 0, 1000000);
    Napi::Int32Array out = Napi::Int32Array::New(info.Env(), sizes.ElementLength() + 1);
    std::vector<int32_t> size_list(sizes.Data(), sizes.Data() + sizes.ElementLength());
    std::vector<int32_t> errors(size_list.size(), 0);
    int max_thread = 0;
    {
      ThreadPool pool(threads);
      for (size_t s = 0; s < size_list.size(); ++s) {
        const int n = size_list[s];
        if (n < 0 || n > (1 << 22)) bad("task counts must be in [0, 2^22]");
        std::unique_ptr<std::atomic<int>[]> hits(new std::atomic<int>[static_cast<size_t>(n) + 1]);
        std::atomic<int> seen_thread{0};
        for (int r = 0; r < repeats; ++r) {
          for (int t = 0; t < n; ++t) hits[t].store(0, std::memory_order_relaxed);
          auto fn = [&](int task, int thread) {
            hits[task].fetch_add(1, std::memory_order_relaxed);
            int prev = seen_thread.load(std::memory_order_relaxed);
            while (thread > prev && !seen_thread.compare_exchange_weak(prev, thread)) {
            }
          };
          pool.parallel_for(n, fn);
          for (int t = 0; t < n; ++t) errors[s] += hits[t].load(std::memory_order_relaxed) != 1;
          if (pause_us) std::this_thread::sleep_for(std::chrono::microseconds(pause_us));
        }
        max_thread = std::max(max_thread, seen_thread.load());
      }
    }  // the pool is destroyed here, right after its last job
    for (size_t s = 0; s < errors.size(); ++s) out[s] = errors[s];
    out[errors.size()] = max_thread;
    return out;
  });
}

}  // namespace

void RegisterKernelBindings(Napi::Env env, Napi::Object exports) {
  Napi::Object k = Napi::Object::New(env);
  k.Set("cpuFeatures", Napi::Function::New(env, CpuFeaturesJs));
  k.Set("supportedPaths", Napi::Function::New(env, SupportedPaths));
  k.Set("bestPath", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          return Napi::String::New(info.Env(), cpu_path_name(select_cpu_path("")));
        }));
  k.Set("physicalCores", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          return Napi::Number::New(info.Env(), physical_core_count());
        }));
  k.Set("typeInfo", Napi::Function::New(env, TypeInfo));
  k.Set("dequantizeRow", Napi::Function::New(env, DequantizeRow));
  k.Set("matmul", Napi::Function::New(env, Matmul));
  k.Set("benchMatmul", Napi::Function::New(env, BenchMatmul));
  k.Set("referenceMatmul", Napi::Function::New(env, ReferenceMatmul));
  k.Set("quantizeRowQ8_0", Napi::Function::New(env, QuantizeRow<GGML_Q8_0>));
  k.Set("quantizeRowQ8K", Napi::Function::New(env, QuantizeRow<GGML_Q8_K>));
  k.Set("quantizeRowQ8_1", Napi::Function::New(env, QuantizeRow<GGML_Q8_1>));
  k.Set("fp32ToFp16", Napi::Function::New(env, Fp32ToFp16));
  k.Set("readBandwidth", Napi::Function::New(env, ReadBandwidth));
  k.Set("attendF16", Napi::Function::New(env, AttendF16));
  k.Set("expSweep", Napi::Function::New(env, ExpSweep));
  k.Set("threadPoolRun", Napi::Function::New(env, ThreadPoolRun));
  exports.Set("kernels", k);
}

}  // namespace ts
