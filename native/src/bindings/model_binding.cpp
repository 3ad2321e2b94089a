// JS surface of the model and session: plain functions over External handles
// (no classes, so the addon works unchanged in every worker thread). The
// TypeScript wrapper (server/src/engine/model.ts) gives them their shape.
#include <memory>
#include <string>

#include "bindings/errors.h"
#include "bindings/registry.h"
#include "model/allocation_counter.h"
#include "model/model.h"
#include "model/session.h"
#include "runtime/thread_pool.h"

namespace ts {

namespace {

struct ModelHandle {
  std::shared_ptr<const Model> model;
};
struct SessionHandle {
  std::unique_ptr<Session> session;
};

template <typename T>
T* Unwrap(const Napi::Value& v, const char* what) {
  if (!v.IsExternal()) throw EngineError("INVALID_ARGUMENT", std::string("expected a ") + what + " handle");
  return v.As<Napi::External<T>>().Data();
}

const Model& GetModel(const Napi::Value& v) {
  ModelHandle* h = Unwrap<ModelHandle>(v, "model");
  if (!h->model) throw EngineError("CLOSED", "the model was closed");
  return *h->model;
}

Session& GetSession(const Napi::Value& v) {
  SessionHandle* h = Unwrap<SessionHandle>(v, "session");
  if (!h->session) throw EngineError("CLOSED", "the session was closed");
  return *h->session;
}

int32_t IntArg(const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) throw EngineError("INVALID_ARGUMENT", std::string(what) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int32_t>(d)))
    throw EngineError("INVALID_ARGUMENT", std::string(what) + " must be a 32-bit integer");
  return static_cast<int32_t>(d);
}

double NumberProp(const Napi::Object& o, const char* key, double def) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return def;
  if (!v.IsNumber()) throw EngineError("INVALID_ARGUMENT", std::string(key) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

// An integer option in [lo, hi]; absent = def. Checked before any cast (a
// double outside int's range must not reach static_cast).
int64_t IntProp(const Napi::Object& o, const char* key, int64_t def, int64_t lo, int64_t hi) {
  const double d = NumberProp(o, key, static_cast<double>(def));
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != static_cast<double>(static_cast<int64_t>(d)))
    throw EngineError("INVALID_ARGUMENT", std::string(key) + " must be an integer in [" + std::to_string(lo) + ", " +
                                              std::to_string(hi) + "]");
  return static_cast<int64_t>(d);
}

bool BoolProp(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return !v.IsUndefined() && !v.IsNull() && v.ToBoolean().Value();
}

template <typename T, napi_typedarray_type kType>
const T* TypedArrayArg(const Napi::Value& v, const char* what, size_t min_len) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != kType)
    throw EngineError("INVALID_ARGUMENT", std::string("batch.") + what + " has the wrong array type");
  auto arr = v.As<Napi::TypedArrayOf<T>>();
  if (arr.ElementLength() < min_len)
    throw EngineError("INVALID_ARGUMENT", std::string("batch.") + what + " holds " +
                                              std::to_string(arr.ElementLength()) + " entries, fewer than length " +
                                              std::to_string(min_len));
  return arr.Data();
}

// modelLoad(path, {cpu, prefetch, lock, load: 'mmap' | 'read'}) -> handle
Napi::Value ModelLoad(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    if (!info[0].IsString()) throw EngineError("INVALID_ARGUMENT", "model path must be a string");
    ModelLoadOptions opts;
    if (info[1].IsObject()) {
      Napi::Object o = info[1].As<Napi::Object>();
      Napi::Value cpu = o.Get("cpu");
      if (cpu.IsString()) opts.cpu = cpu.As<Napi::String>().Utf8Value();
      opts.prefetch = BoolProp(o, "prefetch");
      opts.lock = BoolProp(o, "lock");
      Napi::Value load = o.Get("load");
      if (!load.IsUndefined() && !load.IsNull()) {
        const std::string mode = load.IsString() ? load.As<Napi::String>().Utf8Value() : "";
        if (mode == "read") opts.load_mode = GgufLoadMode::Read;
        else if (mode != "mmap") throw EngineError("INVALID_ARGUMENT", "load must be 'mmap' or 'read'");
      }
    }
    auto* h = new ModelHandle{Model::Load(info[0].As<Napi::String>().Utf8Value(), opts)};
    return Napi::External<ModelHandle>::New(info.Env(), h, [](Napi::Env, ModelHandle* p) { delete p; });
  });
}

Napi::Value ModelRelease(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Unwrap<ModelHandle>(info[0], "model")->model.reset();
    return info.Env().Undefined();
  });
}

Napi::Value ModelInfoFn(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const Model& m = GetModel(info[0]);
    const ModelConfig& c = m.config();
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", m.file().path());
    o.Set("name", c.name);
    o.Set("architecture", c.arch_str());
    o.Set("parameterCount", static_cast<double>(m.parameter_count()));
    o.Set("fileSize", static_cast<double>(m.file().file_size()));
    o.Set("vocabSize", static_cast<double>(c.n_vocab));
    o.Set("contextLength", static_cast<double>(c.n_ctx_train));
    o.Set("embeddingLength", static_cast<double>(c.n_embd));
    o.Set("blockCount", static_cast<double>(c.n_layer));
    o.Set("headCount", static_cast<double>(c.n_head));
    o.Set("headCountKv", static_cast<double>(c.n_head_kv));
    o.Set("headDim", static_cast<double>(c.head_dim));
    o.Set("feedForwardLength", static_cast<double>(c.n_ff));
    o.Set("rmsEpsilon", c.rms_eps);
    o.Set("ropeBase", c.rope_base);
    o.Set("ropeDimensionCount", static_cast<double>(c.rope_dim));
    o.Set("ropeType", c.rope_type_str());
    o.Set("ropeFreqScale", c.rope_freq_scale);
    o.Set("hasRopeFreqs", c.has_rope_freqs);
    o.Set("tiedOutput", c.tied_output);
    Napi::Object types = Napi::Object::New(env);
    for (const auto& kv : m.tensor_type_counts()) types.Set(kv.first, kv.second);
    o.Set("tensorTypes", types);
    o.Set("cpuPath", cpu_path_name(m.kernels().path));
    o.Set("physicalCores", physical_core_count());
    o.Set("instanceId", static_cast<double>(m.instance_id()));
    o.Set("loadMode", m.file().load_mode() == GgufLoadMode::Read ? "read" : "mmap");
    const GgufValue* eos = m.file().Find("tokenizer.ggml.eos_token_id");
    o.Set("eosTokenId", eos && eos->type != GgufType::STRING && eos->type != GgufType::ARRAY
                            ? Napi::Value(Napi::Number::New(env, static_cast<double>(eos->u64)))
                            : env.Null());
    return o;
  });
}

// modelDequantizeTensor(handle, name) -> Float32Array of every element (tests:
// the float64 reference forward reads weights through the engine's own dequantizer).
Napi::Value ModelDequantizeTensor(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    const Model& m = GetModel(info[0]);
    if (!info[1].IsString()) throw EngineError("INVALID_ARGUMENT", "tensor name must be a string");
    const std::string name = info[1].As<Napi::String>().Utf8Value();
    const GgufTensorInfo* t = m.file().Tensor(name);
    if (!t) throw EngineError("NOT_FOUND", "tensor " + name + " is not in the model");
    if (!ggml_type_traits(t->type).computable)
      throw EngineError("MODEL_UNSUPPORTED", "tensor " + name + " has type " + ggml_type_traits(t->type).name);
    const int64_t row = t->ne[0], rows = t->nelements() / t->ne[0];
    const size_t row_bytes = ggml_row_size(t->type, row);
    auto out = Napi::Float32Array::New(info.Env(), static_cast<size_t>(t->nelements()));
    for (int64_t r = 0; r < rows; ++r)
      m.kernels().dequantize_row(t->type, t->data + r * row_bytes, out.Data() + r * row, row);
    return out;
  });
}

// sessionCreate(model, opts) -> {handle, logits: ArrayBuffer, maxOutputs, threads, contextLength}
Napi::Value SessionCreate(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    ModelHandle* mh = Unwrap<ModelHandle>(info[0], "model");
    if (!mh->model) throw EngineError("CLOSED", "the model was closed");
    if (!info[1].IsObject()) throw EngineError("INVALID_ARGUMENT", "session options must be an object");
    Napi::Object o = info[1].As<Napi::Object>();
    SessionOptions opts;
    const int64_t kMax = 1 << 30;  // the session checks the real limits with clearer messages
    opts.max_sequences = static_cast<int>(IntProp(o, "maxSequences", 1, -kMax, kMax));
    opts.context_length = static_cast<int>(IntProp(o, "contextLength", 0, -kMax, kMax));
    opts.max_batch = static_cast<int>(IntProp(o, "maxBatch", 512, -kMax, kMax));
    opts.max_outputs = static_cast<int>(IntProp(o, "maxOutputs", 0, -kMax, kMax));
    opts.threads = static_cast<int>(IntProp(o, "threads", 0, -kMax, kMax));
    Napi::Value reuse = o.Get("reuseBuffers");
    if (!reuse.IsUndefined() && !reuse.IsNull()) opts.reuse_buffers = reuse.ToBoolean().Value();
    Napi::Value kv = o.Get("kvType");
    if (kv.IsString()) {
      const std::string s = kv.As<Napi::String>().Utf8Value();
      if (s == "f16") opts.kv_type = KvType::F16;
      else if (s == "f32") opts.kv_type = KvType::F32;
      else throw EngineError("INVALID_ARGUMENT", "kvType '" + s + "' is not f16 or f32");
    }
    auto* h = new SessionHandle{std::make_unique<Session>(mh->model, opts)};
    Session& s = *h->session;
    Napi::Object r = Napi::Object::New(env);
    r.Set("handle", Napi::External<SessionHandle>::New(env, h, [](Napi::Env, SessionHandle* p) { delete p; }));
    // The JS view keeps the logits memory alive on its own (a session closed
    // while JS holds the view must not leave it dangling).
    auto* keep = new std::shared_ptr<AlignedBuffer>(s.logits_buffer());
    r.Set("logits", Napi::ArrayBuffer::New(env, (*keep)->data(), (*keep)->bytes(),
                                           [](Napi::Env, void*, std::shared_ptr<AlignedBuffer>* k) { delete k; }, keep));
    r.Set("maxOutputs", s.max_outputs());
    r.Set("threads", s.threads());
    r.Set("contextLength", s.context_length());
    r.Set("maxBatch", s.max_batch());
    r.Set("maxSequences", s.max_sequences());
    r.Set("vocabSize", static_cast<double>(s.vocab_size()));
    r.Set("kvCacheBytes", static_cast<double>(s.kv_cache_bytes()));
    return r;
  });
}

// sessionDecode(handle, seq, token, pos, logits, length) -> rows of logits written
Napi::Value SessionDecode(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Session& s = GetSession(info[0]);
    BatchView b;
    b.n = IntArg(info[5], "batch.length");
    if (b.n < 0) throw EngineError("INVALID_ARGUMENT", "batch.length must not be negative");
    const size_t n = static_cast<size_t>(b.n);
    b.seq = TypedArrayArg<int32_t, napi_int32_array>(info[1], "seq", n);
    b.token = TypedArrayArg<int32_t, napi_int32_array>(info[2], "token", n);
    b.pos = TypedArrayArg<int32_t, napi_int32_array>(info[3], "pos", n);
    b.want_logits = TypedArrayArg<uint8_t, napi_uint8_array>(info[4], "logits", n);
    return Napi::Number::New(info.Env(), s.Decode(b));
  });
}

Napi::Value SessionSetSampler(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Session& s = GetSession(info[0]);
    const int seq = IntArg(info[1], "seq");
    if (!info[2].IsObject()) throw EngineError("INVALID_ARGUMENT", "sampling config must be an object");
    Napi::Object o = info[2].As<Napi::Object>();
    SamplerParams p;
    p.temperature = static_cast<float>(NumberProp(o, "temperature", 0));
    p.top_k = static_cast<int>(IntProp(o, "topK", 0, 0, 1 << 30));
    p.top_p = static_cast<float>(NumberProp(o, "topP", 1));
    p.min_p = static_cast<float>(NumberProp(o, "minP", 0));
    p.repetition_penalty = static_cast<float>(NumberProp(o, "repetitionPenalty", 1));
    p.presence_penalty = static_cast<float>(NumberProp(o, "presencePenalty", 0));
    p.frequency_penalty = static_cast<float>(NumberProp(o, "frequencyPenalty", 0));
    p.penalty_last_n = static_cast<int>(IntProp(o, "penaltyLastN", 64, -1, 1 << 30));
    p.seed = static_cast<uint32_t>(IntProp(o, "seed", 0, 0, 0xffffffffLL));
    p.n_top = static_cast<int>(IntProp(o, "topLogprobs", 0, 0, Session::kMaxTopLogprobs));
    const int32_t* hist = nullptr;
    int n_hist = 0;
    if (info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsNull()) {
      if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
        throw EngineError("INVALID_ARGUMENT", "history must be an Int32Array");
      auto a = info[3].As<Napi::Int32Array>();
      hist = a.Data();
      n_hist = static_cast<int>(a.ElementLength());
    }
    s.SetSampler(seq, p, hist, n_hist);
    return info.Env().Undefined();
  });
}

Napi::Value SessionSample(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Session& s = GetSession(info[0]);
    const SampleResult r = s.Sample(IntArg(info[1], "seq"), IntArg(info[2], "row"));
    Napi::Object o = Napi::Object::New(env);
    o.Set("token", r.token);
    o.Set("logprob", r.logprob);
    if (r.n_top > 0) {
      Napi::Array top = Napi::Array::New(env, static_cast<size_t>(r.n_top));
      for (int i = 0; i < r.n_top; ++i) {
        Napi::Object t = Napi::Object::New(env);
        t.Set("token", r.top_ids[i]);
        t.Set("logprob", r.top_logprobs[i]);
        top.Set(static_cast<uint32_t>(i), t);
      }
      o.Set("top", top);
    }
    return o;
  });
}

Napi::Value SessionClear(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    GetSession(info[0]).ClearSequence(IntArg(info[1], "seq"));
    return info.Env().Undefined();
  });
}

Napi::Value SessionLength(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), GetSession(info[0]).SequenceLength(IntArg(info[1], "seq")));
  });
}

Napi::Value SessionKvResident(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<double>(GetSession(info[0]).kv_resident_bytes()));
  });
}

Napi::Value SessionClose(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Unwrap<SessionHandle>(info[0], "session")->session.reset();
    return info.Env().Undefined();
  });
}

Napi::Value HeapAllocationCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(heap_allocation_count()));
}

}  // namespace

void RegisterModelBindings(Napi::Env env, Napi::Object exports) {
  exports.Set("modelLoad", Napi::Function::New(env, ModelLoad, "modelLoad"));
  exports.Set("modelRelease", Napi::Function::New(env, ModelRelease, "modelRelease"));
  exports.Set("modelInfo", Napi::Function::New(env, ModelInfoFn, "modelInfo"));
  exports.Set("modelDequantizeTensor", Napi::Function::New(env, ModelDequantizeTensor, "modelDequantizeTensor"));
  exports.Set("sessionCreate", Napi::Function::New(env, SessionCreate, "sessionCreate"));
  exports.Set("sessionDecode", Napi::Function::New(env, SessionDecode, "sessionDecode"));
  exports.Set("sessionSetSampler", Napi::Function::New(env, SessionSetSampler, "sessionSetSampler"));
  exports.Set("sessionSample", Napi::Function::New(env, SessionSample, "sessionSample"));
  exports.Set("sessionClear", Napi::Function::New(env, SessionClear, "sessionClear"));
  exports.Set("sessionLength", Napi::Function::New(env, SessionLength, "sessionLength"));
  exports.Set("sessionKvResident", Napi::Function::New(env, SessionKvResident, "sessionKvResident"));
  exports.Set("sessionClose", Napi::Function::New(env, SessionClose, "sessionClose"));
  exports.Set("heapAllocationCount", Napi::Function::New(env, HeapAllocationCount, "heapAllocationCount"));
}

}  // namespace ts
