/**
 * Wire formats of the four WireGuard message types (all little-endian).
 *
 * ```
 * initiation (148): type u32 | sender u32 | ephemeral 32 | static 32+16 | timestamp 12+16 | mac1 16 | mac2 16
 * response    (92): type u32 | sender u32 | receiver u32 | ephemeral 32 | empty 0+16 | mac1 16 | mac2 16
 * cookie      (64): type u32 | receiver u32 | nonce 24 | cookie 16+16
 * transport (≥32): type u32 | receiver u32 | counter u64 | ciphertext (padded plaintext + 16)
 * ```
 * @module
 */

import {
  COOKIE_REPLY_SIZE,
  INITIATION_SIZE,
  MAC_SIZE,
  MSG_COOKIE_REPLY,
  MSG_INITIATION,
  MSG_RESPONSE,
  RESPONSE_SIZE,
} from './constants.js';

/** Offsets inside an initiation message. */
export const INIT = {
  sender: 4,
  ephemeral: 8,
  static: 40,
  timestamp: 88,
  mac1: 116,
  mac2: 132,
} as const;

/** Offsets inside a response message. */
export const RESP = {
  sender: 4,
  receiver: 8,
  ephemeral: 12,
  empty: 44,
  mac1: 60,
  mac2: 76,
} as const;

/** Offsets inside a cookie reply. */
export const COOKIE = {
  receiver: 4,
  nonce: 8,
  cookie: 32,
} as const;

/** Read a little-endian u32. */
export function readU32(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}

/** Write a little-endian u32. */
export function writeU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}

/** Build an initiation message without MACs. */
export function encodeInitiation(
  sender: number,
  ephemeral: Uint8Array,
  encryptedStatic: Uint8Array,
  encryptedTimestamp: Uint8Array,
): Uint8Array {
  const m = new Uint8Array(INITIATION_SIZE);
  writeU32(m, 0, MSG_INITIATION);
  writeU32(m, INIT.sender, sender);
  m.set(ephemeral, INIT.ephemeral);
  m.set(encryptedStatic, INIT.static);
  m.set(encryptedTimestamp, INIT.timestamp);
  return m;
}

/** Build a response message without MACs. */
export function encodeResponse(
  sender: number,
  receiver: number,
  ephemeral: Uint8Array,
  encryptedEmpty: Uint8Array,
): Uint8Array {
  const m = new Uint8Array(RESPONSE_SIZE);
  writeU32(m, 0, MSG_RESPONSE);
  writeU32(m, RESP.sender, sender);
  writeU32(m, RESP.receiver, receiver);
  m.set(ephemeral, RESP.ephemeral);
  m.set(encryptedEmpty, RESP.empty);
  return m;
}

/** Build a cookie reply. */
export function encodeCookieReply(receiver: number, nonce: Uint8Array, encryptedCookie: Uint8Array): Uint8Array {
  const m = new Uint8Array(COOKIE_REPLY_SIZE);
  writeU32(m, 0, MSG_COOKIE_REPLY);
  writeU32(m, COOKIE.receiver, receiver);
  m.set(nonce, COOKIE.nonce);
  m.set(encryptedCookie, COOKIE.cookie);
  return m;
}

/** The part of a handshake message covered by mac1 (everything before mac1). */
export function mac1Input(m: Uint8Array): Uint8Array {
  return m.subarray(0, m.length - 2 * MAC_SIZE);
}

/** The part covered by mac2 (everything before mac2). */
export function mac2Input(m: Uint8Array): Uint8Array {
  return m.subarray(0, m.length - MAC_SIZE);
}

/** The mac1 field of a handshake message. */
export function mac1Of(m: Uint8Array): Uint8Array {
  return m.subarray(m.length - 2 * MAC_SIZE, m.length - MAC_SIZE);
}

/** The mac2 field of a handshake message. */
export function mac2Of(m: Uint8Array): Uint8Array {
  return m.subarray(m.length - MAC_SIZE);
}
