#include "bindings/registry.h"
namespace ts {
void RegisterKernelBindings(Napi::Env env, Napi::Object exports) {}
}
