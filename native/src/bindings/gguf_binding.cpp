#include "bindings/registry.h"
namespace ts {
void RegisterGgufBindings(Napi::Env env, Napi::Object exports) {}
}
