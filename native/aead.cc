// ChaCha20-Poly1305 with WireGuard's nonce (4 zero bytes || little-endian 64-bit counter), through the
// OpenSSL that Node itself links (the same primitive node:crypto uses). One EVP context is reused for
// every call: node:crypto builds a Cipher object per packet, which costs several microseconds; this
// path costs one N-API call. Keys and plaintexts are never copied or kept.
#include "aead.h"
#include "common.h"

#include <openssl/evp.h>

#include <cstdint>
#include <cstring>

namespace tsg {
namespace {

constexpr size_t kKeyLen = 32;
constexpr size_t kTagLen = 16;

// One context per thread (worker threads may load the addon too), freed with the thread.
struct CtxHolder {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  ~CtxHolder() { EVP_CIPHER_CTX_free(ctx); }
};

EVP_CIPHER_CTX* Ctx() {
  static thread_local CtxHolder holder;
  return holder.ctx;
}

// Optional additional data at info[i]: absent/undefined means none. False when it is not a Uint8Array.
bool OptionalAd(const Napi::CallbackInfo& info, size_t i, uint8_t** ad, size_t* adLen) {
  *ad = nullptr;
  *adLen = 0;
  if (info.Length() <= i || info[i].IsUndefined()) return true;
  return GetUint8Array(info[i], ad, adLen);
}

void Nonce(uint8_t nonce[12], uint32_t lo, uint32_t hi) {
  std::memset(nonce, 0, 4);
  for (int i = 0; i < 4; i++) nonce[4 + i] = static_cast<uint8_t>(lo >> (8 * i));
  for (int i = 0; i < 4; i++) nonce[8 + i] = static_cast<uint8_t>(hi >> (8 * i));
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
  uint8_t nonce[12];
  Nonce(nonce, info[1].As<Napi::Number>().Uint32Value(), info[2].As<Napi::Number>().Uint32Value());
  EVP_CIPHER_CTX* ctx = Ctx();
  int n = 0, fin = 0, adOut = 0;
  uint8_t* dst = out + off;
  if (EVP_EncryptInit_ex(ctx, EVP_chacha20_poly1305(), nullptr, key, nonce) != 1 ||
      (adLen > 0 && EVP_EncryptUpdate(ctx, nullptr, &adOut, ad, static_cast<int>(adLen)) != 1) ||
      (ptLen > 0 && EVP_EncryptUpdate(ctx, dst, &n, pt, static_cast<int>(ptLen)) != 1) ||
      EVP_EncryptFinal_ex(ctx, dst + n, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, kTagLen, dst + ptLen) != 1) {
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
  const size_t ptLen = ctLen - kTagLen;
  uint8_t nonce[12];
  Nonce(nonce, info[1].As<Napi::Number>().Uint32Value(), info[2].As<Napi::Number>().Uint32Value());
  EVP_CIPHER_CTX* ctx = Ctx();
  int n = 0, fin = 0, adOut = 0;
  uint8_t tag[kTagLen];
  std::memcpy(tag, ct + ptLen, kTagLen);
  bool ok = EVP_DecryptInit_ex(ctx, EVP_chacha20_poly1305(), nullptr, key, nonce) == 1 &&
            (adLen == 0 || EVP_DecryptUpdate(ctx, nullptr, &adOut, ad, static_cast<int>(adLen)) == 1) &&
            (ptLen == 0 || EVP_DecryptUpdate(ctx, out, &n, ct, static_cast<int>(ptLen)) == 1) &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kTagLen, tag) == 1 && EVP_DecryptFinal_ex(ctx, out + n, &fin) == 1;
  if (!ok) {
    std::memset(out, 0, ptLen);  // never hand out unauthenticated plaintext
    return Napi::Number::New(env, -1);
  }
  return Napi::Number::New(env, static_cast<double>(ptLen));
}

}  // namespace

void InitAead(Napi::Env env, Napi::Object exports) {
  if (Ctx() == nullptr) return;  // no context: the JavaScript side falls back to node:crypto
  exports.Set("aeadSeal", Napi::Function::New<Seal>(env, "aeadSeal"));
  exports.Set("aeadOpen", Napi::Function::New<Open>(env, "aeadOpen"));
}

}  // namespace tsg
