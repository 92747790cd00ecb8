/**
 * Encoding and validation of 32-byte WireGuard keys (base64 as in `wg`, hex as
 * in the UAPI), with error messages that say what was wrong and how to fix it.
 * Plain `Uint8Array` code (no `Buffer`), so the core runs on any JavaScript
 * runtime; the base64 encoder is on the handshake path (peers are looked up
 * by their base64 key).
 * @module
 */

import { KEY_LEN } from './provider.js';

/** Thrown when a key string cannot be decoded into a 32-byte key. */
export class KeyFormatError extends Error {
  override name = 'KeyFormatError';
}

const BASE64_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const HEX_KEY = /^[0-9a-fA-F]{64}$/;

/**
 * Decode a base64 key as printed by `wg genkey` / `wg pubkey` (44 characters
 * ending in `=`). `what` names the key in the error ("PublicKey", "--public-key").
 */
export function keyFromBase64(text: string, what = 'key'): Uint8Array {
  const s = text.trim();
  if (!BASE64_KEY.test(s)) {
    throw new KeyFormatError(
      `${what}: "${redact(s)}" is not a valid WireGuard key (expected 44 base64 characters ending in "=", as printed by "wg genkey" or "wg pubkey")`,
    );
  }
  return fromBase64(s);
}

/** Decode a 64-character hex key (UAPI format). */
export function keyFromHex(text: string, what = 'key'): Uint8Array {
  if (!HEX_KEY.test(text)) {
    throw new KeyFormatError(`${what}: expected 64 hexadecimal characters, got ${text.length} characters`);
  }
  const out = new Uint8Array(text.length >>> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
  return out;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_VALUE = new Uint8Array(128);
for (let i = 0; i < B64.length; i++) B64_VALUE[B64.charCodeAt(i)] = i;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Char codes of the base64 alphabet. */
const B64_CODES = Array.from({ length: 64 }, (_, i) => B64[i]!.charCodeAt(0));
/** Bytes encoded per String.fromCharCode call (its argument count stays small). */
const B64_CHUNK = 3 * 1024;

/**
 * Encode a key as base64 (wg's format). Any byte length works (padded with `=`).
 * The result is one flat string (not a chain of concatenations): peers keep it as their name.
 */
export function keyToBase64(key: Uint8Array): string {
  if (key.length > B64_CHUNK) {
    const parts: string[] = [];
    for (let o = 0; o < key.length; o += B64_CHUNK) parts.push(keyToBase64(key.subarray(o, o + B64_CHUNK)));
    return parts.join('');
  }
  const n = key.length;
  const codes = new Array<number>(Math.ceil(n / 3) * 4);
  let i = 0;
  let o = 0;
  for (; i + 2 < n; i += 3) {
    const v = (key[i]! << 16) | (key[i + 1]! << 8) | key[i + 2]!;
    codes[o++] = B64_CODES[v >>> 18]!;
    codes[o++] = B64_CODES[(v >>> 12) & 63]!;
    codes[o++] = B64_CODES[(v >>> 6) & 63]!;
    codes[o++] = B64_CODES[v & 63]!;
  }
  if (i < n) {
    const v = (key[i]! << 16) | ((i + 1 < n ? key[i + 1]! : 0) << 8);
    codes[o++] = B64_CODES[v >>> 18]!;
    codes[o++] = B64_CODES[(v >>> 12) & 63]!;
    codes[o++] = i + 1 < n ? B64_CODES[(v >>> 6) & 63]! : 61; // '='
    codes[o++] = 61;
  }
  return String.fromCharCode.apply(null, codes);
}

/** Decode base64 that {@link BASE64_KEY} (or another caller) already validated. */
function fromBase64(s: string): Uint8Array {
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 61) end--; // '='
  const out = new Uint8Array((end * 3) >>> 2);
  let o = 0;
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < end; i++) {
    acc = (acc << 6) | B64_VALUE[s.charCodeAt(i)]!;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >>> bits) & 0xff;
    }
  }
  return out;
}

/** Encode bytes as lowercase hex (UAPI format for keys). */
export function keyToHex(key: Uint8Array): string {
  let out = '';
  for (let i = 0; i < key.length; i++) out += HEX[key[i]!]!;
  return out;
}

/** True when every byte of `key` is zero. */
export function isZeroKey(key: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < key.length; i++) acc |= key[i]!;
  return acc === 0;
}

/** Constant-time equality of two byte arrays (false when lengths differ). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i]! ^ b[i]!;
  return acc === 0;
}

/** Never echo a whole (possibly secret) key string in an error. */
function redact(s: string): string {
  if (s.length <= 8) return s;
  return `${s.slice(0, 4)}…(${s.length} characters)`;
}

/**
 * The X25519 u-coordinates of small order once bit 255 is masked (RFC 7748): 0, 1, the two
 * order-8 points, p-1, and the non-canonical p and p+1. With any clamped scalar (a multiple of 8)
 * these and only these give the all-zero shared secret; comparing bytes avoids a ladder per key.
 */
export const LOW_ORDER_KEYS: readonly Uint8Array[] = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map((h) => keyFromHex(h, 'small-order point'));

/** True if the 32-byte X25519 public key `key` is a small-order point (a DH with it yields zero). */
export function isLowOrderKey(key: Uint8Array): boolean {
  return LOW_ORDER_KEYS.some((p) => {
    for (let i = 0; i < 31; i++) if (key[i] !== p[i]) return false;
    return (key[31]! & 0x7f) === p[31];
  });
}
