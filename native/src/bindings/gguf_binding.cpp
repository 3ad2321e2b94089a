// JS surface of the GGUF reader: readGgufMetadata(path) -> GgufMetadata
// (server/src/engine/types.ts). Metadata is copied out (numeric arrays as
// typed arrays) so the mapping is closed before returning; tensor data is not
// touched at all.
#include <cstring>
#include <string>

#include "bindings/errors.h"
#include "bindings/registry.h"
#include "gguf/gguf.h"
#include "kernels/ggml_types.h"

namespace ts {

namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 - 1

Napi::Value U64ToJs(Napi::Env env, uint64_t v) {
  if (static_cast<double>(v) <= kMaxSafeInteger) return Napi::Number::New(env, static_cast<double>(v));
  return Napi::BigInt::New(env, v);
}

Napi::Value I64ToJs(Napi::Env env, int64_t v) {
  const double d = static_cast<double>(v);
  if (d <= kMaxSafeInteger && d >= -kMaxSafeInteger) return Napi::Number::New(env, d);
  return Napi::BigInt::New(env, v);
}

// Copies `count` raw elements into a fresh typed array (the mapping closes on return,
// and its elements need not be aligned for a view anyway).
Napi::Value TypedArrayCopy(Napi::Env env, napi_typedarray_type kind, size_t elem_size, const uint8_t* src,
                           uint64_t count) {
  const size_t bytes = static_cast<size_t>(count) * elem_size;
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, bytes);
  if (bytes) std::memcpy(buf.Data(), src, bytes);
  napi_value out;
  NAPI_THROW_IF_FAILED(env, napi_create_typedarray(env, kind, static_cast<size_t>(count), buf, 0, &out),
                       Napi::Value());
  return Napi::Value(env, out);
}

Napi::Value ValueToJs(Napi::Env env, const GgufValue& v);

Napi::Value ArrayToJs(Napi::Env env, const GgufValue& v) {
  if (v.count > 0xFFFFFFFFull)  // JS arrays hold fewer; only a >4 GB metadata array could get here
    throw EngineError("GGUF_INVALID", "metadata array of " + std::to_string(v.count) + " elements is too long for JS");
  switch (v.elem_type) {
    case GgufType::UINT8: return TypedArrayCopy(env, napi_uint8_array, 1, v.elems, v.count);
    case GgufType::INT8: return TypedArrayCopy(env, napi_int8_array, 1, v.elems, v.count);
    case GgufType::UINT16: return TypedArrayCopy(env, napi_uint16_array, 2, v.elems, v.count);
    case GgufType::INT16: return TypedArrayCopy(env, napi_int16_array, 2, v.elems, v.count);
    case GgufType::UINT32: return TypedArrayCopy(env, napi_uint32_array, 4, v.elems, v.count);
    case GgufType::INT32: return TypedArrayCopy(env, napi_int32_array, 4, v.elems, v.count);
    case GgufType::FLOAT32: return TypedArrayCopy(env, napi_float32_array, 4, v.elems, v.count);
    case GgufType::FLOAT64: return TypedArrayCopy(env, napi_float64_array, 8, v.elems, v.count);
    case GgufType::UINT64: return TypedArrayCopy(env, napi_biguint64_array, 8, v.elems, v.count);
    case GgufType::INT64: return TypedArrayCopy(env, napi_bigint64_array, 8, v.elems, v.count);
    case GgufType::BOOL: {
      Napi::Array arr = Napi::Array::New(env, static_cast<size_t>(v.count));
      for (uint32_t i = 0; i < v.count; ++i) arr.Set(i, Napi::Boolean::New(env, v.elems[i] != 0));
      return arr;
    }
    case GgufType::STRING: {
      Napi::Array arr = Napi::Array::New(env, v.strings.size());
      for (uint32_t i = 0; i < v.strings.size(); ++i) {
        const std::string& s = v.strings[i];
        napi_value js;
        NAPI_THROW_IF_FAILED(env, napi_create_string_utf8(env, s.data(), s.size(), &js), Napi::Value());
        NAPI_THROW_IF_FAILED(env, napi_set_element(env, arr, i, js), Napi::Value());
      }
      return arr;
    }
    case GgufType::ARRAY: {
      Napi::Array arr = Napi::Array::New(env, v.items.size());
      for (uint32_t i = 0; i < v.items.size(); ++i) arr.Set(i, ArrayToJs(env, v.items[i]));
      return arr;
    }
  }
  return env.Undefined();
}

Napi::Value ValueToJs(Napi::Env env, const GgufValue& v) {
  switch (v.type) {
    case GgufType::UINT8: case GgufType::UINT16: case GgufType::UINT32:
      return Napi::Number::New(env, static_cast<double>(v.u64));
    case GgufType::INT8: case GgufType::INT16: case GgufType::INT32:
      return Napi::Number::New(env, static_cast<double>(v.i64));
    case GgufType::UINT64: return U64ToJs(env, v.u64);
    case GgufType::INT64: return I64ToJs(env, v.i64);
    case GgufType::FLOAT32: case GgufType::FLOAT64: return Napi::Number::New(env, v.f64);
    case GgufType::BOOL: return Napi::Boolean::New(env, v.u64 != 0);
    case GgufType::STRING: return Napi::String::New(env, v.str);
    case GgufType::ARRAY: return ArrayToJs(env, v);
  }
  return env.Undefined();
}

// "uint32", "string", "array<float32>", "array<array<uint8>>" — enough for a
// writer to reproduce the value with its exact GGUF types. A nested array is
// described by its first element (GGUF lets inner arrays differ; nothing uses that).
std::string TypeDescriptor(const GgufValue& v) {
  if (v.type != GgufType::ARRAY) return GgufTypeName(v.type);
  if (v.elem_type != GgufType::ARRAY) return std::string("array<") + GgufTypeName(v.elem_type) + ">";
  if (v.items.empty()) return "array<array<uint8>>";
  return "array<" + TypeDescriptor(v.items[0]) + ">";
}

Napi::Value ReadGgufMetadata(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString())
    throw MakeJsError(env, "INVALID_ARGUMENT", "readGgufMetadata(path): path must be a string");
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  return Guard(env, [&]() -> Napi::Value {
    std::unique_ptr<GgufFile> file = GgufFile::Open(path);
    Napi::Object out = Napi::Object::New(env);
    out.Set("path", path);
    out.Set("version", Napi::Number::New(env, file->version()));
    out.Set("fileSize", Napi::Number::New(env, static_cast<double>(file->file_size())));
    out.Set("alignment", Napi::Number::New(env, static_cast<double>(file->alignment())));
    out.Set("dataOffset", Napi::Number::New(env, static_cast<double>(file->data_offset())));
    Napi::Object metadata = Napi::Object::New(env);
    Napi::Object types = Napi::Object::New(env);
    for (const GgufKV& kv : file->metadata()) {
      metadata.Set(kv.key, ValueToJs(env, kv.value));
      types.Set(kv.key, TypeDescriptor(kv.value));
    }
    out.Set("metadata", metadata);
    out.Set("valueTypes", types);
    const auto& tensors = file->tensors();
    Napi::Array list = Napi::Array::New(env, tensors.size());
    for (uint32_t i = 0; i < tensors.size(); ++i) {
      const GgufTensorInfo& t = tensors[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", t.name);
      o.Set("type", ggml_type_traits(t.type).name);
      Napi::Array dims = Napi::Array::New(env, t.n_dims);
      for (uint32_t j = 0; j < t.n_dims; ++j) dims.Set(j, Napi::Number::New(env, static_cast<double>(t.ne[j])));
      o.Set("dims", dims);
      o.Set("offset", Napi::Number::New(env, static_cast<double>(file->data_offset() + t.offset)));
      o.Set("nbytes", Napi::Number::New(env, static_cast<double>(t.nbytes)));
      list.Set(i, o);
    }
    out.Set("tensors", list);
    return out;
  });
}

}  // namespace

void RegisterGgufBindings(Napi::Env env, Napi::Object exports) {
  exports.Set("readGgufMetadata", Napi::Function::New(env, ReadGgufMetadata, "readGgufMetadata"));
}

}  // namespace ts
