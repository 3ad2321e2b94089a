// JS <-> native conversions for sampling, shared by the sampling binding and
// the model binding (Session.setSampler / Session.sample).
#pragma once
#include <napi.h>

#include "sampling/sampler.h"

namespace ts {

// A SamplingConfig object (server/src/engine/types.ts) -> SamplerParams.
// Missing fields keep SamplerParams' defaults; a field of the wrong type or out
// of range throws EngineError(INVALID_ARGUMENT) naming it.
SamplerParams SamplerParamsFromJs(const Napi::Object& config);

// SampleResult -> { token, logprob, top?: [{ token, logprob }] } (SampledToken).
Napi::Object SampledTokenToJs(Napi::Env env, const SampleResult& r);

}  // namespace ts
