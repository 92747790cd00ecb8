// X25519, BLAKE2s, HMAC-BLAKE2s and keyed BLAKE2s through Node's own OpenSSL (see hscrypto.cc).
#pragma once
#include <napi.h>
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>

namespace tsg {
// Pre-generated X25519 key pairs, refilled by a background thread; one per Node environment.
class KeyPool;

// Adds blake2s, hmacBlake2s, kdfBlake2s, macBlake2s, x25519Generate, x25519Import, x25519Public and x25519 to the addon's
// exports; returns the environment's key pool (freed with the environment), or null when OpenSSL lacks the primitives
// (nothing is added then).
KeyPool* InitHandshakeCrypto(Napi::Env env, Napi::Object exports);

// A fresh key pair from `pool` (generated now when the pool is empty), owned by the caller (EVP_PKEY_free erases it);
// null when OpenSSL fails. Call on the environment's JavaScript thread.
EVP_PKEY* TakeKeyPair(KeyPool* pool);

// The same primitives on raw memory, on any thread (each thread keeps its own OpenSSL contexts); for
// noise_steps.cc. False when OpenSSL fails (or, for DeriveX25519, the result is all zero).
// BLAKE2s-256 of a ‖ b into out (32 bytes; out may alias a or b).
bool HashInto(const uint8_t* a, size_t aLen, const uint8_t* b, size_t bLen, uint8_t* out);
// WireGuard's KDF with a 32-byte key and n (1–3) outputs τ1‖…‖τn into out (32 × n bytes, not aliasing key or input).
bool KdfInto(const uint8_t* key, const uint8_t* input, size_t inputLen, size_t n, uint8_t* out);
// X25519 of a key from x25519Import/x25519Generate with a peer's public key (32 bytes) into out.
bool DeriveX25519(EVP_PKEY* key, const uint8_t* pub, uint8_t* out);
// The same with n peers' public keys into outs[i] (one derivation context for all); on failure every output is zeroed.
bool DeriveX25519(EVP_PKEY* key, size_t n, const uint8_t* const* pubs, uint8_t* const* outs);
// The key an x25519Import/x25519Generate External holds, or null.
EVP_PKEY* X25519KeyOf(const Napi::Value& v);
}  // namespace tsg
