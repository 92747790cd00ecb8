// ChaCha20-Poly1305 for the data path through Node's own OpenSSL (see aead.cc).
#pragma once
#include <napi.h>

namespace tsg {
// Adds aeadSeal, aeadOpen, aeadBatch and cryptoThreads to the addon's exports.
void InitAead(Napi::Env env, Napi::Object exports);
}  // namespace tsg
