// JS surface of the allocator tuning (runtime/malloc_tuning.h):
//   mallocLimitArenas(n) -> bool, mallocTrim() -> bool
#include "bindings/errors.h"
#include "bindings/registry.h"
#include "runtime/malloc_tuning.h"

namespace ts {
namespace {

Napi::Value MallocLimitArenas(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    if (!info[0].IsNumber()) throw EngineError("INVALID_ARGUMENT", "arena count must be a number");
    const double n = info[0].As<Napi::Number>().DoubleValue();
    if (!(n >= 1 && n <= 1024) || n != static_cast<int>(n))
      throw EngineError("INVALID_ARGUMENT", "arena count must be an integer in [1, 1024]");
    return Napi::Boolean::New(info.Env(), LimitMallocArenas(static_cast<int>(n)));
  });
}

Napi::Value MallocTrim(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), TrimMalloc());
}

}  // namespace

void RegisterMemoryBindings(Napi::Env env, Napi::Object exports) {
  exports.Set("mallocLimitArenas", Napi::Function::New(env, MallocLimitArenas, "mallocLimitArenas"));
  exports.Set("mallocTrim", Napi::Function::New(env, MallocTrim, "mallocTrim"));
}

}  // namespace ts
