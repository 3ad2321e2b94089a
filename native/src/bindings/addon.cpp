#include "bindings/registry.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ts::RegisterGgufBindings(env, exports);
  ts::RegisterKernelBindings(env, exports);
  ts::RegisterModelBindings(env, exports);
  ts::RegisterSamplingBindings(env, exports);
  ts::RegisterMemoryBindings(env, exports);
  return exports;
}

NODE_API_MODULE(tokenstream, Init)
