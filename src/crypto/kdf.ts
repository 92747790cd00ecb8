/**
 * WireGuard's key derivation: HKDF (RFC 5869) with HMAC-BLAKE2s, as in the
 * WireGuard paper §5.4 — no salt step beyond the chaining key, at most three
 * 32-byte outputs:
 *
 *     τ0 = HMAC(key, input)
 *     τ1 = HMAC(τ0, 0x01)
 *     τi = HMAC(τ0, τ(i−1) ‖ i)
 *
 * The intermediate τ0 (a secret pseudorandom key) is zeroed before returning.
 * @module
 */

import { KEY_LEN, type CryptoProvider } from './provider.js';

const ONE = Uint8Array.of(1);

/** τ(i) = HMAC(τ0, prev ‖ i), using `scratch` (33 bytes) for the input. */
function next(p: CryptoProvider, prk: Uint8Array, prev: Uint8Array, i: number, scratch: Uint8Array): Uint8Array {
  scratch.set(prev, 0);
  scratch[KEY_LEN] = i;
  return p.hmac(prk, scratch);
}

/** τ1‖…‖τn from the provider's one-call KDF, as separate arrays (views of one buffer). */
function split(out: Uint8Array, i: number): Uint8Array {
  return out.subarray(i * KEY_LEN, (i + 1) * KEY_LEN);
}

/** KDF with one output: τ1. */
export function kdf1(p: CryptoProvider, key: Uint8Array, input: Uint8Array): Uint8Array {
  if (p.kdf !== undefined && key.length === KEY_LEN) return p.kdf(key, input, 1);
  const prk = p.hmac(key, input);
  const t1 = p.hmac(prk, ONE);
  prk.fill(0);
  return t1;
}

/** KDF with two outputs: [τ1, τ2]. */
export function kdf2(p: CryptoProvider, key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array] {
  if (p.kdf !== undefined && key.length === KEY_LEN) {
    const out = p.kdf(key, input, 2);
    return [split(out, 0), split(out, 1)];
  }
  const prk = p.hmac(key, input);
  const t1 = p.hmac(prk, ONE);
  const scratch = new Uint8Array(KEY_LEN + 1);
  const t2 = next(p, prk, t1, 2, scratch);
  prk.fill(0);
  scratch.fill(0);
  return [t1, t2];
}

/** KDF with three outputs: [τ1, τ2, τ3]. */
export function kdf3(p: CryptoProvider, key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  if (p.kdf !== undefined && key.length === KEY_LEN) {
    const out = p.kdf(key, input, 3);
    return [split(out, 0), split(out, 1), split(out, 2)];
  }
  const prk = p.hmac(key, input);
  const t1 = p.hmac(prk, ONE);
  const scratch = new Uint8Array(KEY_LEN + 1);
  const t2 = next(p, prk, t1, 2, scratch);
  const t3 = next(p, prk, t2, 3, scratch);
  prk.fill(0);
  scratch.fill(0);
  return [t1, t2, t3];
}
