/**
 * The native provider: node:crypto's OpenSSL reached through tsguard's
 * native addon where node:crypto's per-call JavaScript objects cost more than
 * the primitive:
 * - ChaCha20-Poly1305 seal/open (data path and handshake) with one reused EVP
 *   context (node:crypto creates a Cipher object per call);
 * - BLAKE2s-256, HMAC-BLAKE2s, the KDF and keyed BLAKE2s-128 (the handshake's
 *   hashes and MACs) through OpenSSL with contexts reused per thread;
 * - X25519 with the private key held in an OpenSSL key object cached per key
 *   array; new key pairs (one per handshake) come from a pool that a
 *   background thread of the addon keeps filled, so their scalar
 *   multiplication is off the event loop;
 * - the responder's Noise message steps, whole, for a batch of handshakes in
 *   one call on the addon's crypto pool, or asynchronously on libuv worker
 *   threads so that the event loop serves packets meanwhile
 *   (`native-steps.ts`).
 *
 * This module does not load the addon: the shell does (`io/native.ts`, the
 * one loader) and passes its exports to {@link createNativeCrypto}, so the
 * core imports and runs where there is no addon. Every native function is
 * checked against node:crypto or @noble first; a function that is missing or
 * disagrees is not used.
 * @module
 */

import { AeadBatch, loopAeadBatch, type AEAD_ROW } from './batch.js';
import { kdf3 } from './kdf.js';
import { KeyCache } from './key-cache.js';
import { nodeCrypto, nodeCryptoAvailable } from './node.js';
import type { CryptoProvider } from './provider.js';
import { checkKeyLen, KEY_LEN, MAC_LEN, TAG_LEN } from './provider.js';
import { nativeSteps, stepsSelfTest, type StepsBinding } from './native-steps.js';

/** An OpenSSL X25519 private key held by the addon (an N-API External). */
type NativeKey = object;

interface AeadBinding {
  aeadSeal(key: Uint8Array, lo: number, hi: number, plaintext: Uint8Array, out: Uint8Array, outOffset: number, ad?: Uint8Array): void;
  aeadOpen(key: Uint8Array, lo: number, hi: number, ciphertext: Uint8Array, out: Uint8Array, ad?: Uint8Array): number;
}

interface AeadBatchBinding {
  /** Seal or open `count` jobs in place (rows of {@link AEAD_ROW}); returns the number that failed. */
  aeadBatch(seal: boolean, keys: Uint8Array[], stores: readonly Uint8Array[], table: Uint32Array, count: number, ok: Uint8Array): number;
  /** Threads a large batch runs on, the caller included. */
  cryptoThreads(): number;
}

interface HandshakeBinding {
  blake2s(out: Uint8Array, ...parts: Uint8Array[]): void;
  hmacBlake2s(key: Uint8Array, data: Uint8Array, out: Uint8Array): void;
  kdfBlake2s(key: Uint8Array, input: Uint8Array, out: Uint8Array): void;
  macBlake2s(key: Uint8Array, data: Uint8Array, out: Uint8Array): void;
  x25519Generate(outPrivate: Uint8Array): NativeKey;
  x25519Import(privateKey: Uint8Array): NativeKey;
  x25519Public(key: NativeKey, out: Uint8Array): void;
  x25519(key: NativeKey, publicKey: Uint8Array, out: Uint8Array): boolean;
}

/** The addon's crypto exports, as the shell loaded them (any may be missing in an old build). */
export type NativeCryptoBinding = Partial<AeadBinding & AeadBatchBinding & HandshakeBinding & StepsBinding>;

/** The native provider, and whether its handshake primitives are native too (else node:crypto's). */
export interface NativeCryptoProvider extends CryptoProvider {
  /** True when X25519, BLAKE2s, HMAC and MAC are the addon's (they passed their self-test). */
  readonly nativeHandshake: boolean;
  /** Threads a large {@link CryptoProvider.aeadBatch} runs on (the caller included); 0 when batches loop over single calls. */
  readonly batchThreads: number;
}

const same = (a: Uint8Array | null, b: Uint8Array | null): boolean =>
  a !== null && b !== null && a.length === b.length && a.every((x, i) => x === b[i]);

/** Seal and open a fixed message (with and without AD) with a counter beyond 2^32 and compare with node:crypto. */
function aeadSelfTest(b: AeadBinding): boolean {
  const key = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 1);
  const pt = Uint8Array.from({ length: 45 }, (_, i) => i);
  const ad = Uint8Array.from({ length: 32 }, (_, i) => 255 - i);
  for (const a of [undefined, ad]) {
    const out = new Uint8Array(pt.length + TAG_LEN);
    b.aeadSeal(key, 0x01020304, 5, pt, out, 0, a);
    if (!same(out, nodeCrypto.seal(key, 0x01020304, 5, pt, a))) return false;
    const back = new Uint8Array(pt.length);
    if (b.aeadOpen(key, 0x01020304, 5, out, back, a) !== pt.length || !same(back, pt)) return false;
    out[3]! ^= 1;
    if (b.aeadOpen(key, 0x01020304, 5, out, back, a) !== -1) return false;
  }
  return true;
}

/**
 * Seal 20 packets of mixed keys and counters (enough for the thread pool) in one batch, compare each
 * with node:crypto, open them back, and check that exactly the tampered one fails.
 */
function batchSelfTest(b: AeadBatchBinding): boolean {
  const keys = [Uint8Array.from({ length: 32 }, (_, i) => i + 1), Uint8Array.from({ length: 32 }, (_, i) => 200 - i)];
  const seal = new AeadBatch(true);
  const open = new AeadBatch(false);
  const plain: Uint8Array[] = [];
  for (let i = 0; i < 20; i++) {
    const pt = Uint8Array.from({ length: (i * 53) % 300 }, (_, j) => (i + j) & 255);
    const buf = new Uint8Array(16 + pt.length + TAG_LEN);
    buf.set(pt, 16);
    plain.push(pt);
    seal.add(keys[i % 2]!, 0xfffffff0 + i, i % 3, buf, 16, pt.length);
  }
  if (b.aeadBatch(true, seal.keys, seal.stores, seal.table, seal.length, seal.ok) !== 0) return false;
  for (let i = 0; i < 20; i++) {
    const buf = seal.bufs[i]!;
    if (!same(buf.subarray(16), nodeCrypto.seal(keys[i % 2]!, 0xfffffff0 + i, i % 3, plain[i]!))) return false;
    open.add(keys[i % 2]!, 0xfffffff0 + i, i % 3, buf, 16, buf.length - 16);
  }
  open.bufs[7]![16]! ^= 1;
  if (b.aeadBatch(false, open.keys, open.stores, open.table, open.length, open.ok) !== 1 || open.ok[7] !== 0) return false;
  return plain.every((pt, i) => i === 7 || same(open.bufs[i]!.subarray(16, 16 + pt.length), pt));
}

/** Compare every handshake primitive with the node provider's on fixed inputs (RFC 7748 §6.1 keys). */
function handshakeSelfTest(b: HandshakeBinding): boolean {
  const hex = (s: string) => Uint8Array.from(s.match(/../g)!, (x) => parseInt(x, 16));
  const alice = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const bobPub = hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
  const data = Uint8Array.from({ length: 100 }, (_, i) => (i * 31) & 255);
  const out = new Uint8Array(KEY_LEN);
  const out16 = new Uint8Array(MAC_LEN);
  b.blake2s(out, alice, data);
  if (!same(out, nodeCrypto.hash(alice, data))) return false;
  b.hmacBlake2s(alice, data, out);
  if (!same(out, nodeCrypto.hmac(alice, data))) return false;
  const k3 = new Uint8Array(3 * KEY_LEN);
  b.kdfBlake2s(alice, data, k3);
  if (!same(k3, Uint8Array.from(kdf3(nodeCrypto, alice, data).flatMap((x) => [...x])))) return false;
  b.macBlake2s(alice, data, out16);
  if (!same(out16, nodeCrypto.mac(alice, data))) return false; // @noble's keyed BLAKE2s
  const k = b.x25519Import(alice);
  b.x25519Public(k, out);
  if (!same(out, nodeCrypto.publicKey(alice))) return false;
  if (!b.x25519(k, bobPub, out) || !same(out, nodeCrypto.dh(alice, bobPub))) return false;
  if (b.x25519(k, new Uint8Array(KEY_LEN), out)) return false; // low-order point: refused
  const fresh = new Uint8Array(KEY_LEN);
  b.x25519Public(b.x25519Generate(fresh), out);
  const clamped = (fresh[0]! & 7) === 0 && (fresh[31]! & 0xc0) === 0x40;
  return clamped && same(out, nodeCrypto.publicKey(fresh));
}

function checked<T>(addon: Partial<T>, names: (keyof T)[], test: (b: T) => boolean): T | null {
  if (names.some((n) => typeof addon[n] !== 'function')) return null;
  try {
    return test(addon as T) ? (addon as T) : null;
  } catch {
    return null;
  }
}

/**
 * The native provider on the addon's exports, or null when its AEAD is
 * missing or fails the self-test (the node provider is then the better choice)
 * or node:crypto itself is unavailable.
 */
export function createNativeCrypto(addon: NativeCryptoBinding): NativeCryptoProvider | null {
  if (!nodeCryptoAvailable) return null;
  const aead = checked<AeadBinding>(addon, ['aeadSeal', 'aeadOpen'], aeadSelfTest);
  if (aead === null) return null;
  const batch = checked<AeadBatchBinding>(addon, ['aeadBatch', 'cryptoThreads'], batchSelfTest);
  const hs = checked<HandshakeBinding>(
    addon,
    ['blake2s', 'hmacBlake2s', 'kdfBlake2s', 'macBlake2s', 'x25519Generate', 'x25519Import', 'x25519Public', 'x25519'],
    handshakeSelfTest,
  );
  return {
    ...nodeCrypto,
    ...(hs === null ? {} : nativeHandshake(hs, addon, batch === null ? 1 : batch.cryptoThreads())),
    name: 'native',
    nativeHandshake: hs !== null,
    batchThreads: batch === null ? 0 : batch.cryptoThreads(),

    aeadBatch(b) {
      if (batch === null) return loopAeadBatch(this, b);
      return b.length === 0 ? 0 : batch.aeadBatch(b.seal, b.keys, b.stores, b.table, b.length, b.ok);
    },

    seal(key, counterLo, counterHi, plaintext, ad) {
      const out = new Uint8Array(plaintext.length + TAG_LEN);
      aead.aeadSeal(key, counterLo >>> 0, counterHi >>> 0, plaintext, out, 0, ad);
      return out;
    },

    sealInto(key, counterLo, counterHi, plaintext, out, outOffset) {
      aead.aeadSeal(key, counterLo >>> 0, counterHi >>> 0, plaintext, out, outOffset);
    },

    open(key, counterLo, counterHi, ciphertext, ad) {
      if (ciphertext.length < TAG_LEN) return null;
      const out = new Uint8Array(ciphertext.length - TAG_LEN);
      return aead.aeadOpen(key, counterLo >>> 0, counterHi >>> 0, ciphertext, out, ad) < 0 ? null : out;
    },
  };
}

/**
 * The handshake primitives on the addon (XChaCha20-Poly1305 and random bytes
 * stay node.ts's), with the batched Noise steps when `steps` has them and they
 * pass their self-test.
 */
function nativeHandshake(
  hs: HandshakeBinding,
  steps: Partial<StepsBinding>,
  threads: number,
): Pick<
  CryptoProvider,
  'generatePrivateKey' | 'publicKey' | 'dh' | 'hash' | 'hmac' | 'kdf' | 'mac' | 'initiationSteps' | 'initiationStepsAsync' | 'responseSteps' | 'responseStepsAsync'
> {
  /** Imported private keys per key array (see {@link KeyCache}); the addon frees (and OpenSSL erases) a key when its entry is collected. */
  const keys = new KeyCache<NativeKey>();
  const imported = (raw: Uint8Array) => hs.x25519Import(raw);
  const keyOf = (raw: Uint8Array) => keys.get(raw, imported);
  const primitives: Pick<CryptoProvider, 'generatePrivateKey' | 'publicKey' | 'dh' | 'hash' | 'hmac' | 'kdf' | 'mac'> = {
    /** From the addon's pool of pre-generated key pairs; the public key is then free. */
    generatePrivateKey() {
      const raw = new Uint8Array(KEY_LEN);
      keys.set(raw, hs.x25519Generate(raw));
      return raw;
    },
    publicKey(privateKey) {
      checkKeyLen(privateKey, 'publicKey');
      const out = new Uint8Array(KEY_LEN);
      hs.x25519Public(keyOf(privateKey), out);
      return out;
    },
    dh(privateKey, publicKey) {
      checkKeyLen(privateKey, 'dh private key');
      checkKeyLen(publicKey, 'dh public key');
      const out = new Uint8Array(KEY_LEN);
      return hs.x25519(keyOf(privateKey), publicKey, out) ? out : null;
    },
    hash(...parts) {
      const out = new Uint8Array(KEY_LEN);
      hs.blake2s(out, ...parts);
      return out;
    },
    hmac(key, data) {
      if (key.length === 0 || key.length > 64) return nodeCrypto.hmac(key, data);
      const out = new Uint8Array(KEY_LEN);
      hs.hmacBlake2s(key, data, out);
      return out;
    },
    kdf(key, input, n) {
      const out = new Uint8Array(n * KEY_LEN);
      hs.kdfBlake2s(key, input, out);
      return out;
    },
    mac(key, data) {
      if (key.length === 0 || key.length > KEY_LEN) return nodeCrypto.mac(key, data);
      const out = new Uint8Array(MAC_LEN);
      hs.macBlake2s(key, data, out);
      return out;
    },
  };
  if (typeof steps.noiseInitiations !== 'function' || typeof steps.noiseResponses !== 'function') return primitives;
  /** Parts an asynchronous batch is cut into: one libuv thread each, leaving a core to the event loop. */
  const batched = nativeSteps(steps as StepsBinding, keyOf, Math.max(1, threads - 1));
  try {
    return stepsSelfTest(batched, primitives) ? { ...primitives, ...batched } : primitives;
  } catch {
    return primitives;
  }
}
