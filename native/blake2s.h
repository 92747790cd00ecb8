// BLAKE2s (RFC 7693) and WireGuard's constructions on it: plain and keyed hashing, HMAC-BLAKE2s and
// the HKDF of the handshake (see blake2s.cc for why it is here rather than OpenSSL's EVP).
#pragma once

#include <cstddef>
#include <cstdint>

namespace tsg {

constexpr size_t kBlake2sBlock = 64;
constexpr size_t kBlake2sOut = 32;

// Incremental BLAKE2s with an output of 1–32 bytes and an optional key of up to 32 bytes.
class Blake2s {
 public:
  Blake2s(size_t outLen, const uint8_t* key = nullptr, size_t keyLen = 0);
  ~Blake2s();
  void Update(const uint8_t* data, size_t len);
  // Writes the outLen-byte digest; the object must not be used afterwards.
  void Final(uint8_t* out);

 private:
  void Compress(const uint8_t* block, bool last);
  uint32_t h_[8];
  uint64_t t_ = 0;
  uint8_t buf_[kBlake2sBlock];
  size_t bufLen_ = 0;
  size_t outLen_;
};

// HMAC-BLAKE2s-256 (RFC 2104, 64-byte blocks) of a ‖ b.
void HmacBlake2s(const uint8_t* key, size_t keyLen, const uint8_t* a, size_t aLen, const uint8_t* b, size_t bLen,
                 uint8_t out[kBlake2sOut]);

// WireGuard's KDF with n (1–3) outputs τ1‖…‖τn into out (32·n bytes): τ0 = HMAC(key, input),
// τ1 = HMAC(τ0, 0x01), τi = HMAC(τ0, τ(i−1) ‖ i). τ0 is erased.
void KdfBlake2s(const uint8_t key[kBlake2sOut], const uint8_t* input, size_t inputLen, size_t n, uint8_t* out);

}  // namespace tsg
