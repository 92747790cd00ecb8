/**
 * Pure-JavaScript {@link CryptoProvider} built on the audited @noble
 * libraries. It is the reference implementation (the node:crypto provider is
 * tested against it) and the fallback for runtimes without node:crypto.
 * @module
 */

import { x25519 } from '@noble/curves/ed25519.js';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { randomBytes as nobleRandomBytes } from '@noble/hashes/utils.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { xopen, xseal } from './xchacha.js';
import { loopAeadBatch } from './batch.js';
import { KEY_LEN, MAC_LEN, TAG_LEN, type CryptoProvider } from './provider.js';
import { loadedProviders } from './loaded.js';

/**
 * Scratch 12-byte nonce. Nonces are not secret and every use below is
 * synchronous (the cipher is created, used and dropped before returning), so
 * one shared buffer avoids an allocation per packet.
 */
const NONCE = new Uint8Array(12);
const NONCE_VIEW = new DataView(NONCE.buffer);
const EMPTY = new Uint8Array(0);
const RANDOM_CHUNK = 65536;

/** Write WireGuard's nonce `0x00000000 ‖ LE64(hi:lo)` into {@link NONCE}. */
function wgNonce(counterLo: number, counterHi: number): Uint8Array {
  NONCE_VIEW.setUint32(4, counterLo >>> 0, true);
  NONCE_VIEW.setUint32(8, counterHi >>> 0, true);
  return NONCE;
}

/** Clamp a Curve25519 private key in place (RFC 7748 §5) and return it. */
function clamp(k: Uint8Array): Uint8Array {
  k[0]! &= 248;
  k[31]! &= 127;
  k[31]! |= 64;
  return k;
}

/**
 * Raw RFC 8439 ChaCha20-Poly1305 seal with an arbitrary 12-byte nonce, via
 * @noble. Exposed for the RFC 8439 test vectors, whose nonces are not of
 * WireGuard's form; the protocol uses {@link nobleCrypto}.seal instead.
 * @internal
 */
export function aeadSealRaw(key: Uint8Array, nonce12: Uint8Array, plaintext: Uint8Array, ad?: Uint8Array): Uint8Array {
  return chacha20poly1305(key, nonce12, ad ?? EMPTY).encrypt(plaintext);
}

/**
 * Raw RFC 8439 ChaCha20-Poly1305 open with an arbitrary 12-byte nonce, via
 * @noble. Returns `null` when authentication fails.
 * @internal
 */
export function aeadOpenRaw(
  key: Uint8Array,
  nonce12: Uint8Array,
  ciphertext: Uint8Array,
  ad?: Uint8Array,
): Uint8Array | null {
  if (ciphertext.length < TAG_LEN) return null;
  // Construct outside the try so that bad key/nonce lengths still throw;
  // decrypt() itself only throws on a tag mismatch.
  const cipher = chacha20poly1305(key, nonce12, ad ?? EMPTY);
  try {
    return cipher.decrypt(ciphertext);
  } catch {
    return null;
  }
}

/**
 * The @noble provider: X25519 from @noble/curves, BLAKE2s and HMAC from
 * @noble/hashes, (X)ChaCha20-Poly1305 from @noble/ciphers, randomness from
 * `crypto.getRandomValues`.
 */
export const nobleCrypto: CryptoProvider = {
  name: 'noble',

  randomBytes(n: number): Uint8Array {
    if (n <= RANDOM_CHUNK) return nobleRandomBytes(n);
    // getRandomValues() is limited to 65536 bytes per call
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += RANDOM_CHUNK) {
      const chunk = nobleRandomBytes(Math.min(RANDOM_CHUNK, n - i));
      out.set(chunk, i);
      chunk.fill(0);
    }
    return out;
  },

  generatePrivateKey(): Uint8Array {
    return clamp(nobleRandomBytes(KEY_LEN));
  },

  publicKey(privateKey: Uint8Array): Uint8Array {
    return x25519.getPublicKey(privateKey);
  },

  dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | null {
    if (privateKey.length !== KEY_LEN || publicKey.length !== KEY_LEN) {
      throw new RangeError(`dh: keys must be ${KEY_LEN} bytes`);
    }
    // @noble rejects the low-order inputs (those whose result would be all
    // zero) by throwing, before running the ladder. With the lengths checked
    // above that is the only way it can fail.
    let shared: Uint8Array;
    try {
      shared = x25519.getSharedSecret(privateKey, publicKey);
    } catch {
      return null;
    }
    let acc = 0;
    for (let i = 0; i < KEY_LEN; i++) acc |= shared[i]!;
    return acc === 0 ? null : shared;
  },

  hash(...parts: Uint8Array[]): Uint8Array {
    if (parts.length === 1) return blake2s(parts[0]!);
    const h = blake2s.create();
    for (const p of parts) h.update(p);
    return h.digest();
  },

  mac(key: Uint8Array, data: Uint8Array): Uint8Array {
    return blake2s(data, { key, dkLen: MAC_LEN });
  },

  hmac(key: Uint8Array, data: Uint8Array): Uint8Array {
    return hmac(blake2s, key, data);
  },

  seal(key, counterLo, counterHi, plaintext, ad) {
    return chacha20poly1305(key, wgNonce(counterLo, counterHi), ad ?? EMPTY).encrypt(plaintext);
  },

  sealInto(key, counterLo, counterHi, plaintext, out, outOffset) {
    const end = outOffset + plaintext.length + TAG_LEN;
    if (outOffset < 0 || end > out.length) throw new RangeError('sealInto: output buffer too small');
    chacha20poly1305(key, wgNonce(counterLo, counterHi)).encrypt(plaintext, out.subarray(outOffset, end));
  },

  open(key, counterLo, counterHi, ciphertext, ad) {
    return aeadOpenRaw(key, wgNonce(counterLo, counterHi), ciphertext, ad);
  },

  /** The batch as a loop over {@link CryptoProvider.seal} / {@link CryptoProvider.open} (of the object it is called on). */
  aeadBatch(batch) {
    return loopAeadBatch(this, batch);
  },

  xseal,
  xopen,
};

loadedProviders.noble = nobleCrypto;
