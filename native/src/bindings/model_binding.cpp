#include "bindings/registry.h"
namespace ts {
void RegisterModelBindings(Napi::Env env, Napi::Object exports) {}
}
