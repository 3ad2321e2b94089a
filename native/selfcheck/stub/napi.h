// Just enough of napi.h for bindings/errors.h to compile in the stand-alone
// kernel self-check (which has no Node.js to link against).
#pragma once
#include <stdexcept>
#include <string>

namespace Napi {
struct Env {};
struct String {
  static String New(Env, const std::string&) { return {}; }
};
struct Error : std::exception {
  static Error New(Env, const std::string&) { return {}; }
  void Set(const char*, String) {}
};
}  // namespace Napi
