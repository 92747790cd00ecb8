// ChaCha20-Poly1305 for the data path through Node's own OpenSSL (see aead.cc).
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace tsg {
// ChaCha20-Poly1305 with WireGuard's nonce (counter lo, hi) on the calling thread's reused context.
// Seals pt[0, len) into dst (ciphertext, then the 16-byte tag at dst + len); dst may equal pt.
bool AeadSeal(const uint8_t* key, uint32_t lo, uint32_t hi, const uint8_t* pt, size_t len, uint8_t* dst, const uint8_t* ad, size_t adLen);
// Opens ct[0, len) (ciphertext || tag, len >= 16) into dst (may equal ct); on failure dst is zeroed.
bool AeadOpen(const uint8_t* key, uint32_t lo, uint32_t hi, const uint8_t* ct, size_t len, uint8_t* dst, const uint8_t* ad, size_t adLen);
// Adds aeadSeal, aeadOpen, aeadBatch and cryptoThreads to the addon's exports.
void InitAead(Napi::Env env, Napi::Object exports);
}  // namespace tsg
