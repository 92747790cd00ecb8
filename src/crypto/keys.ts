/**
 * Encoding and validation of 32-byte WireGuard keys (base64 as in `wg`, hex as
 * in the UAPI), with error messages that say what was wrong and how to fix it.
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
  return new Uint8Array(Buffer.from(s, 'base64'));
}

/** Decode a 64-character hex key (UAPI format). */
export function keyFromHex(text: string, what = 'key'): Uint8Array {
  if (!HEX_KEY.test(text)) {
    throw new KeyFormatError(`${what}: expected 64 hexadecimal characters, got ${text.length} characters`);
  }
  return new Uint8Array(Buffer.from(text, 'hex'));
}

/** Encode a key as base64 (wg's format). */
export function keyToBase64(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('base64');
}

/** Encode a key as lowercase hex (UAPI format). */
export function keyToHex(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex');
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

/** Check that `key` is a 32-byte array; throws {@link KeyFormatError} otherwise. */
export function assertKey(key: Uint8Array, what = 'key'): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_LEN) {
    throw new KeyFormatError(`${what}: expected ${KEY_LEN} bytes`);
  }
}

/** Never echo a whole (possibly secret) key string in an error. */
function redact(s: string): string {
  if (s.length <= 8) return s;
  return `${s.slice(0, 4)}…(${s.length} characters)`;
}
