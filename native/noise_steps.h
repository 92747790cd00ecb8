// The responder's Noise_IKpsk2 message steps for a batch of handshakes in one call (see noise_steps.cc).
#pragma once
#include <napi.h>

#include "hscrypto.h"

namespace tsg {
// Adds noiseInitiations, noiseResponses, noiseInitiationsAsync and noiseResponsesAsync to the addon's exports; fresh
// ephemeral key pairs come from `pool` (InitHandshakeCrypto's).
void InitNoiseSteps(Napi::Env env, Napi::Object exports, KeyPool* pool);
}  // namespace tsg
