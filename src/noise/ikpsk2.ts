/**
 * The Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake as pure functions over a
 * chaining key / hash pair, parameterised by prologue and payloads so that the
 * same code reproduces both the Cacophony test vectors and WireGuard.
 *
 * Where WireGuard computes a key with KDF1 because the following step
 * overwrites the cipher key anyway, the output is identical to Noise's
 * MixKey; we use the cheaper KDF1 exactly where the whitepaper does.
 * @module
 */

import type { CryptoProvider } from '../crypto/provider.js';
import { kdf1, kdf2, kdf3 } from '../crypto/kdf.js';

/** Chaining key and handshake hash of a Noise symmetric state. */
export interface NoiseState {
  /** Chaining key. */
  ck: Uint8Array;
  /** Handshake hash. */
  h: Uint8Array;
}

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();

/**
 * Initial state for a protocol name and prologue, with the responder's static
 * public key mixed in (the IK pre-message).
 */
export function initialState(
  p: CryptoProvider,
  protocolName: string,
  prologue: Uint8Array,
  responderStatic: Uint8Array,
): NoiseState {
  const name = encoder.encode(protocolName);
  let h: Uint8Array;
  if (name.length <= 32) {
    h = new Uint8Array(32);
    h.set(name);
  } else {
    h = p.hash(name);
  }
  const ck = h;
  h = p.hash(h, prologue);
  h = p.hash(h, responderStatic);
  return { ck, h };
}

/** Initial state derived once from chaining key and hash already computed. */
export function cloneState(s: NoiseState): NoiseState {
  return { ck: s.ck, h: s.h };
}

function encryptAndHash(p: CryptoProvider, st: NoiseState, key: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const ct = p.seal(key, 0, 0, plaintext, st.h);
  st.h = p.hash(st.h, ct);
  return ct;
}

function decryptAndHash(p: CryptoProvider, st: NoiseState, key: Uint8Array, ciphertext: Uint8Array): Uint8Array | null {
  const pt = p.open(key, 0, 0, ciphertext, st.h);
  if (pt === null) return null;
  st.h = p.hash(st.h, ciphertext);
  return pt;
}

/** Initiator's first message (`-> e, es, s, ss`, payload). */
export interface MessageA {
  /** Initiator ephemeral public key (32 B). */
  ephemeral: Uint8Array;
  /** Encrypted initiator static public key (48 B). */
  encryptedStatic: Uint8Array;
  /** Encrypted payload (payload length + 16 B). */
  encryptedPayload: Uint8Array;
}

/**
 * Write message A. `staticStatic` is DH(initiator static, responder static),
 * which WireGuard precomputes per peer. Returns null if a DH result is zero.
 */
export function writeMessageA(
  p: CryptoProvider,
  st: NoiseState,
  ephemeralPrivate: Uint8Array,
  ephemeralPublic: Uint8Array,
  staticPublic: Uint8Array,
  responderStatic: Uint8Array,
  staticStatic: Uint8Array,
  payload: Uint8Array,
): MessageA | null {
  st.h = p.hash(st.h, ephemeralPublic);
  st.ck = kdf1(p, st.ck, ephemeralPublic);
  const es = p.dh(ephemeralPrivate, responderStatic);
  if (es === null) return null;
  let key: Uint8Array;
  [st.ck, key] = kdf2(p, st.ck, es);
  const encryptedStatic = encryptAndHash(p, st, key, staticPublic);
  [st.ck, key] = kdf2(p, st.ck, staticStatic);
  const encryptedPayload = encryptAndHash(p, st, key, payload);
  return { ephemeral: ephemeralPublic, encryptedStatic, encryptedPayload };
}

/** Result of reading message A. */
export interface ReadA {
  /** The initiator's static public key. */
  initiatorStatic: Uint8Array;
  /** Decrypted payload (WireGuard: the TAI64N timestamp). */
  payload: Uint8Array;
}

/**
 * Read message A as the responder, first part (`e, es, s`): returns the
 * initiator's static key, or null on failure. `es` is DH(our static, the
 * initiator's ephemeral) when the caller computed it already, else computed
 * here.
 */
export function readMessageAStatic(
  p: CryptoProvider,
  st: NoiseState,
  staticPrivate: Uint8Array,
  ephemeral: Uint8Array,
  encryptedStatic: Uint8Array,
  es: Uint8Array | null = p.dh(staticPrivate, ephemeral),
): Uint8Array | null {
  st.h = p.hash(st.h, ephemeral);
  st.ck = kdf1(p, st.ck, ephemeral);
  if (es === null) return null;
  let key: Uint8Array;
  [st.ck, key] = kdf2(p, st.ck, es);
  return decryptAndHash(p, st, key, encryptedStatic);
}

/**
 * Read message A as the responder, second part (`ss`, payload) after
 * {@link readMessageAStatic}: `ss` is DH(our static, the initiator's
 * static). Returns the payload or null on failure.
 */
export function readMessageAPayload(p: CryptoProvider, st: NoiseState, ss: Uint8Array, encryptedPayload: Uint8Array): Uint8Array | null {
  const [ck, key] = kdf2(p, st.ck, ss);
  st.ck = ck;
  return decryptAndHash(p, st, key, encryptedPayload);
}

/**
 * Read message A as the responder. `resolveStaticStatic` is called with the
 * decrypted initiator static key and returns DH(our static, that key) — or
 * null to refuse an unknown peer. Returns null on any failure.
 */
export function readMessageA(
  p: CryptoProvider,
  st: NoiseState,
  staticPrivate: Uint8Array,
  msg: MessageA,
  resolveStaticStatic: (initiatorStatic: Uint8Array) => Uint8Array | null,
): ReadA | null {
  const initiatorStatic = readMessageAStatic(p, st, staticPrivate, msg.ephemeral, msg.encryptedStatic);
  if (initiatorStatic === null) return null;
  const ss = resolveStaticStatic(initiatorStatic);
  if (ss === null) return null;
  const payload = readMessageAPayload(p, st, ss, msg.encryptedPayload);
  if (payload === null) return null;
  return { initiatorStatic, payload };
}

/** Responder's message (`<- e, ee, se, psk`, payload). */
export interface MessageB {
  /** Responder ephemeral public key (32 B). */
  ephemeral: Uint8Array;
  /** Encrypted payload (payload length + 16 B; WireGuard: 16 B, empty payload). */
  encryptedPayload: Uint8Array;
}

/** Write message B as the responder. Returns null if a DH result is zero. */
export function writeMessageB(
  p: CryptoProvider,
  st: NoiseState,
  ephemeralPrivate: Uint8Array,
  ephemeralPublic: Uint8Array,
  initiatorEphemeral: Uint8Array,
  initiatorStatic: Uint8Array,
  psk: Uint8Array,
  payload: Uint8Array = EMPTY,
): MessageB | null {
  st.h = p.hash(st.h, ephemeralPublic);
  st.ck = kdf1(p, st.ck, ephemeralPublic);
  const ee = p.dh(ephemeralPrivate, initiatorEphemeral);
  if (ee === null) return null;
  st.ck = kdf1(p, st.ck, ee);
  const se = p.dh(ephemeralPrivate, initiatorStatic);
  if (se === null) return null;
  st.ck = kdf1(p, st.ck, se);
  const [ck, tau, key] = kdf3(p, st.ck, psk);
  st.ck = ck;
  st.h = p.hash(st.h, tau);
  const encryptedPayload = encryptAndHash(p, st, key, payload);
  return { ephemeral: ephemeralPublic, encryptedPayload };
}

/** Read message B as the initiator. Returns the payload or null on failure. */
export function readMessageB(
  p: CryptoProvider,
  st: NoiseState,
  ephemeralPrivate: Uint8Array,
  staticPrivate: Uint8Array,
  msg: MessageB,
  psk: Uint8Array,
): Uint8Array | null {
  st.h = p.hash(st.h, msg.ephemeral);
  st.ck = kdf1(p, st.ck, msg.ephemeral);
  const ee = p.dh(ephemeralPrivate, msg.ephemeral);
  if (ee === null) return null;
  st.ck = kdf1(p, st.ck, ee);
  const se = p.dh(staticPrivate, msg.ephemeral);
  if (se === null) return null;
  st.ck = kdf1(p, st.ck, se);
  const [ck, tau, key] = kdf3(p, st.ck, psk);
  st.ck = ck;
  st.h = p.hash(st.h, tau);
  return decryptAndHash(p, st, key, msg.encryptedPayload);
}

/**
 * Noise Split: the two transport keys. The initiator sends with the first
 * and receives with the second; the responder the other way round.
 */
export function split(p: CryptoProvider, st: NoiseState): [Uint8Array, Uint8Array] {
  return kdf2(p, st.ck, EMPTY);
}
