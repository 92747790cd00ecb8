// BLAKE2s as RFC 7693 specifies it. The handshake hashes short inputs (at most a few blocks) many
// times per message; through OpenSSL's EVP interface every HMAC re-keys a MAC context and every hash
// re-initialises a digest context, and that setup costs several times the compressions themselves.
// A direct implementation has no setup at all. It is checked against node:crypto's (OpenSSL's)
// BLAKE2s, HMAC and @noble's keyed BLAKE2s before use (src/crypto/native.ts) and by the test suite.
// No branch or index depends on the data, so it is constant-time for secret keys and inputs.
#include "blake2s.h"

#include <openssl/crypto.h>

#include <cstring>

namespace tsg {
namespace {

constexpr uint32_t kIv[8] = {0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19};

constexpr uint8_t kSigma[10][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
};

inline uint32_t Rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

inline uint32_t Load32(const uint8_t* p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  uint32_t x;
  std::memcpy(&x, p, 4);
  return x;
#else
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
#endif
}

inline __attribute__((always_inline)) void G(uint32_t* v, int a, int b, int c, int d, uint32_t x, uint32_t y) {
  v[a] = v[a] + v[b] + x;
  v[d] = Rotr(v[d] ^ v[a], 16);
  v[c] = v[c] + v[d];
  v[b] = Rotr(v[b] ^ v[c], 12);
  v[a] = v[a] + v[b] + y;
  v[d] = Rotr(v[d] ^ v[a], 8);
  v[c] = v[c] + v[d];
  v[b] = Rotr(v[b] ^ v[c], 7);
}

}  // namespace

Blake2s::Blake2s(size_t outLen, const uint8_t* key, size_t keyLen) : outLen_(outLen) {
  std::memcpy(h_, kIv, sizeof h_);
  h_[0] ^= 0x01010000u ^ (static_cast<uint32_t>(keyLen) << 8) ^ static_cast<uint32_t>(outLen);
  if (keyLen > 0) {
    std::memset(buf_, 0, sizeof buf_);
    std::memcpy(buf_, key, keyLen);
    bufLen_ = kBlake2sBlock;  // the key block is compressed once more data (or Final) follows
  }
}

Blake2s::~Blake2s() {
  OPENSSL_cleanse(h_, sizeof h_);
  OPENSSL_cleanse(buf_, sizeof buf_);
}

// One round on the 16 working words v with message words m, permuted by row r of kSigma.
#define TSG_B2S_ROUND(r)                                         \
  do {                                                           \
    const uint8_t* s = kSigma[r];                                \
    G(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);                         \
    G(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);                         \
    G(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);                        \
    G(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);                        \
    G(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);                        \
    G(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);                      \
    G(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);                       \
    G(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);                       \
  } while (0)

// The working words stay on the stack between calls and are overwritten by the next compression;
// the chaining state and the buffer (the secrets that outlive a call) are erased by the destructor.
void Blake2s::Compress(const uint8_t* block, bool last) {
  uint32_t m[16], v[16];
  for (int i = 0; i < 16; i++) m[i] = Load32(block + 4 * i);
  for (int i = 0; i < 8; i++) {
    v[i] = h_[i];
    v[i + 8] = kIv[i];
  }
  v[12] ^= static_cast<uint32_t>(t_);
  v[13] ^= static_cast<uint32_t>(t_ >> 32);
  if (last) v[14] = ~v[14];
  TSG_B2S_ROUND(0);
  TSG_B2S_ROUND(1);
  TSG_B2S_ROUND(2);
  TSG_B2S_ROUND(3);
  TSG_B2S_ROUND(4);
  TSG_B2S_ROUND(5);
  TSG_B2S_ROUND(6);
  TSG_B2S_ROUND(7);
  TSG_B2S_ROUND(8);
  TSG_B2S_ROUND(9);
  for (int i = 0; i < 8; i++) h_[i] ^= v[i] ^ v[i + 8];
}

#undef TSG_B2S_ROUND

void Blake2s::Update(const uint8_t* data, size_t len) {
  while (len > 0) {
    // A full buffer is compressed only now that more data follows: the last block needs the final flag.
    if (bufLen_ == kBlake2sBlock) {
      t_ += kBlake2sBlock;
      Compress(buf_, false);
      bufLen_ = 0;
    }
    const size_t take = len < kBlake2sBlock - bufLen_ ? len : kBlake2sBlock - bufLen_;
    std::memcpy(buf_ + bufLen_, data, take);
    bufLen_ += take;
    data += take;
    len -= take;
  }
}

void Blake2s::Final(uint8_t* out) {
  t_ += bufLen_;
  std::memset(buf_ + bufLen_, 0, kBlake2sBlock - bufLen_);
  Compress(buf_, true);
  uint8_t full[kBlake2sOut];
  for (int i = 0; i < 8; i++) {
    full[4 * i] = static_cast<uint8_t>(h_[i]);
    full[4 * i + 1] = static_cast<uint8_t>(h_[i] >> 8);
    full[4 * i + 2] = static_cast<uint8_t>(h_[i] >> 16);
    full[4 * i + 3] = static_cast<uint8_t>(h_[i] >> 24);
  }
  std::memcpy(out, full, outLen_);
  OPENSSL_cleanse(full, sizeof full);
}

void HmacBlake2s(const uint8_t* key, size_t keyLen, const uint8_t* a, size_t aLen, const uint8_t* b, size_t bLen,
                 uint8_t out[kBlake2sOut]) {
  uint8_t k[kBlake2sBlock] = {0};
  if (keyLen > kBlake2sBlock) {
    Blake2s kh(kBlake2sOut);
    kh.Update(key, keyLen);
    kh.Final(k);
  } else {
    std::memcpy(k, key, keyLen);
  }
  uint8_t pad[kBlake2sBlock], inner[kBlake2sOut];
  for (size_t i = 0; i < kBlake2sBlock; i++) pad[i] = k[i] ^ 0x36;
  {
    Blake2s h(kBlake2sOut);
    h.Update(pad, sizeof pad);
    h.Update(a, aLen);
    h.Update(b, bLen);
    h.Final(inner);
  }
  for (size_t i = 0; i < kBlake2sBlock; i++) pad[i] = k[i] ^ 0x5c;
  Blake2s h(kBlake2sOut);
  h.Update(pad, sizeof pad);
  h.Update(inner, sizeof inner);
  h.Final(out);
  OPENSSL_cleanse(k, sizeof k);
  OPENSSL_cleanse(pad, sizeof pad);
  OPENSSL_cleanse(inner, sizeof inner);
}

void KdfBlake2s(const uint8_t key[kBlake2sOut], const uint8_t* input, size_t inputLen, size_t n, uint8_t* out) {
  uint8_t prk[kBlake2sOut];
  HmacBlake2s(key, kBlake2sOut, input, inputLen, nullptr, 0, prk);
  for (size_t i = 0; i < n; i++) {
    const uint8_t counter = static_cast<uint8_t>(i + 1);
    if (i == 0) HmacBlake2s(prk, sizeof prk, &counter, 1, nullptr, 0, out);
    else HmacBlake2s(prk, sizeof prk, out + (i - 1) * kBlake2sOut, kBlake2sOut, &counter, 1, out + i * kBlake2sOut);
  }
  OPENSSL_cleanse(prk, sizeof prk);
}

}  // namespace tsg
