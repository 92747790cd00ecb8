// The responder's Noise_IKpsk2 message steps for a batch of handshakes in one call (see noise_steps.cc).
#pragma once
#include <napi.h>

namespace tsg {
// Adds noiseInitiations, noiseResponses, noiseInitiationsAsync and noiseResponsesAsync to the addon's exports.
void InitNoiseSteps(Napi::Env env, Napi::Object exports);
}  // namespace tsg
