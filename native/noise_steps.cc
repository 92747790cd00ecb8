// The responder's two Noise_IKpsk2 message steps, whole, for a batch of handshakes in one call: the
// X25519, KDF chain, hashes and AEAD of a step run back to back in C++ instead of eight to fifteen
// JavaScript calls (each with its own result arrays), on the crypto pool (noiseInitiations,
// noiseResponses) or on a libuv worker thread (…Async, which call back on the event loop). What they
// compute is defined by src/noise/steps.ts in terms of the provider's primitives; the native
// provider compares them with it before using them. Every protocol decision (which peer, replay,
// flood, indices, sessions) stays in TypeScript, between the two steps.
//
// Initiation step, per job (input row: initiator ephemeral e ‖ encrypted static, 80 bytes; output
// row: ck ‖ h ‖ initiator static, 96 bytes):
//   h = HASH(h0 ‖ e); ck = KDF1(ck0, e); (ck, k) = KDF2(ck, DH(s, e));
//   static = AEAD-open(k, 0, encrypted static, h); h = HASH(h ‖ encrypted static)
// Response step, per job (input row: ck ‖ h ‖ initiator e ‖ initiator static ‖ psk, 160 bytes;
// output row: ck ‖ h ‖ τ1 ‖ τ2 of the split ‖ our ephemeral public key ‖ the empty payload's tag,
// 176 bytes), with our ephemeral key pair E: the one given, or else a fresh one from the key pool
// (hscrypto.cc), whose private key then never leaves the addon and is erased with the batch:
//   h = HASH(h ‖ E.pub); ck = KDF1(ck, E.pub); ck = KDF1(ck, DH(E, e)); ck = KDF1(ck, DH(E, static));
//   (ck, τ, k) = KDF3(ck, psk); h = HASH(h ‖ τ); tag = AEAD-seal(k, 0, "", h); h = HASH(h ‖ tag);
//   (τ1, τ2) = KDF2(ck, "")
// A job fails (ok = 0, its output row zeroed) when a DH result is zero, the static key does not
// authenticate or OpenSSL fails. Intermediate secrets are erased.
#include "noise_steps.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "aead.h"
#include "common.h"
#include "crypto_pool.h"
#include "hscrypto.h"

namespace tsg {
namespace {

constexpr size_t kKey = 32;
constexpr size_t kTag = 16;
constexpr size_t kInitIn = 80;
constexpr size_t kInitOut = 96;
constexpr size_t kRespIn = 160;
constexpr size_t kRespOut = 176;

struct Initiations {
  EVP_PKEY* key = nullptr;  // our static key
  uint8_t ck0[kKey];
  uint8_t h0[kKey];
  const uint8_t* in = nullptr;
  uint8_t* out = nullptr;
  uint8_t* ok = nullptr;
  size_t n = 0;
  ~Initiations() { OPENSSL_cleanse(ck0, kKey); }
};

struct Responses {
  std::vector<EVP_PKEY*> keys;  // our ephemeral key per job
  std::vector<EVP_PKEY*> owned;  // the ones drawn here from the key pool: freed (erased) with the batch
  const uint8_t* in = nullptr;
  uint8_t* out = nullptr;
  uint8_t* ok = nullptr;
  size_t n = 0;
  Responses() = default;
  Responses(const Responses&) = delete;
  Responses& operator=(const Responses&) = delete;
  Responses(Responses&& o) noexcept : keys(std::move(o.keys)), owned(std::move(o.owned)), in(o.in), out(o.out), ok(o.ok), n(o.n) { o.owned.clear(); }
  ~Responses() {
    for (EVP_PKEY* k : owned) EVP_PKEY_free(k);
  }
};

bool Initiation(const Initiations& b, size_t i) {
  const uint8_t* e = b.in + i * kInitIn;
  const uint8_t* sealed = e + kKey;
  uint8_t* ck = b.out + i * kInitOut;
  uint8_t* h = ck + kKey;
  uint8_t* initiatorStatic = h + kKey;
  uint8_t dh[kKey];
  uint8_t t[2 * kKey];
  bool ok = HashInto(b.h0, kKey, e, kKey, h) && KdfInto(b.ck0, e, kKey, 1, ck) && DeriveX25519(b.key, e, dh) &&
            KdfInto(ck, dh, kKey, 2, t) && AeadOpen(t + kKey, 0, 0, sealed, kKey + kTag, initiatorStatic, h, kKey) &&
            HashInto(h, kKey, sealed, kKey + kTag, h);
  if (ok) std::memcpy(ck, t, kKey);
  OPENSSL_cleanse(dh, sizeof dh);
  OPENSSL_cleanse(t, sizeof t);
  if (!ok) OPENSSL_cleanse(ck, kInitOut);
  return ok;
}

bool Response(const Responses& b, size_t i) {
  const uint8_t* row = b.in + i * kRespIn;
  const uint8_t* initiatorE = row + 2 * kKey;
  const uint8_t* initiatorStatic = row + 3 * kKey;
  const uint8_t* psk = row + 4 * kKey;
  uint8_t* ck = b.out + i * kRespOut;
  uint8_t* h = ck + kKey;
  uint8_t* split = h + kKey;
  uint8_t* pub = split + 2 * kKey;
  uint8_t* tag = pub + kKey;
  EVP_PKEY* key = b.keys[i];
  if (key == nullptr) return false;  // the key pool failed
  uint8_t dh[2 * kKey];  // ee, se: both with the response's ephemeral key, in one derivation context
  const uint8_t* peers[2] = {initiatorE, initiatorStatic};
  uint8_t* dhs[2] = {dh, dh + kKey};
  uint8_t t[3 * kKey];
  size_t pubLen = kKey;
  bool ok = EVP_PKEY_get_raw_public_key(key, pub, &pubLen) == 1 && pubLen == kKey && HashInto(row + kKey, kKey, pub, kKey, h) &&
            DeriveX25519(key, 2, peers, dhs) && KdfInto(row, pub, kKey, 1, t) && KdfInto(t, dh, kKey, 1, t + kKey) &&
            KdfInto(t + kKey, dh + kKey, kKey, 1, ck) && KdfInto(ck, psk, kKey, 3, t) &&
            HashInto(h, kKey, t + kKey, kKey, h) && AeadSeal(t + 2 * kKey, 0, 0, nullptr, 0, tag, h, kKey) && HashInto(h, kKey, tag, kTag, h) &&
            KdfInto(t, nullptr, 0, 2, split);
  if (ok) std::memcpy(ck, t, kKey);
  OPENSSL_cleanse(dh, sizeof dh);
  OPENSSL_cleanse(t, sizeof t);
  if (!ok) OPENSSL_cleanse(ck, kRespOut);
  return ok;
}

void RunInitiations(size_t begin, size_t end, void* arg) {
  auto* b = static_cast<Initiations*>(arg);
  for (size_t i = begin; i < end; i++) b->ok[i] = Initiation(*b, i) ? 1 : 0;
}

void RunResponses(size_t begin, size_t end, void* arg) {
  auto* b = static_cast<Responses*>(arg);
  for (size_t i = begin; i < end; i++) b->ok[i] = Response(*b, i) ? 1 : 0;
}

// `info[at]` as a Uint8Array of exactly `len` bytes (any length when len is 0, then stored in *got).
bool Bytes(const Napi::CallbackInfo& info, size_t at, size_t len, uint8_t** data, size_t* got = nullptr) {
  size_t n = 0;
  if (info.Length() <= at || !GetUint8Array(info[at], data, &n)) return false;
  if (got != nullptr) *got = n;
  return len == 0 || n == len;
}

// Reads noiseInitiations' arguments (key, ck0, h0, input, out, ok) into b; throws a TypeError naming
// `usage` and returns false on bad input. Nothing runs before every argument is checked.
bool ReadInitiations(const Napi::CallbackInfo& info, const char* usage, Initiations* b) {
  uint8_t *ck0, *h0, *in, *out, *ok;
  size_t inLen, outLen, okLen;
  b->key = info.Length() > 0 ? X25519KeyOf(info[0]) : nullptr;
  if (b->key == nullptr || !Bytes(info, 1, kKey, &ck0) || !Bytes(info, 2, kKey, &h0) || !Bytes(info, 3, 0, &in, &inLen) ||
      !Bytes(info, 4, 0, &out, &outLen) || !Bytes(info, 5, 0, &ok, &okLen) || inLen % kInitIn != 0 || outLen != inLen / kInitIn * kInitOut ||
      okLen != inLen / kInitIn) {
    return ThrowType(info.Env(), usage), false;
  }
  std::memcpy(b->ck0, ck0, kKey);
  std::memcpy(b->h0, h0, kKey);
  b->in = in;
  b->out = out;
  b->ok = ok;
  b->n = okLen;
  return true;
}

// Reads noiseResponses' arguments (keys, input, out, ok) into b, as ReadInitiations; a job whose key is
// undefined gets a fresh key pair from `pool` (its private key never leaves the addon).
bool ReadResponses(const Napi::CallbackInfo& info, const char* usage, KeyPool* pool, Responses* b) {
  uint8_t *in, *out, *ok;
  size_t inLen, outLen, okLen;
  if (info.Length() < 4 || !info[0].IsArray() || !Bytes(info, 1, 0, &in, &inLen) || !Bytes(info, 2, 0, &out, &outLen) ||
      !Bytes(info, 3, 0, &ok, &okLen)) {
    return ThrowType(info.Env(), usage), false;
  }
  Napi::Array keys = info[0].As<Napi::Array>();
  const size_t n = keys.Length();
  if (okLen != n || inLen != n * kRespIn || outLen != n * kRespOut) return ThrowType(info.Env(), usage), false;
  b->keys.assign(n, nullptr);
  for (size_t i = 0; i < n; i++) {
    const Napi::Value k = keys.Get(static_cast<uint32_t>(i));
    if (k.IsUndefined()) continue;
    b->keys[i] = X25519KeyOf(k);
    if (b->keys[i] == nullptr) return ThrowType(info.Env(), std::string("noiseResponses: job ") + std::to_string(i) + ": " + usage), false;
  }
  for (size_t i = 0; i < n; i++) {
    if (b->keys[i] != nullptr) continue;
    b->keys[i] = TakeKeyPair(pool);
    if (b->keys[i] != nullptr) b->owned.push_back(b->keys[i]);
  }
  b->in = in;
  b->out = out;
  b->ok = ok;
  b->n = n;
  return true;
}

const char* const kInitiationsUsage =
    "noiseInitiations(key: External from x25519Import, ck: 32-byte Uint8Array, h: 32-byte Uint8Array, input: Uint8Array of 80 × n bytes, "
    "out: Uint8Array of 96 × n bytes, ok: Uint8Array of n bytes)";
const char* const kResponsesUsage =
    "noiseResponses(keys: (External from x25519Generate/x25519Import | undefined: a fresh key pair)[], input: Uint8Array of 160 × n bytes, "
    "out: Uint8Array of 176 × n bytes, ok: Uint8Array of n bytes)";

Napi::Value NoiseInitiations(const Napi::CallbackInfo& info) {
  Initiations b;
  if (ReadInitiations(info, kInitiationsUsage, &b)) ParallelFor(b.n, 1, &RunInitiations, &b);
  return info.Env().Undefined();
}

Napi::Value NoiseResponses(const Napi::CallbackInfo& info) {
  Responses b;
  if (ReadResponses(info, kResponsesUsage, static_cast<KeyPool*>(info.Data()), &b)) ParallelFor(b.n, 1, &RunResponses, &b);
  return info.Env().Undefined();
}

// A batch on a libuv worker thread (not the crypto pool, whose one-batch-at-a-time lock the data
// path's AEAD batches take on the event loop); done() is called on the event loop once every job ran.
// The arguments are held by references until then, so neither keys nor buffers can be collected.
template <typename Jobs, void (*Run)(size_t, size_t, void*)>
class StepsAsync : public Napi::AsyncWorker {
 public:
  StepsAsync(const Napi::CallbackInfo& info, size_t args, Jobs jobs)
      : Napi::AsyncWorker(info[args].As<Napi::Function>(), "tsguard.noiseSteps"), jobs_(std::move(jobs)) {
    for (size_t i = 0; i < args; i++) refs_.push_back(Napi::Persistent(info[i].As<Napi::Object>()));
  }
  void Execute() override { Run(0, jobs_.n, &jobs_); }

 private:
  Jobs jobs_;
  std::vector<Napi::ObjectReference> refs_;
};

Napi::Value NoiseInitiationsAsync(const Napi::CallbackInfo& info) {
  Initiations b;
  if (info.Length() < 7 || !info[6].IsFunction()) return ThrowType(info.Env(), std::string(kInitiationsUsage) + " + done: () => void");
  if (ReadInitiations(info, kInitiationsUsage, &b)) (new StepsAsync<Initiations, RunInitiations>(info, 6, std::move(b)))->Queue();
  return info.Env().Undefined();
}

Napi::Value NoiseResponsesAsync(const Napi::CallbackInfo& info) {
  Responses b;
  if (info.Length() < 5 || !info[4].IsFunction()) return ThrowType(info.Env(), std::string(kResponsesUsage) + " + done: () => void");
  if (ReadResponses(info, kResponsesUsage, static_cast<KeyPool*>(info.Data()), &b)) {
    (new StepsAsync<Responses, RunResponses>(info, 4, std::move(b)))->Queue();
  }
  return info.Env().Undefined();
}

}  // namespace

void InitNoiseSteps(Napi::Env env, Napi::Object exports, KeyPool* pool) {
  exports.Set("noiseInitiations", Napi::Function::New<NoiseInitiations>(env, "noiseInitiations"));
  exports.Set("noiseResponses", Napi::Function::New(env, NoiseResponses, "noiseResponses", pool));
  exports.Set("noiseInitiationsAsync", Napi::Function::New<NoiseInitiationsAsync>(env, "noiseInitiationsAsync"));
  exports.Set("noiseResponsesAsync", Napi::Function::New(env, NoiseResponsesAsync, "noiseResponsesAsync", pool));
}

}  // namespace tsg
