/**
 * The set of primitives WireGuard needs, behind one interface so that the
 * protocol core runs on any of the providers: `native` (OpenSSL through the
 * addon, injected by the shell), `node` (node:crypto) or `noble` (the
 * pure-JavaScript @noble libraries: the reference, and runtimes without
 * node:crypto).
 *
 * All keys and data are `Uint8Array`s. Every function is synchronous except
 * the optional `…StepsAsync`.
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

/** One initiation for {@link CryptoProvider.initiationSteps}: views of the message's fields. */
export interface InitiationStepJob {
  /** The initiator's ephemeral public key (32 B). */
  readonly ephemeral: Uint8Array;
  /** The encrypted initiator static key (48 B). */
  readonly encryptedStatic: Uint8Array;
}

/** The state after an initiation's first step: chaining key, hash and the decrypted initiator static key. */
export interface InitiationStepResult {
  /** Chaining key after `es`. */
  readonly ck: Uint8Array;
  /** Handshake hash after the encrypted static key. */
  readonly h: Uint8Array;
  /** The initiator's static public key. */
  readonly initiatorStatic: Uint8Array;
}

/** One response for {@link CryptoProvider.responseSteps}. */
export interface ResponseStepJob {
  /** Chaining key after the consumed initiation. */
  readonly ck: Uint8Array;
  /** Handshake hash after the consumed initiation. */
  readonly h: Uint8Array;
  /**
   * Our ephemeral private key; absent (the handshake worker's case): the
   * step draws a fresh one, as {@link CryptoProvider.generatePrivateKey}
   * would, and erases it (a native provider never lets it leave the addon).
   */
  readonly ephemeralPrivate?: Uint8Array;
  /** The initiator's ephemeral public key. */
  readonly initiatorEphemeral: Uint8Array;
  /** The initiator's static public key. */
  readonly initiatorStatic: Uint8Array;
  /** The preshared key (all zero when none). */
  readonly psk: Uint8Array;
}

/** A response's second step: the message's fields, the final state and the transport keys. */
export interface ResponseStepResult {
  /** Final chaining key. */
  readonly ck: Uint8Array;
  /** Final handshake hash. */
  readonly h: Uint8Array;
  /** Our ephemeral public key (the response's field). */
  readonly ephemeralPublic: Uint8Array;
  /** The encrypted empty payload (its 16-byte tag; the response's field). */
  readonly encryptedEmpty: Uint8Array;
  /** First transport key of Split (the initiator's sending key, our receiving key). */
  readonly k1: Uint8Array;
  /** Second transport key of Split (our sending key). */
  readonly k2: Uint8Array;
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
   * Optional: the responder's first Noise step of many initiations at once
   * (`src/noise/steps.ts` defines it: `e, es, s` up to the decrypted static
   * key), with our static key and the initial chaining key and hash of
   * messages addressed to us. Result `i` is job `i`'s, or null where it
   * fails. A provider may spread the jobs over several threads; without it,
   * `initiationSteps` in `src/noise/steps.ts` computes them one by one.
   */
  initiationSteps?(staticPrivate: Uint8Array, ck: Uint8Array, h: Uint8Array, jobs: readonly InitiationStepJob[]): (InitiationStepResult | null)[];
  /** Optional: {@link CryptoProvider.initiationSteps} computed off the caller's thread (the handshake worker then serves other work meanwhile). */
  initiationStepsAsync?(staticPrivate: Uint8Array, ck: Uint8Array, h: Uint8Array, jobs: readonly InitiationStepJob[]): Promise<(InitiationStepResult | null)[]>;
  /**
   * Optional: the responder's second Noise step of many handshakes at once
   * (`src/noise/steps.ts`: `e, ee, se, psk`, the empty payload and the
   * transport keys), as {@link CryptoProvider.initiationSteps}.
   */
  responseSteps?(jobs: readonly ResponseStepJob[]): (ResponseStepResult | null)[];
  /** Optional: {@link CryptoProvider.responseSteps} computed off the caller's thread. */
  responseStepsAsync?(jobs: readonly ResponseStepJob[]): Promise<(ResponseStepResult | null)[]>;
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
