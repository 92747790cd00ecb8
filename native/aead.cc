// ChaCha20-Poly1305 with WireGuard's nonce (4 zero bytes || little-endian 64-bit counter), through the
// OpenSSL that Node itself links (the same primitive node:crypto uses). Each thread keeps one sealing
// and one opening EVP context, set to the cipher once; a packet only re-keys it. aeadSeal/aeadOpen do
// one packet per N-API call; aeadBatch does a whole batch in one call, split across the crypto pool
// (crypto_pool.cc) when it is large. Keys and plaintexts are never copied or kept.
#include "aead.h"
#include "common.h"
#include "crypto_pool.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace tsg {
namespace {

constexpr size_t kKeyLen = 32;
constexpr size_t kTagLen = 16;
// Batches below this many packets (or one pool thread) run inline: waking a thread costs more.
constexpr size_t kMinParallel = 8;
// A pool thread takes at least this many packets at a time.
constexpr size_t kMinChunk = 4;

// The calling thread's two contexts, set to ChaCha20-Poly1305 once; freed with the thread. Each
// remembers the key it holds: consecutive packets of a session only set the nonce (OpenSSL then
// skips the key schedule and its copies).
struct Contexts {
  EVP_CIPHER_CTX* seal = EVP_CIPHER_CTX_new();
  EVP_CIPHER_CTX* open = EVP_CIPHER_CTX_new();
  uint8_t sealKey[kKeyLen] = {};
  uint8_t openKey[kKeyLen] = {};
  bool sealKeyed = false;
  bool openKeyed = false;
  bool ok = seal != nullptr && open != nullptr &&
            EVP_EncryptInit_ex(seal, EVP_chacha20_poly1305(), nullptr, nullptr, nullptr) == 1 &&
            EVP_DecryptInit_ex(open, EVP_chacha20_poly1305(), nullptr, nullptr, nullptr) == 1;
  ~Contexts() {
    EVP_CIPHER_CTX_free(seal);
    EVP_CIPHER_CTX_free(open);
    OPENSSL_cleanse(sealKey, sizeof sealKey);
    OPENSSL_cleanse(openKey, sizeof openKey);
  }
};

Contexts& Ctx() {
  static thread_local Contexts holder;
  return holder;
}

// The key to pass to EVP_*Init_ex: null when `ctx` already holds `key` (only the nonce changes), else
// `key`, remembered in `held`. A failed init forgets it (`keyed` is cleared by the caller on failure).
const uint8_t* KeyFor(const uint8_t* key, uint8_t held[kKeyLen], bool* keyed) {
  if (*keyed && CRYPTO_memcmp(held, key, kKeyLen) == 0) return nullptr;
  std::memcpy(held, key, kKeyLen);
  *keyed = true;
  return key;
}

void Nonce(uint8_t nonce[12], uint32_t lo, uint32_t hi) {
  std::memset(nonce, 0, 4);
  for (int i = 0; i < 4; i++) nonce[4 + i] = static_cast<uint8_t>(lo >> (8 * i));
  for (int i = 0; i < 4; i++) nonce[8 + i] = static_cast<uint8_t>(hi >> (8 * i));
}

// Optional additional data at info[i]: absent/undefined means none. False when it is not a Uint8Array.
bool OptionalAd(const Napi::CallbackInfo& info, size_t i, uint8_t** ad, size_t* adLen) {
  *ad = nullptr;
  *adLen = 0;
  if (info.Length() <= i || info[i].IsUndefined()) return true;
  return GetUint8Array(info[i], ad, adLen);
}

// aeadSeal(key, counterLo, counterHi, plaintext, out, outOffset, ad?): writes ciphertext || tag into out.
Napi::Value Seal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t *key, *pt, *out, *ad;
  size_t keyLen, ptLen, outLen, adLen;
  if (info.Length() < 6 || !GetUint8Array(info[0], &key, &keyLen) || keyLen != kKeyLen || !info[1].IsNumber() ||
      !info[2].IsNumber() || !GetUint8Array(info[3], &pt, &ptLen) || !GetUint8Array(info[4], &out, &outLen) || !info[5].IsNumber() ||
      !OptionalAd(info, 6, &ad, &adLen)) {
    Napi::TypeError::New(env, "aeadSeal(key: 32-byte Uint8Array, lo, hi, plaintext, out, outOffset, ad?)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const int64_t off = info[5].As<Napi::Number>().Int64Value();
  if (off < 0 || static_cast<uint64_t>(off) + ptLen + kTagLen > outLen) {
    Napi::RangeError::New(env, "aeadSeal: output buffer too small").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!AeadSeal(key, info[1].As<Napi::Number>().Uint32Value(), info[2].As<Napi::Number>().Uint32Value(), pt, ptLen, out + off, ad, adLen)) {
    Napi::Error::New(env, "aeadSeal: OpenSSL ChaCha20-Poly1305 failed").ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

// aeadOpen(key, counterLo, counterHi, ciphertextWithTag, out, ad?): plaintext length, or -1 if it does not authenticate.
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t *key, *ct, *out, *ad;
  size_t keyLen, ctLen, outLen, adLen;
  if (info.Length() < 5 || !GetUint8Array(info[0], &key, &keyLen) || keyLen != kKeyLen || !info[1].IsNumber() ||
      !info[2].IsNumber() || !GetUint8Array(info[3], &ct, &ctLen) || !GetUint8Array(info[4], &out, &outLen) || !OptionalAd(info, 5, &ad, &adLen)) {
    Napi::TypeError::New(env, "aeadOpen(key: 32-byte Uint8Array, lo, hi, ciphertext, out, ad?)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (ctLen < kTagLen || outLen < ctLen - kTagLen) return Napi::Number::New(env, -1);
  const bool ok = AeadOpen(key, info[1].As<Napi::Number>().Uint32Value(), info[2].As<Napi::Number>().Uint32Value(), ct, ctLen, out, ad, adLen);
  return Napi::Number::New(env, ok ? static_cast<double>(ctLen - kTagLen) : -1);
}

// One packet of a batch, resolved to raw pointers before any thread starts.
struct Job {
  const uint8_t* key;
  uint32_t lo, hi;
  uint8_t* data;  // sealed or opened in place
  uint32_t len;   // plaintext length (seal) or ciphertext || tag length (open)
};

struct Batch {
  const Job* jobs;
  uint8_t* ok;
  bool seal;
};

void RunJobs(size_t begin, size_t end, void* arg) {
  const Batch* b = static_cast<const Batch*>(arg);
  for (size_t i = begin; i < end; i++) {
    const Job& j = b->jobs[i];
    b->ok[i] = (b->seal ? AeadSeal(j.key, j.lo, j.hi, j.data, j.len, j.data, nullptr, 0)
                        : AeadOpen(j.key, j.lo, j.hi, j.data, j.len, j.data, nullptr, 0))
                   ? 1
                   : 0;
  }
}

// aeadBatch(seal, keys, stores, table, count, ok): seals (seal = true) or opens in place `count`
// packets. Row i of table (Uint32Array, 7 per row) is [key index, counter lo, counter hi, offset in the
// job's own buffer (unused here), length, store index, offset in the store]: packet i is
// stores[store][offset, offset + length) with keys[key index]; sealing writes the tag after it,
// opening reads ciphertext || tag. A batch's packets share a few stores (whole backing buffers), so
// nothing is looked up per packet. ok[i] becomes 1 (sealed / authentic) or 0. Returns the number of
// 0s. Every row is checked before any work starts (a RangeError means nothing was touched).
Napi::Value AeadBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  static const char* kUsage = "aeadBatch(seal: boolean, keys: Uint8Array[], stores: Uint8Array[], table: Uint32Array, count, ok: Uint8Array)";
  constexpr size_t kRow = 7;
  if (info.Length() < 6 || !info[0].IsBoolean() || !info[1].IsArray() || !info[2].IsArray() || !info[3].IsTypedArray() ||
      info[3].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array || !info[4].IsNumber()) {
    return ThrowType(env, kUsage);
  }
  const bool seal = info[0].As<Napi::Boolean>().Value();
  Napi::Array keys = info[1].As<Napi::Array>();
  Napi::Array stores = info[2].As<Napi::Array>();
  Napi::Uint32Array table = info[3].As<Napi::Uint32Array>();
  const int64_t count = info[4].As<Napi::Number>().Int64Value();
  uint8_t* ok;
  size_t okLen;
  if (!GetUint8Array(info[5], &ok, &okLen)) return ThrowType(env, kUsage);
  if (count < 0 || static_cast<uint64_t>(count) * kRow > table.ElementLength() || static_cast<uint64_t>(count) > okLen) {
    return ThrowRange(env, "aeadBatch: count exceeds the table or ok");
  }
  const size_t n = static_cast<size_t>(count);
  const uint32_t keyCount = keys.Length();
  std::vector<const uint8_t*> keyPtrs(keyCount);
  for (uint32_t k = 0; k < keyCount; k++) {
    uint8_t* p;
    size_t len;
    if (!GetUint8Array(keys.Get(k), &p, &len) || len != kKeyLen) return ThrowType(env, "aeadBatch: every key must be a 32-byte Uint8Array");
    keyPtrs[k] = p;
  }
  const uint32_t storeCount = stores.Length();
  std::vector<Span> storeSpans(storeCount);
  for (uint32_t k = 0; k < storeCount; k++) {
    uint8_t* p;
    size_t len;
    if (!GetUint8Array(stores.Get(k), &p, &len) || len > UINT32_MAX) return ThrowType(env, "aeadBatch: stores must hold Uint8Arrays (< 4 GiB)");
    storeSpans[k] = Span{p, static_cast<uint32_t>(len)};
  }
  static thread_local std::vector<Job> jobs;
  jobs.resize(n);
  const uint32_t* row = table.Data();
  for (size_t i = 0; i < n; i++, row += kRow) {
    const uint32_t store = row[5];
    const uint64_t end = static_cast<uint64_t>(row[6]) + row[4] + (seal ? kTagLen : 0);
    if (row[0] >= keyCount || store >= storeCount || end > storeSpans[store].len || (!seal && row[4] < kTagLen)) {
      return ThrowRange(env, "aeadBatch: row " + std::to_string(i) + " is out of range (key or store index, or offset + length beyond its store)");
    }
    jobs[i] = Job{keyPtrs[row[0]], row[1], row[2], const_cast<uint8_t*>(storeSpans[store].data) + row[6], row[4]};
  }
  Batch b{jobs.data(), ok, seal};
  const size_t threads = n < kMinParallel ? 1 : CryptoThreads();
  if (threads <= 1) {
    RunJobs(0, n, &b);
  } else {
    size_t chunk = (n + threads * 2 - 1) / (threads * 2);
    if (chunk < kMinChunk) chunk = kMinChunk;
    ParallelFor(n, chunk, &RunJobs, &b);
  }
  size_t failed = 0;
  for (size_t i = 0; i < n; i++) failed += ok[i] == 0;
  return Napi::Number::New(env, static_cast<double>(failed));
}

// cryptoThreads(): the threads a large aeadBatch uses (the caller included).
Napi::Value Threads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(CryptoThreads())); }

}  // namespace

// Seals pt[0, len) into dst (ciphertext, then the tag at dst + len). dst may equal pt (in place).
bool AeadSeal(const uint8_t* key, uint32_t lo, uint32_t hi, const uint8_t* pt, size_t len, uint8_t* dst,
             const uint8_t* ad, size_t adLen) {
  Contexts& c = Ctx();
  uint8_t nonce[12];
  Nonce(nonce, lo, hi);
  int n = 0, fin = 0, adOut = 0;
  if (!c.ok) return false;
  if (EVP_EncryptInit_ex(c.seal, nullptr, nullptr, KeyFor(key, c.sealKey, &c.sealKeyed), nonce) != 1) {
    c.sealKeyed = false;
    return false;
  }
  return (adLen == 0 || EVP_EncryptUpdate(c.seal, nullptr, &adOut, ad, static_cast<int>(adLen)) == 1) &&
         (len == 0 || EVP_EncryptUpdate(c.seal, dst, &n, pt, static_cast<int>(len)) == 1) &&
         EVP_EncryptFinal_ex(c.seal, dst + n, &fin) == 1 &&
         EVP_CIPHER_CTX_ctrl(c.seal, EVP_CTRL_AEAD_GET_TAG, kTagLen, dst + len) == 1;
}

// Opens ct[0, len) (ciphertext || tag, len >= 16) into dst (may equal ct). On failure dst is zeroed:
// unauthenticated plaintext never leaves.
bool AeadOpen(const uint8_t* key, uint32_t lo, uint32_t hi, const uint8_t* ct, size_t len, uint8_t* dst,
             const uint8_t* ad, size_t adLen) {
  Contexts& c = Ctx();
  const size_t ptLen = len - kTagLen;
  uint8_t nonce[12];
  Nonce(nonce, lo, hi);
  uint8_t tag[kTagLen];
  std::memcpy(tag, ct + ptLen, kTagLen);
  int n = 0, fin = 0, adOut = 0;
  const bool inited = c.ok && EVP_DecryptInit_ex(c.open, nullptr, nullptr, KeyFor(key, c.openKey, &c.openKeyed), nonce) == 1;
  if (!inited) c.openKeyed = false;
  const bool ok = inited &&
                  (adLen == 0 || EVP_DecryptUpdate(c.open, nullptr, &adOut, ad, static_cast<int>(adLen)) == 1) &&
                  (ptLen == 0 || EVP_DecryptUpdate(c.open, dst, &n, ct, static_cast<int>(ptLen)) == 1) &&
                  EVP_CIPHER_CTX_ctrl(c.open, EVP_CTRL_AEAD_SET_TAG, kTagLen, tag) == 1 &&
                  EVP_DecryptFinal_ex(c.open, dst + n, &fin) == 1;
  if (!ok) std::memset(dst, 0, ptLen);
  return ok;
}


void InitAead(Napi::Env env, Napi::Object exports) {
  if (!Ctx().ok) return;  // no context: the JavaScript side falls back to node:crypto
  exports.Set("aeadSeal", Napi::Function::New<Seal>(env, "aeadSeal"));
  exports.Set("aeadOpen", Napi::Function::New<Open>(env, "aeadOpen"));
  exports.Set("aeadBatch", Napi::Function::New<AeadBatch>(env, "aeadBatch"));
  exports.Set("cryptoThreads", Napi::Function::New<Threads>(env, "cryptoThreads"));
}

}  // namespace tsg
