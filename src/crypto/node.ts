/**
 * {@link CryptoProvider} on node:crypto (OpenSSL) where that is faster, and
 * on @noble where node:crypto has no equivalent (keyed BLAKE2s, XChaCha20).
 *
 * node:crypto is obtained with `process.getBuiltinModule('node:crypto')`
 * rather than a static import, so that importing this module never fails on a
 * runtime without it: there {@link nodeCryptoAvailable} is `false` and every
 * method of {@link nodeCrypto} throws. Use `getCrypto()` from `./index.js` to
 * get whichever provider works.
 *
 * Measured choices (Node 20, OpenSSL 3.0, per call):
 * - X25519 keys are imported as JWK (~45 µs private, ~9 µs public) rather
 *   than PKCS#8/SPKI DER (~430 µs / ~90 µs: OpenSSL 3's DER decoder path is
 *   slow). The JWK path puts the private key into a short-lived base64url
 *   JS string, which cannot be wiped; the DER path (used only if the JWK
 *   import does not work on this runtime) zeroes its scratch buffer. No
 *   KeyObject or key material is cached.
 * - ChaCha20-Poly1305: one `createCipheriv` per packet (node has no way to
 *   re-key or re-nonce a cipher object); `update()` allocates its output, so
 *   `sealInto` costs exactly one copy of the ciphertext plus the 16-byte tag.
 * @module
 */

import type * as NodeCryptoModule from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { KeyCache } from './key-cache.js';
import { xopen, xseal } from './xchacha.js';
import { loopAeadBatch } from './batch.js';
import { checkKeyLen, KEY_LEN, MAC_LEN, TAG_LEN, type CryptoProvider } from './provider.js';

type NodeCrypto = typeof NodeCryptoModule;

const CHACHA = 'chacha20-poly1305';
const BLAKE2S = 'blake2s256';
const AEAD_OPTS = { authTagLength: TAG_LEN } as const;

/** PKCS#8 DER prefix of an X25519 private key (RFC 8410); the 32 raw bytes follow. */
const PKCS8_X25519_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
]);
/** SPKI DER prefix of an X25519 public key (RFC 8410); the 32 raw bytes follow. */
const SPKI_X25519_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00]);

/** Scratch nonce: not secret, and createCipheriv copies it synchronously. */
const NONCE = new Uint8Array(12);
const NONCE_VIEW = new DataView(NONCE.buffer);

/** Write WireGuard's nonce `0x00000000 ‖ LE64(hi:lo)` into {@link NONCE}. */
function wgNonce(counterLo: number, counterHi: number): Uint8Array {
  NONCE_VIEW.setUint32(4, counterLo >>> 0, true);
  NONCE_VIEW.setUint32(8, counterHi >>> 0, true);
  return NONCE;
}

/** A plain `Uint8Array` view of a Buffer (Buffer's `slice` aliases; Uint8Array's copies). */
function u8(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Clamp a Curve25519 private key in place (RFC 7748 §5) and return it. */
function clamp(k: Uint8Array): Uint8Array {
  k[0]! &= 248;
  k[31]! &= 127;
  k[31]! |= 64;
  return k;
}

function isAllZero(a: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i]!;
  return acc === 0;
}

/** How X25519 raw keys are turned into KeyObjects on this runtime. */
interface X25519Import {
  priv(c: NodeCrypto, raw: Uint8Array): NodeCryptoModule.KeyObject;
  pub(c: NodeCrypto, raw: Uint8Array): NodeCryptoModule.KeyObject;
}

const jwkImport: X25519Import = {
  priv(c, raw) {
    // Node reads only `d` for a private OKP key but insists `x` is a string.
    const d = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64url');
    return c.createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d, x: '' }, format: 'jwk' });
  },
  pub(c, raw) {
    const x = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64url');
    return c.createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x }, format: 'jwk' });
  },
};

const derImport: X25519Import = {
  priv(c, raw) {
    const der = Buffer.alloc(PKCS8_X25519_PREFIX.length + KEY_LEN);
    der.set(PKCS8_X25519_PREFIX, 0);
    der.set(raw, PKCS8_X25519_PREFIX.length);
    try {
      return c.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } finally {
      der.fill(0);
    }
  },
  pub(c, raw) {
    const der = Buffer.alloc(SPKI_X25519_PREFIX.length + KEY_LEN);
    der.set(SPKI_X25519_PREFIX, 0);
    der.set(raw, SPKI_X25519_PREFIX.length);
    return c.createPublicKey({ key: der, format: 'der', type: 'spki' });
  },
};

/** Raw public key of an X25519 private KeyObject (JWK export is cheaper than a SPKI DER round trip). */
function rawPublic(k: NodeCryptoModule.KeyObject): Uint8Array {
  const x = k.export({ format: 'jwk' }).x;
  if (typeof x !== 'string') throw new Error('X25519 key export did not return a public key');
  // Copy: Buffer.from(string) may return a slice of Node's shared pool.
  return new Uint8Array(Buffer.from(x, 'base64url'));
}

/** Imported KeyObjects per key array (see {@link KeyCache}): private and public keys. */
const privCache = new KeyCache<NodeCryptoModule.KeyObject>();
const pubCache = new KeyCache<NodeCryptoModule.KeyObject>();

/**
 * Random bytes for small requests (keys, indices, nonces) come from a pool
 * refilled 4 KiB at a time: one OpenSSL call costs ~4 µs however few bytes it
 * returns, and a handshake needs several. Bytes handed out are erased from the
 * pool at once.
 */
const POOL_SIZE = 4096;
const POOL_MAX_REQUEST = 256;
let pool: Uint8Array | null = null;
let poolOffset = POOL_SIZE;

function randomInto(c: NodeCrypto, out: Uint8Array): Uint8Array {
  const n = out.length;
  if (n > POOL_MAX_REQUEST) return c.randomFillSync(out);
  if (pool === null || poolOffset + n > POOL_SIZE) {
    pool ??= new Uint8Array(POOL_SIZE);
    c.randomFillSync(pool);
    poolOffset = 0;
  }
  const src = pool.subarray(poolOffset, poolOffset + n);
  out.set(src);
  src.fill(0);
  poolOffset += n;
  return out;
}

/** RFC 7748 §6.1 Alice: private key and public key, for the start-up self-test. */
const SELFTEST_PRIV = '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a';
const SELFTEST_PUB = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';

/** Pick an X25519 import method that works here, or `null` if none does. */
function probeX25519(c: NodeCrypto): X25519Import | null {
  const priv = Buffer.from(SELFTEST_PRIV, 'hex');
  for (const imp of [jwkImport, derImport]) {
    try {
      const k = imp.priv(c, priv);
      if (Buffer.from(rawPublic(k)).toString('hex') === SELFTEST_PUB) return imp;
    } catch {
      // try the next method
    }
  }
  return null;
}

/** Load node:crypto and check it has everything this provider needs. */
function loadNodeCrypto(): { c: NodeCrypto; x: X25519Import } | null {
  try {
    const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
    const c = proc?.getBuiltinModule?.('node:crypto') as NodeCrypto | undefined;
    if (!c) return null;
    // BoringSSL builds (e.g. Electron) or FIPS mode can lack these.
    if (!c.getHashes().includes(BLAKE2S) || !c.getCiphers().includes(CHACHA)) return null;
    const x = probeX25519(c);
    return x ? { c, x } : null;
  } catch {
    return null;
  }
}

const LOADED = loadNodeCrypto();

/**
 * `true` when node:crypto was found and supports X25519, BLAKE2s-256 and
 * ChaCha20-Poly1305; otherwise {@link nodeCrypto} is unusable.
 */
export const nodeCryptoAvailable: boolean = LOADED !== null;

function need(): { c: NodeCrypto; x: X25519Import } {
  if (LOADED === null) throw new Error('node:crypto (with X25519, BLAKE2s and ChaCha20-Poly1305) is not available');
  return LOADED;
}

/**
 * Raw RFC 8439 ChaCha20-Poly1305 seal with an arbitrary 12-byte nonce via
 * node:crypto. Exposed for the RFC 8439 test vectors, whose nonces are not of
 * WireGuard's form; the protocol uses {@link nodeCrypto}.seal instead.
 * @internal
 */
export function aeadSealRaw(key: Uint8Array, nonce12: Uint8Array, plaintext: Uint8Array, ad?: Uint8Array): Uint8Array {
  const out = new Uint8Array(plaintext.length + TAG_LEN);
  sealRawInto(need().c, key, nonce12, plaintext, ad, out, 0);
  return out;
}

/**
 * Raw RFC 8439 ChaCha20-Poly1305 open with an arbitrary 12-byte nonce via
 * node:crypto. Returns `null` when authentication fails.
 * @internal
 */
export function aeadOpenRaw(
  key: Uint8Array,
  nonce12: Uint8Array,
  ciphertext: Uint8Array,
  ad?: Uint8Array,
): Uint8Array | null {
  return openRaw(need().c, key, nonce12, ciphertext, ad);
}

function sealRawInto(
  c: NodeCrypto,
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  ad: Uint8Array | undefined,
  out: Uint8Array,
  outOffset: number,
): void {
  const n = plaintext.length;
  if (outOffset < 0 || outOffset + n + TAG_LEN > out.length) throw new RangeError('sealInto: output buffer too small');
  const cipher = c.createCipheriv(CHACHA, key, nonce, AEAD_OPTS);
  if (ad !== undefined && ad.length > 0) cipher.setAAD(ad, { plaintextLength: n });
  // update() returns a fresh Buffer (node has no update-into API); plaintext
  // is fully consumed before we write, so in-place (overlapping) use is safe.
  out.set(cipher.update(plaintext), outOffset);
  cipher.final(); // always empty for a stream cipher
  out.set(cipher.getAuthTag(), outOffset + n);
}

function openRaw(
  c: NodeCrypto,
  key: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  ad: Uint8Array | undefined,
): Uint8Array | null {
  const n = ciphertext.length - TAG_LEN;
  if (n < 0) return null;
  const decipher = c.createDecipheriv(CHACHA, key, nonce, AEAD_OPTS);
  decipher.setAuthTag(ciphertext.subarray(n));
  if (ad !== undefined && ad.length > 0) decipher.setAAD(ad, { plaintextLength: n });
  const pt = decipher.update(ciphertext.subarray(0, n));
  try {
    decipher.final(); // throws on tag mismatch
  } catch {
    pt.fill(0);
    return null;
  }
  return u8(pt);
}

/**
 * The node:crypto provider: X25519, BLAKE2s-256, HMAC-BLAKE2s and
 * ChaCha20-Poly1305 from OpenSSL; keyed BLAKE2s-128 (node's BLAKE2 has no
 * key parameter) and XChaCha20-Poly1305 from @noble. HMAC-BLAKE2s from
 * OpenSSL is checked in the tests to match @noble's byte for byte.
 */
export const nodeCrypto: CryptoProvider = {
  name: 'node',

  randomBytes(n: number): Uint8Array {
    return randomInto(need().c, new Uint8Array(n));
  },

  generatePrivateKey(): Uint8Array {
    return clamp(randomInto(need().c, new Uint8Array(KEY_LEN)));
  },

  publicKey(privateKey: Uint8Array): Uint8Array {
    checkKeyLen(privateKey, 'publicKey');
    const { c, x } = need();
    return rawPublic(privCache.get(privateKey, (raw) => x.priv(c, raw)));
  },

  dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | null {
    checkKeyLen(privateKey, 'dh private key');
    checkKeyLen(publicKey, 'dh public key');
    const { c, x } = need();
    const priv = privCache.get(privateKey, (raw) => x.priv(c, raw));
    const pub = pubCache.get(publicKey, (raw) => x.pub(c, raw));
    let shared: Uint8Array;
    try {
      // OpenSSL fails the derivation when the result is all zero.
      shared = c.diffieHellman({ privateKey: priv, publicKey: pub });
    } catch {
      return null;
    }
    return isAllZero(shared) ? null : u8(shared);
  },

  hash(...parts: Uint8Array[]): Uint8Array {
    const h = need().c.createHash(BLAKE2S);
    for (const p of parts) h.update(p);
    return u8(h.digest());
  },

  mac(key: Uint8Array, data: Uint8Array): Uint8Array {
    return blake2s(data, { key, dkLen: MAC_LEN });
  },

  hmac(key: Uint8Array, data: Uint8Array): Uint8Array {
    return u8(need().c.createHmac(BLAKE2S, key).update(data).digest());
  },

  seal(key, counterLo, counterHi, plaintext, ad) {
    const out = new Uint8Array(plaintext.length + TAG_LEN);
    sealRawInto(need().c, key, wgNonce(counterLo, counterHi), plaintext, ad, out, 0);
    return out;
  },

  sealInto(key, counterLo, counterHi, plaintext, out, outOffset) {
    sealRawInto(need().c, key, wgNonce(counterLo, counterHi), plaintext, undefined, out, outOffset);
  },

  open(key, counterLo, counterHi, ciphertext, ad) {
    return openRaw(need().c, key, wgNonce(counterLo, counterHi), ciphertext, ad);
  },

  /** The batch as a loop over {@link CryptoProvider.seal} / {@link CryptoProvider.open} (of the object it is called on). */
  aeadBatch(batch) {
    return loopAeadBatch(this, batch);
  },

  xseal,
  xopen,
};
