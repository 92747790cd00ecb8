/**
 * XChaCha20-Poly1305 for cookie replies, shared by every provider (node:crypto
 * has no XChaCha): @noble/ciphers.
 * @module
 */

import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { TAG_LEN } from './provider.js';

/** XChaCha20-Poly1305 seal: ciphertext ‖ tag. */
export function xseal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  return xchacha20poly1305(key, nonce, ad).encrypt(plaintext);
}

/** XChaCha20-Poly1305 open: the plaintext, or null if it does not authenticate. */
export function xopen(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array | null {
  if (ciphertext.length < TAG_LEN) return null;
  try {
    return xchacha20poly1305(key, nonce, ad).decrypt(ciphertext);
  } catch {
    return null;
  }
}
