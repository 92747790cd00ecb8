// ChaCha20-Poly1305 with WireGuard's nonce (4 zero bytes || little-endian 64-bit counter), through the
// OpenSSL that Node itself links (the same primitive node:crypto uses). One EVP context is reused for
// every call: node:crypto builds a Cipher object per packet, which costs several microseconds; this
// path costs one N-API call. Keys and plaintexts are never copied or kept.
#include "aead.h"

#include <openssl/evp.h>

#include <cstdint>
#include <cstring>

namespace tsg {
namespace {

constexpr size_t kKeyLen = 32;
constexpr size_t kTagLen = 16;

EVP_CIPHER_CTX* Ctx() {
  static EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  return ctx;
}

void Nonce(uint8_t nonce[12], uint32_t lo, uint32_t hi) {
  std::memset(nonce, 0, 4);
  for (int i = 0; i < 4; i++) nonce[4 + i] = static_cast<uint8_t>(lo >> (8 * i));
  for (int i = 0; i < 4; i++) nonce[8 + i] = static_cast<uint8_t>(hi >> (8 * i));
}

bool Bytes(const Napi::Value& v, uint8_t** data, size_t* len) {
  if (!v.IsTypedArray()) return false;
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_uint8_array) return false;
  Napi::Uint8Array u = v.As<Napi::Uint8Array>();
  *data = u.Data();
  *len = u.ByteLength();
  return true;
}

// aeadSeal(key, counterLo, counterHi, plaintext, out, outOffset): writes ciphertext || tag into out.
Napi::Value Seal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t *key, *pt, *out;
  size_t keyLen, ptLen, outLen;
  if (info.Length() < 6 || !Bytes(info[0], &key, &keyLen) || keyLen != kKeyLen || !info[1].IsNumber() ||
      !info[2].IsNumber() || !Bytes(info[3], &pt, &ptLen) || !Bytes(info[4], &out, &outLen) || !info[5].IsNumber()) {
    Napi::TypeError::New(env, "aeadSeal(key: 32-byte Uint8Array, lo, hi, plaintext, out, outOffset)").ThrowAsJavaScriptException();
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
  int n = 0, fin = 0;
  uint8_t* dst = out + off;
  if (EVP_EncryptInit_ex(ctx, EVP_chacha20_poly1305(), nullptr, key, nonce) != 1 ||
      (ptLen > 0 && EVP_EncryptUpdate(ctx, dst, &n, pt, static_cast<int>(ptLen)) != 1) ||
      EVP_EncryptFinal_ex(ctx, dst + n, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, kTagLen, dst + ptLen) != 1) {
    Napi::Error::New(env, "aeadSeal: OpenSSL ChaCha20-Poly1305 failed").ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

// aeadOpen(key, counterLo, counterHi, ciphertextWithTag, out): plaintext length, or -1 if it does not authenticate.
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t *key, *ct, *out;
  size_t keyLen, ctLen, outLen;
  if (info.Length() < 5 || !Bytes(info[0], &key, &keyLen) || keyLen != kKeyLen || !info[1].IsNumber() ||
      !info[2].IsNumber() || !Bytes(info[3], &ct, &ctLen) || !Bytes(info[4], &out, &outLen)) {
    Napi::TypeError::New(env, "aeadOpen(key: 32-byte Uint8Array, lo, hi, ciphertext, out)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (ctLen < kTagLen || outLen < ctLen - kTagLen) return Napi::Number::New(env, -1);
  const size_t ptLen = ctLen - kTagLen;
  uint8_t nonce[12];
  Nonce(nonce, info[1].As<Napi::Number>().Uint32Value(), info[2].As<Napi::Number>().Uint32Value());
  EVP_CIPHER_CTX* ctx = Ctx();
  int n = 0, fin = 0;
  uint8_t tag[kTagLen];
  std::memcpy(tag, ct + ptLen, kTagLen);
  bool ok = EVP_DecryptInit_ex(ctx, EVP_chacha20_poly1305(), nullptr, key, nonce) == 1 &&
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
