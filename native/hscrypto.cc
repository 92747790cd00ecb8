// The handshake's primitives through the OpenSSL that Node itself links: X25519, BLAKE2s-256,
// HMAC-BLAKE2s and keyed BLAKE2s-128 (WireGuard's MAC). node:crypto reaches the same OpenSSL code
// but builds JavaScript objects per call (a Hash/Hmac object per hash, a JWK round trip per key
// import), which cost more than the primitives. Here each call is one N-API call into a context that
// is created once per thread and reused.
//
// X25519 private keys live in an EVP_PKEY owned by a JavaScript External: importing a private key
// makes OpenSSL derive its public key (a scalar multiplication), so the JavaScript side caches the
// External per key array (see src/crypto/native.ts). EVP_PKEY_free erases the private key.
//
// New key pairs (a responder needs one per handshake) come from a pool that a background thread
// keeps filled, so that their scalar multiplication runs on another core, off the event loop. The
// thread starts on first use, sleeps while the pool is full, and is stopped and joined (and the
// pooled keys freed) when the Node environment shuts down.
//
// The same primitives on raw memory (HashInto, KdfInto, DeriveX25519) serve noise_steps.cc, which
// computes whole Noise message steps for a batch of handshakes.
#include "hscrypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "common.h"

namespace tsg {
namespace {

constexpr size_t kKeyLen = 32;
constexpr size_t kMacLen = 16;
constexpr size_t kBlockLen = 64;  // BLAKE2s

// Per-thread OpenSSL objects, fetched once (worker threads may load the addon too).
struct Ctx {
  EVP_MD* blake2s = nullptr;
  EVP_MD_CTX* md = nullptr;
  EVP_MAC_CTX* kmac = nullptr;   // BLAKE2SMAC with a 16-byte output, re-keyed per call
  bool ok = false;

  Ctx() {
    blake2s = EVP_MD_fetch(nullptr, "BLAKE2S-256", nullptr);
    md = EVP_MD_CTX_new();
    EVP_MAC* b = EVP_MAC_fetch(nullptr, "BLAKE2SMAC", nullptr);
    if (b != nullptr) kmac = EVP_MAC_CTX_new(b);
    EVP_MAC_free(b);  // the context holds its own reference
    if (blake2s == nullptr || md == nullptr || kmac == nullptr) return;
    size_t size = kMacLen;
    OSSL_PARAM kp[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size), OSSL_PARAM_construct_end()};
    ok = EVP_MAC_CTX_set_params(kmac, kp) == 1;
  }
};

Ctx& Get() {
  static thread_local Ctx ctx;
  return ctx;
}

Napi::Value Fail(Napi::Env env, const char* what) {
  Napi::Error::New(env, what).ThrowAsJavaScriptException();
  return env.Undefined();
}

// blake2s(out32, a, b?, c?): BLAKE2s-256 of a ‖ b ‖ c into out32.
Napi::Value Blake2s(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* out;
  size_t outLen;
  if (info.Length() < 2 || !GetUint8Array(info[0], &out, &outLen) || outLen != kKeyLen) {
    return ThrowType(env, "blake2s(out: 32-byte Uint8Array, ...parts: Uint8Array[])");
  }
  Ctx& c = Get();
  if (EVP_DigestInit_ex(c.md, c.blake2s, nullptr) != 1) return Fail(env, "blake2s: OpenSSL digest init failed");
  for (size_t i = 1; i < info.Length(); i++) {
    uint8_t* p;
    size_t n;
    if (!GetUint8Array(info[i], &p, &n)) return ThrowType(env, "blake2s: every part must be a Uint8Array");
    if (n > 0 && EVP_DigestUpdate(c.md, p, n) != 1) return Fail(env, "blake2s: OpenSSL digest update failed");
  }
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(c.md, out, &len) != 1 || len != kKeyLen) return Fail(env, "blake2s: OpenSSL digest failed");
  return env.Undefined();
}

// The arguments of macBlake2s and hmacBlake2s: (key of 1–maxKey bytes, data, out of outLen bytes).
struct MacArgs {
  uint8_t *key, *data, *out;
  size_t keyLen, dataLen, outLen;

  bool Parse(const Napi::CallbackInfo& info, size_t maxKey, size_t wantOut) {
    return info.Length() >= 3 && GetUint8Array(info[0], &key, &keyLen) && GetUint8Array(info[1], &data, &dataLen) &&
           GetUint8Array(info[2], &out, &outLen) && outLen == wantOut && keyLen > 0 && keyLen <= maxKey;
  }
};

// macBlake2s(key, data, out16): keyed BLAKE2s with a 16-byte output.
Napi::Value MacBlake2s(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MacArgs a;
  if (!a.Parse(info, kKeyLen, kMacLen)) {
    return ThrowType(env, "macBlake2s(key: Uint8Array (1–32 bytes), data: Uint8Array, out: 16-byte Uint8Array)");
  }
  EVP_MAC_CTX* ctx = Get().kmac;
  size_t len = 0;
  if (EVP_MAC_init(ctx, a.key, a.keyLen, nullptr) != 1 || (a.dataLen > 0 && EVP_MAC_update(ctx, a.data, a.dataLen) != 1) ||
      EVP_MAC_final(ctx, a.out, &len, a.outLen) != 1 || len != kMacLen) {
    return Fail(env, "macBlake2s: OpenSSL failed");
  }
  return env.Undefined();
}

// HMAC-BLAKE2s-256 (RFC 2104) of a ‖ b under a key of at most one block, on the thread's digest
// context: the inner and the outer hash are each one digest over a padded key block and the data.
// EVP_MAC's HMAC would copy two digest contexts (an allocation each) per call, as much work as the
// hashing itself for the KDF's short inputs.
bool HmacInto(Ctx& c, const uint8_t* key, size_t keyLen, const uint8_t* a, size_t aLen, const uint8_t* b, size_t bLen, uint8_t* out) {
  uint8_t pad[kBlockLen];
  uint8_t inner[kKeyLen];
  unsigned int len = 0;
  if (!c.ok || keyLen > kBlockLen) return false;
  for (size_t i = 0; i < kBlockLen; i++) pad[i] = static_cast<uint8_t>((i < keyLen ? key[i] : 0) ^ 0x36);
  bool ok = EVP_DigestInit_ex(c.md, c.blake2s, nullptr) == 1 && EVP_DigestUpdate(c.md, pad, kBlockLen) == 1 &&
            (aLen == 0 || EVP_DigestUpdate(c.md, a, aLen) == 1) && (bLen == 0 || EVP_DigestUpdate(c.md, b, bLen) == 1) &&
            EVP_DigestFinal_ex(c.md, inner, &len) == 1 && len == kKeyLen;
  for (size_t i = 0; i < kBlockLen; i++) pad[i] ^= 0x36 ^ 0x5c;
  ok = ok && EVP_DigestInit_ex(c.md, c.blake2s, nullptr) == 1 && EVP_DigestUpdate(c.md, pad, kBlockLen) == 1 &&
       EVP_DigestUpdate(c.md, inner, kKeyLen) == 1 && EVP_DigestFinal_ex(c.md, out, &len) == 1 && len == kKeyLen;
  OPENSSL_cleanse(pad, sizeof pad);
  OPENSSL_cleanse(inner, sizeof inner);
  return ok;
}

// hmacBlake2s(key, data, out32): HMAC-BLAKE2s-256 with a 1–64-byte key.
Napi::Value HmacBlake2s(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MacArgs a;
  if (!a.Parse(info, kBlockLen, kKeyLen)) {
    return ThrowType(env, "hmacBlake2s(key: Uint8Array (1–64 bytes), data: Uint8Array, out: 32-byte Uint8Array)");
  }
  if (!HmacInto(Get(), a.key, a.keyLen, a.data, a.dataLen, nullptr, 0, a.out)) return Fail(env, "hmacBlake2s: OpenSSL failed");
  return env.Undefined();
}

// kdfBlake2s(key32, input, out): WireGuard's HKDF with n = out.length / 32 outputs (1–3):
// τ0 = HMAC(key, input), τ1 = HMAC(τ0, 0x01), τi = HMAC(τ0, τ(i−1) ‖ i); τ0 is erased.
Napi::Value KdfBlake2s(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t *key, *input, *out;
  size_t keyLen, inputLen, outLen;
  if (info.Length() < 3 || !GetUint8Array(info[0], &key, &keyLen) || keyLen != kKeyLen ||
      !GetUint8Array(info[1], &input, &inputLen) || !GetUint8Array(info[2], &out, &outLen) || outLen == 0 ||
      outLen > 3 * kKeyLen || outLen % kKeyLen != 0) {
    return ThrowType(env, "kdfBlake2s(key: 32-byte Uint8Array, input: Uint8Array, out: Uint8Array of 32, 64 or 96 bytes)");
  }
  if (!KdfInto(key, input, inputLen, outLen / kKeyLen, out)) return Fail(env, "kdfBlake2s: OpenSSL HMAC failed");
  return env.Undefined();
}

void FreeKey(Napi::Env, EVP_PKEY* key) { EVP_PKEY_free(key); }

// Per-thread X25519 objects, made once. Making them per call costs more than a tenth of the scalar
// multiplication in OpenSSL 3.0: a public-key object (EVP_PKEY_fromdata, or the legacy raw-key call)
// walks the whole algorithm name map, and EVP_PKEY_derive_set_peer's peer check makes a context.
// - `peer`: one public-key object whose key is replaced before each derivation;
// - `gen`: a key-generation context.
struct X25519Objects {
  EVP_PKEY* peer = nullptr;
  EVP_PKEY_CTX* gen = nullptr;

  X25519Objects() {
    EVP_PKEY_CTX* from = EVP_PKEY_CTX_new_from_name(nullptr, "X25519", nullptr);
    uint8_t base[kKeyLen] = {9};
    OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, base, kKeyLen), OSSL_PARAM_construct_end()};
    if (from == nullptr || EVP_PKEY_fromdata_init(from) != 1 || EVP_PKEY_fromdata(from, &peer, EVP_PKEY_PUBLIC_KEY, params) != 1) peer = nullptr;
    EVP_PKEY_CTX_free(from);
    gen = EVP_PKEY_CTX_new_from_name(nullptr, "X25519", nullptr);
    if (gen != nullptr && EVP_PKEY_keygen_init(gen) != 1) {
      EVP_PKEY_CTX_free(gen);
      gen = nullptr;
    }
  }
  ~X25519Objects() {
    EVP_PKEY_free(peer);
    EVP_PKEY_CTX_free(gen);
  }
  X25519Objects(const X25519Objects&) = delete;
  X25519Objects& operator=(const X25519Objects&) = delete;
};

X25519Objects& X25519Thread() {
  static thread_local X25519Objects x;
  return x;
}

EVP_PKEY* GenerateX25519() {
  EVP_PKEY* key = nullptr;
  EVP_PKEY_CTX* gen = X25519Thread().gen;
  if (gen == nullptr || EVP_PKEY_keygen(gen, &key) != 1) key = nullptr;
  return key;
}

// x25519Import(privateKey32): an External holding the key (OpenSSL derives the public key now).
Napi::Value X25519Import(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* priv;
  size_t len;
  if (info.Length() < 1 || !GetUint8Array(info[0], &priv, &len) || len != kKeyLen) {
    return ThrowType(env, "x25519Import(privateKey: 32-byte Uint8Array)");
  }
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, priv, len);
  if (key == nullptr) return Fail(env, "x25519Import: OpenSSL refused the private key");
  return Napi::External<EVP_PKEY>::New(env, key, FreeKey);
}

// x25519Public(key, out32): the public key of an imported private key.
Napi::Value X25519Public(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EVP_PKEY* key = info.Length() >= 2 ? X25519KeyOf(info[0]) : nullptr;
  uint8_t* out;
  size_t outLen;
  if (key == nullptr || !GetUint8Array(info[1], &out, &outLen) || outLen != kKeyLen) {
    return ThrowType(env, "x25519Public(key: External from x25519Import, out: 32-byte Uint8Array)");
  }
  size_t len = kKeyLen;
  if (EVP_PKEY_get_raw_public_key(key, out, &len) != 1 || len != kKeyLen) return Fail(env, "x25519Public: OpenSSL failed");
  return env.Undefined();
}

// x25519(key, peerPublic32, out32): true and the shared secret in out32; false when the result is
// all zero (a low-order peer point) or OpenSSL refuses the peer key.
Napi::Value X25519(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EVP_PKEY* key = info.Length() >= 3 ? X25519KeyOf(info[0]) : nullptr;
  uint8_t *pub, *out;
  size_t pubLen, outLen;
  if (key == nullptr || !GetUint8Array(info[1], &pub, &pubLen) || pubLen != kKeyLen || !GetUint8Array(info[2], &out, &outLen) ||
      outLen != kKeyLen) {
    return ThrowType(env, "x25519(key: External from x25519Import, publicKey: 32-byte Uint8Array, out: 32-byte Uint8Array)");
  }
  return Napi::Boolean::New(env, DeriveX25519(key, pub, out));
}

}  // namespace

// Pre-generated X25519 key pairs, refilled by a background thread (see the file comment).
class KeyPool {
 public:
  ~KeyPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    for (EVP_PKEY* k : keys_) EVP_PKEY_free(k);
  }

  // A fresh key pair: from the pool, or generated here when the pool is empty.
  EVP_PKEY* Take() {
    EVP_PKEY* key = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!started_) {
        started_ = true;
        thread_ = std::thread([this] { Run(); });
      }
      if (!keys_.empty()) {
        key = keys_.front();
        keys_.pop_front();
      }
      if (keys_.size() < kLow) wanted_ = true;
    }
    cv_.notify_one();
    return key != nullptr ? key : GenerateX25519();
  }

 private:
  static constexpr size_t kLow = 96;
  static constexpr size_t kHigh = 256;

  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait(lock, [this] { return stop_ || wanted_; });
      while (!stop_ && keys_.size() < kHigh) {
        lock.unlock();
        EVP_PKEY* k = GenerateX25519();
        lock.lock();
        if (k == nullptr) break;
        keys_.push_back(k);
      }
      wanted_ = false;
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<EVP_PKEY*> keys_;
  std::thread thread_;
  bool started_ = false;
  bool wanted_ = true;
  bool stop_ = false;
};

EVP_PKEY* X25519KeyOf(const Napi::Value& v) {
  if (!v.IsExternal()) return nullptr;
  return v.As<Napi::External<EVP_PKEY>>().Data();
}

bool HashInto(const uint8_t* a, size_t aLen, const uint8_t* b, size_t bLen, uint8_t* out) {
  Ctx& c = Get();
  unsigned int len = 0;
  return c.ok && EVP_DigestInit_ex(c.md, c.blake2s, nullptr) == 1 && (aLen == 0 || EVP_DigestUpdate(c.md, a, aLen) == 1) &&
         (bLen == 0 || EVP_DigestUpdate(c.md, b, bLen) == 1) && EVP_DigestFinal_ex(c.md, out, &len) == 1 && len == kKeyLen;
}

bool KdfInto(const uint8_t* key, const uint8_t* input, size_t inputLen, size_t n, uint8_t* out) {
  Ctx& c = Get();
  uint8_t prk[kKeyLen];
  bool ok = c.ok && n >= 1 && n <= 3 && HmacInto(c, key, kKeyLen, input, inputLen, nullptr, 0, prk);
  for (size_t i = 0; ok && i < n; i++) {
    const uint8_t counter = static_cast<uint8_t>(i + 1);
    ok = i == 0 ? HmacInto(c, prk, kKeyLen, &counter, 1, nullptr, 0, out)
                : HmacInto(c, prk, kKeyLen, out + (i - 1) * kKeyLen, kKeyLen, &counter, 1, out + i * kKeyLen);
  }
  OPENSSL_cleanse(prk, sizeof prk);
  if (!ok) OPENSSL_cleanse(out, n * kKeyLen);
  return ok;
}

// DH(key, pubs[i]) into outs[i] for i < n; false when a result is all zero (OpenSSL then fails the
// derivation, and every output is zeroed) or OpenSSL fails. Safe on any thread: it only reads `key`.
// The peer's key needs no check beyond that: every 32-byte string is an X25519 public key.
bool DeriveX25519(EVP_PKEY* key, size_t n, const uint8_t* const* pubs, uint8_t* const* outs) {
  EVP_PKEY* peer = X25519Thread().peer;
  EVP_PKEY_CTX* ctx = peer != nullptr ? EVP_PKEY_CTX_new(key, nullptr) : nullptr;
  bool ok = ctx != nullptr && EVP_PKEY_derive_init(ctx) == 1;
  for (size_t i = 0; ok && i < n; i++) {
    size_t len = kKeyLen;
    ok = EVP_PKEY_set1_encoded_public_key(peer, pubs[i], kKeyLen) == 1 && EVP_PKEY_derive_set_peer_ex(ctx, peer, 0) == 1 &&
         EVP_PKEY_derive(ctx, outs[i], &len) == 1 && len == kKeyLen;
  }
  EVP_PKEY_CTX_free(ctx);
  if (!ok) {
    for (size_t i = 0; i < n; i++) std::memset(outs[i], 0, kKeyLen);
  }
  return ok;
}

bool DeriveX25519(EVP_PKEY* key, const uint8_t* pub, uint8_t* out) { return DeriveX25519(key, 1, &pub, &out); }

namespace {

// x25519Generate(outPrivate32): a new key pair as an External; its private key is written to outPrivate32.
Napi::Value X25519Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* out;
  size_t outLen;
  if (info.Length() < 1 || !GetUint8Array(info[0], &out, &outLen) || outLen != kKeyLen) {
    return ThrowType(env, "x25519Generate(outPrivate: 32-byte Uint8Array)");
  }
  EVP_PKEY* key = static_cast<KeyPool*>(info.Data())->Take();
  size_t len = kKeyLen;
  if (key == nullptr || EVP_PKEY_get_raw_private_key(key, out, &len) != 1 || len != kKeyLen) {
    EVP_PKEY_free(key);
    return Fail(env, "x25519Generate: OpenSSL key generation failed");
  }
  return Napi::External<EVP_PKEY>::New(env, key, FreeKey);
}

}  // namespace

EVP_PKEY* TakeKeyPair(KeyPool* pool) { return pool->Take(); }

KeyPool* InitHandshakeCrypto(Napi::Env env, Napi::Object exports) {
  if (!Get().ok) return nullptr;  // the JavaScript side then keeps node:crypto for these
  exports.Set("blake2s", Napi::Function::New<Blake2s>(env, "blake2s"));
  exports.Set("hmacBlake2s", Napi::Function::New<HmacBlake2s>(env, "hmacBlake2s"));
  exports.Set("kdfBlake2s", Napi::Function::New<KdfBlake2s>(env, "kdfBlake2s"));
  exports.Set("macBlake2s", Napi::Function::New<MacBlake2s>(env, "macBlake2s"));
  auto* pool = new KeyPool();
  env.AddCleanupHook([pool] { delete pool; });
  exports.Set("x25519Generate", Napi::Function::New(env, X25519Generate, "x25519Generate", pool));
  exports.Set("x25519Import", Napi::Function::New<X25519Import>(env, "x25519Import"));
  exports.Set("x25519Public", Napi::Function::New<X25519Public>(env, "x25519Public"));
  exports.Set("x25519", Napi::Function::New<X25519>(env, "x25519"));
  return pool;
}

}  // namespace tsg
