/**
 * The set of primitives WireGuard needs, behind one interface so that the
 * protocol core runs on any of the providers: `native` (OpenSSL through the
 * addon, injected by the shell), `node` (node:crypto) or `noble` (the
 * pure-JavaScript @noble libraries: the reference, and runtimes without
 * node:crypto).
 *
 * All keys and data are `Uint8Array`s. Every function is synchronous except
 * the optional `dhBatchAsync`.
 * @module
 */

import type { AeadBatch } from './batch.js';

/** Length of a Curve25519 key, a BLAKE2s hash, a symmetric key. */
export const KEY_LEN = 32;
/** Length of a Poly1305 tag. */
export const TAG_LEN = 16;
/** Length of a keyed BLAKE2s MAC as WireGuard uses it (mac1, mac2, cookie). */
export const MAC_LEN = 16;
/** Length of an XChaCha20 nonce. */
export const XNONCE_LEN = 24;

/** Throw a RangeError naming `what` unless `k` is a 32-byte key. @internal */
export function checkKeyLen(k: Uint8Array, what: string): void {
  if (k.length !== KEY_LEN) throw new RangeError(`${what}: expected ${KEY_LEN} bytes, got ${k.length}`);
}

/** Primitives used by the handshake, the cookie mechanism and the data path. */
export interface CryptoProvider {
  /** Name of this provider: `"native"`, `"node"` or `"noble"`. */
  readonly name: string;
  /** Fill a new array of `n` bytes from a CSPRNG. */
  randomBytes(n: number): Uint8Array;
  /** Generate a clamped Curve25519 private key. */
  generatePrivateKey(): Uint8Array;
  /** Curve25519 public key of a private key. */
  publicKey(privateKey: Uint8Array): Uint8Array;
  /**
   * Curve25519 Diffie–Hellman. Returns the 32-byte shared secret, or `null`
   * when the result is all zero (the peer sent a low-order point); the
   * caller must then abort the handshake.
   */
  dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | null;
  /**
   * Optional: many {@link CryptoProvider.dh} at once — result `i` is
   * `dh(privateKeys[i], publicKeys[i])` — which a provider may spread over
   * several threads (the handshake worker computes the DH values of a whole
   * event-loop turn in one call). Without it, {@link dhMany} loops over
   * {@link CryptoProvider.dh}.
   */
  dhBatch?(privateKeys: readonly Uint8Array[], publicKeys: readonly Uint8Array[]): (Uint8Array | null)[];
  /**
   * Optional: {@link CryptoProvider.dhBatch} computed off the caller's
   * thread; the promise resolves with the same results once all are done.
   * The handshake worker then keeps serving other work meanwhile (and
   * re-checks peer and key state when it resolves). Providers that compute
   * on the caller's thread leave it out.
   */
  dhBatchAsync?(privateKeys: readonly Uint8Array[], publicKeys: readonly Uint8Array[]): Promise<(Uint8Array | null)[]>;
  /** BLAKE2s-256 of the concatenation of `parts`. */
  hash(...parts: Uint8Array[]): Uint8Array;
  /** Keyed BLAKE2s with a 16-byte output (WireGuard's MAC). */
  mac(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** HMAC-BLAKE2s-256. */
  hmac(key: Uint8Array, data: Uint8Array): Uint8Array;
  /**
   * Optional: WireGuard's whole KDF in one call (see `kdf.ts`): `n` (1–3)
   * 32-byte outputs τ1‖…‖τn of HKDF-BLAKE2s with a 32-byte chaining key.
   * Providers whose per-call overhead is high implement it; without it the
   * KDF is built from {@link CryptoProvider.hmac}.
   */
  kdf?(key: Uint8Array, input: Uint8Array, n: 1 | 2 | 3): Uint8Array;
  /**
   * ChaCha20-Poly1305 seal with the 96-bit nonce `0x00000000 ‖ LE64(counter)`;
   * `counterLo`/`counterHi` are the low and high 32 bits of the counter.
   * Returns ciphertext ‖ tag.
   */
  seal(key: Uint8Array, counterLo: number, counterHi: number, plaintext: Uint8Array, ad?: Uint8Array): Uint8Array;
  /**
   * Like {@link CryptoProvider.seal} but writes ciphertext ‖ tag into `out`
   * at `outOffset` (which must have room for `plaintext.length + 16` bytes).
   * This is the data path: it avoids allocating an output buffer per packet.
   */
  sealInto(
    key: Uint8Array,
    counterLo: number,
    counterHi: number,
    plaintext: Uint8Array,
    out: Uint8Array,
    outOffset: number,
  ): void;
  /**
   * ChaCha20-Poly1305 open (nonce as in {@link CryptoProvider.seal}).
   * Returns the plaintext, or `null` if authentication fails.
   */
  open(key: Uint8Array, counterLo: number, counterHi: number, ciphertext: Uint8Array, ad?: Uint8Array): Uint8Array | null;
  /**
   * Optional: seal or open every job of `batch` in place, in one call (see
   * {@link AeadBatch}); returns the number of jobs that failed (opens that
   * did not authenticate). Without it, {@link runAeadBatch} loops over
   * {@link CryptoProvider.seal} / {@link CryptoProvider.open}.
   */
  aeadBatch?(batch: AeadBatch): number;
  /** XChaCha20-Poly1305 seal (cookie replies). Returns ciphertext ‖ tag. */
  xseal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array;
  /** XChaCha20-Poly1305 open. Returns the plaintext or `null`. */
  xopen(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array | null;
}

/** `dh(privateKeys[i], publicKeys[i])` for every `i`: `p`'s {@link CryptoProvider.dhBatch}, else one call each. */
export function dhMany(p: CryptoProvider, privateKeys: readonly Uint8Array[], publicKeys: readonly Uint8Array[]): (Uint8Array | null)[] {
  if (privateKeys.length !== publicKeys.length) {
    throw new RangeError(`dhMany: ${privateKeys.length} private keys but ${publicKeys.length} public keys`);
  }
  if (p.dhBatch !== undefined && privateKeys.length > 1) return p.dhBatch(privateKeys, publicKeys);
  return privateKeys.map((k, i) => p.dh(k, publicKeys[i]!));
}
