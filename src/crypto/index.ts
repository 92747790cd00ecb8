/**
 * Entry point of the crypto layer: picks the provider the rest of tsguard
 * uses and re-exports the pieces.
 *
 * The default is {@link nativeCrypto} (node:crypto, with the data path's
 * ChaCha20-Poly1305 through the native addon into the same OpenSSL) when the
 * addon is built, else {@link nodeCrypto} (`TSGUARD_CRYPTO=node` forces it);
 * the pure-JS {@link nobleCrypto} is used instead when the environment variable
 * `TSGUARD_CRYPTO=noble` is set, or when node:crypto is missing or lacks
 * X25519 / BLAKE2s / ChaCha20-Poly1305 (see {@link nodeCryptoAvailable};
 * node.ts loads node:crypto with `process.getBuiltinModule`, so importing this
 * module never fails on a runtime without it).
 * @module
 */

import type { CryptoProvider } from './provider.js';
import { nobleCrypto } from './noble.js';
import { nativeAeadAvailable, nativeCrypto } from './native.js';
import { nodeCrypto, nodeCryptoAvailable } from './node.js';

export { KEY_LEN, TAG_LEN, MAC_LEN, XNONCE_LEN } from './provider.js';
export type { CryptoProvider } from './provider.js';
export { nobleCrypto } from './noble.js';
export { nodeCrypto, nodeCryptoAvailable } from './node.js';
export { nativeCrypto, nativeAeadAvailable } from './native.js';
export { kdf1, kdf2, kdf3 } from './kdf.js';
export { tai64n, tai64nNow, compareTai64n, TAI64N_LEN, TAI64N_WHITEN_NS } from './tai64n.js';

let current: CryptoProvider | null = null;

/** Read `TSGUARD_CRYPTO` without assuming a `process` global exists. */
function envChoice(): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.['TSGUARD_CRYPTO'];
}

/** The provider chosen by default: see the module documentation. */
function defaultProvider(): CryptoProvider {
  const choice = envChoice();
  if (choice === 'noble' || !nodeCryptoAvailable) return nobleCrypto;
  if (choice === 'node' || !nativeAeadAvailable) return nodeCrypto;
  return nativeCrypto;
}

/**
 * The crypto provider in use: the one last passed to {@link setCrypto}, else
 * node:crypto when available and `TSGUARD_CRYPTO` is not `noble`, else @noble.
 * The default is decided on the first call and then kept.
 */
export function getCrypto(): CryptoProvider {
  if (current === null) current = defaultProvider();
  return current;
}

/**
 * Switch the provider returned by {@link getCrypto}. Pass `null` to go back to
 * the default choice (re-evaluated on the next {@link getCrypto} call). Throws
 * when asked for the node provider on a runtime where it is unavailable.
 */
export function setCrypto(p: CryptoProvider | null): void {
  if (p === nodeCrypto && !nodeCryptoAvailable) {
    throw new Error('setCrypto: node:crypto is not available on this runtime');
  }
  current = p;
}
