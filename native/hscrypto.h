// X25519, BLAKE2s, HMAC-BLAKE2s and keyed BLAKE2s through Node's own OpenSSL (see hscrypto.cc).
#pragma once
#include <napi.h>

namespace tsg {
// Adds blake2s, hmacBlake2s, kdfBlake2s, macBlake2s, x25519Generate, x25519Import, x25519Public, x25519, x25519Batch and x25519BatchAsync to the addon's exports.
void InitHandshakeCrypto(Napi::Env env, Napi::Object exports);
}  // namespace tsg
