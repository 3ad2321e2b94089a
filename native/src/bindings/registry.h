// Each binding file exports one Register* function; addon.cpp calls them all.
// Keeping them apart lets each engine part own its own JS surface.
#pragma once
#include <napi.h>

namespace ts {
void RegisterGgufBindings(Napi::Env env, Napi::Object exports);
void RegisterKernelBindings(Napi::Env env, Napi::Object exports);
void RegisterModelBindings(Napi::Env env, Napi::Object exports);
void RegisterSamplingBindings(Napi::Env env, Napi::Object exports);
void RegisterMemoryBindings(Napi::Env env, Napi::Object exports);
}  // namespace ts
