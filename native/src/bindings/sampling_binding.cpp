// addon.sampling: the native sampler on its own, for tests and tools.
//   const s = new addon.sampling.Sampler(vocabSize, maxHistory, maxTop, cpu?)
//   s.reset(config: SamplingConfig, history?: Int32Array)
//   s.sample(logits: Float32Array, row = 0) -> SampledToken   (row: logits[row*vocab ...])
//   s.accept(token)
//   s.cpuPath -> 'scalar' | 'avx2' | 'avx512' | 'neon'
//   addon.sampling.bestCpuPath() -> the path a Sampler uses by default
#include <cmath>
#include <memory>
#include <string>

#include "bindings/errors.h"
#include "bindings/registry.h"
#include "bindings/sampling_js.h"

namespace ts {
namespace {

const char* PathName(CpuPath p) {
  switch (p) {
    case CpuPath::Avx2: return "avx2";
    case CpuPath::Avx512: return "avx512";
    case CpuPath::Neon: return "neon";
    default: return "scalar";
  }
}

double NumberField(const Napi::Object& o, const char* key, double dflt, bool* present = nullptr) {
  Napi::Value v = o.Get(key);
  if (present) *present = !v.IsUndefined();
  if (v.IsUndefined()) return dflt;
  if (!v.IsNumber()) throw EngineError("INVALID_ARGUMENT", std::string("sampling config: ") + key + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) throw EngineError("INVALID_ARGUMENT", std::string("sampling config: ") + key + " must be finite");
  return d;
}

int IntField(const Napi::Object& o, const char* key, int dflt, double lo, double hi) {
  double d = NumberField(o, key, dflt);
  if (d != std::floor(d) || d < lo || d > hi)
    throw EngineError("INVALID_ARGUMENT", std::string("sampling config: ") + key + " must be an integer in [" +
                                              std::to_string(static_cast<long long>(lo)) + ", " +
                                              std::to_string(static_cast<long long>(hi)) + "]");
  return static_cast<int>(d);
}

class SamplerWrap : public Napi::ObjectWrap<SamplerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Sampler",
                       {InstanceMethod<&SamplerWrap::Reset>("reset"), InstanceMethod<&SamplerWrap::Sample>("sample"),
                        InstanceMethod<&SamplerWrap::Accept>("accept"),
                        InstanceAccessor<&SamplerWrap::CpuPathGetter>("cpuPath")});
  }

  explicit SamplerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SamplerWrap>(info) {
    Napi::Env env = info.Env();
    Guard(env, [&] {
      for (int i = 0; i < 3; ++i)
        if (!info[i].IsNumber()) throw EngineError("INVALID_ARGUMENT", "Sampler(vocabSize, maxHistory, maxTop): numbers expected");
      double vocab = info[0].As<Napi::Number>().DoubleValue();
      double hist = info[1].As<Napi::Number>().DoubleValue();
      double top = info[2].As<Napi::Number>().DoubleValue();
      if (!(vocab >= 1 && vocab <= 1e8) || !(hist >= 0 && hist <= 1e7) || !(top >= 0 && top <= 1e8))
        throw EngineError("INVALID_ARGUMENT", "Sampler: sizes out of range");
      int path = -1;
      if (info.Length() > 3 && !info[3].IsUndefined()) {
        std::string name = info[3].ToString().Utf8Value();
        if (name == "scalar") path = static_cast<int>(CpuPath::Scalar);
        else if (name == "avx2") path = static_cast<int>(CpuPath::Avx2);
        else if (name == "avx512") path = static_cast<int>(CpuPath::Avx512);
        else if (name != "" && name != "auto") throw EngineError("INVALID_ARGUMENT", "Sampler: unknown cpu path '" + name + "'");
      }
      sampler_.reset(new Sampler(static_cast<int>(vocab), static_cast<int>(hist), static_cast<int>(top), nullptr, path));
      return 0;
    });
  }

 private:
  Napi::Value Reset(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Guard(env, [&] {
      if (!info[0].IsObject()) throw EngineError("INVALID_ARGUMENT", "reset(config, history?): config object expected");
      SamplerParams p = SamplerParamsFromJs(info[0].As<Napi::Object>());
      const int32_t* hist = nullptr;
      int n = 0;
      if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull()) {
        if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
          throw EngineError("INVALID_ARGUMENT", "reset: history must be an Int32Array");
        Napi::Int32Array h = info[1].As<Napi::Int32Array>();
        hist = h.Data();
        n = static_cast<int>(h.ElementLength());
      }
      sampler_->reset(p, hist, n);
      return 0;
    });
    return env.Undefined();
  }

  Napi::Value Sample(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guard(env, [&]() -> Napi::Value {
      if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        throw EngineError("INVALID_ARGUMENT", "sample(logits, row?): logits must be a Float32Array");
      Napi::Float32Array a = info[0].As<Napi::Float32Array>();
      size_t vocab = static_cast<size_t>(sampler_->vocab_size());
      double row = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0;
      if (row < 0 || row != std::floor(row) || (row + 1) * static_cast<double>(vocab) > static_cast<double>(a.ElementLength()))
        throw EngineError("INVALID_ARGUMENT", "sample: logits hold " + std::to_string(a.ElementLength()) +
                                                  " floats, need row " + std::to_string(static_cast<long long>(row)) +
                                                  " of " + std::to_string(vocab));
      SampleResult r = sampler_->sample(a.Data() + static_cast<size_t>(row) * vocab);
      return SampledTokenToJs(env, r);
    });
  }

  Napi::Value Accept(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Guard(env, [&] {
      if (!info[0].IsNumber()) throw EngineError("INVALID_ARGUMENT", "accept(token): number expected");
      double t = info[0].As<Napi::Number>().DoubleValue();
      if (t != std::floor(t) || t < 0 || t >= sampler_->vocab_size())
        throw EngineError("INVALID_ARGUMENT", "accept: token outside the vocabulary");
      sampler_->accept(static_cast<int32_t>(t));
      return 0;
    });
    return env.Undefined();
  }

  Napi::Value CpuPathGetter(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), PathName(sampler_->path()));
  }

  std::unique_ptr<Sampler> sampler_;
};

}  // namespace

SamplerParams SamplerParamsFromJs(const Napi::Object& c) {
  SamplerParams p;
  p.temperature = static_cast<float>(NumberField(c, "temperature", p.temperature));
  p.top_k = IntField(c, "topK", p.top_k, 0, 2147483647.0);
  p.top_p = static_cast<float>(NumberField(c, "topP", p.top_p));
  p.min_p = static_cast<float>(NumberField(c, "minP", p.min_p));
  p.repetition_penalty = static_cast<float>(NumberField(c, "repetitionPenalty", p.repetition_penalty));
  p.presence_penalty = static_cast<float>(NumberField(c, "presencePenalty", p.presence_penalty));
  p.frequency_penalty = static_cast<float>(NumberField(c, "frequencyPenalty", p.frequency_penalty));
  p.penalty_last_n = IntField(c, "penaltyLastN", p.penalty_last_n, -1, 2147483647.0);
  double seed = NumberField(c, "seed", p.seed);
  if (seed != std::floor(seed) || seed < 0 || seed > 4294967295.0)
    throw EngineError("INVALID_ARGUMENT", "sampling config: seed must be an integer in [0, 4294967295]");
  p.seed = static_cast<uint32_t>(seed);
  p.n_top = IntField(c, "topLogprobs", p.n_top, 0, 2147483647.0);
  return p;
}

Napi::Object SampledTokenToJs(Napi::Env env, const SampleResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("token", Napi::Number::New(env, r.token));
  o.Set("logprob", Napi::Number::New(env, r.logprob));
  if (r.n_top > 0) {
    Napi::Array top = Napi::Array::New(env, static_cast<size_t>(r.n_top));
    for (int i = 0; i < r.n_top; ++i) {
      Napi::Object e = Napi::Object::New(env);
      e.Set("token", Napi::Number::New(env, r.top_ids[i]));
      e.Set("logprob", Napi::Number::New(env, r.top_logprobs[i]));
      top.Set(static_cast<uint32_t>(i), e);
    }
    o.Set("top", top);
  }
  return o;
}

void RegisterSamplingBindings(Napi::Env env, Napi::Object exports) {
  Napi::Object sampling = Napi::Object::New(env);
  sampling.Set("Sampler", SamplerWrap::Define(env));
  sampling.Set("bestCpuPath", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                 return Napi::String::New(info.Env(), PathName(sampler_best_path()));
               }));
  exports.Set("sampling", sampling);
}

}  // namespace ts
