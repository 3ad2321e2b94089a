// Errors cross the addon boundary as JS Errors with a stable `code`.
#pragma once
#include <napi.h>
#include <stdexcept>
#include <string>

namespace ts {

// Engine code throws EngineError; bindings turn it into a JS Error with .code.
struct EngineError : std::runtime_error {
  std::string code;  // e.g. GGUF_INVALID, MODEL_UNSUPPORTED, IO_ERROR, INVALID_ARGUMENT
  EngineError(std::string c, const std::string& msg) : std::runtime_error(msg), code(std::move(c)) {}
};

inline Napi::Error MakeJsError(Napi::Env env, const std::string& code, const std::string& msg) {
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

// Runs fn, converting EngineError / std::exception into a thrown JS Error.
template <typename Fn>
auto Guard(Napi::Env env, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const EngineError& e) {
    throw MakeJsError(env, e.code, e.what());
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw MakeJsError(env, "OUT_OF_MEMORY", "out of memory");
  } catch (const std::exception& e) {
    throw MakeJsError(env, "INTERNAL", e.what());
  }
}

}  // namespace ts
