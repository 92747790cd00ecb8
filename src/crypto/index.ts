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
 *
 * The @noble provider is not imported here: @noble/curves costs ~30 ms of
 * start-up that the default provider does not need. It registers itself when
 * `./noble.js` is loaded (the package index imports it; so can any caller),
 * and {@link loadCrypto} loads it when it is the one chosen. Entry points
 * call {@link loadCrypto} once; {@link getCrypto} stays synchronous and throws
 * if the chosen @noble provider was never loaded. There is deliberately no
 * top-level await here: it would make `require()` of the package fail.
 * @module
 */

import type { CryptoProvider } from './provider.js';
import { loadedProviders } from './loaded.js';
import { nativeAeadAvailable, nativeCrypto } from './native.js';
import { nodeCrypto, nodeCryptoAvailable } from './node.js';

export { KEY_LEN, TAG_LEN, MAC_LEN, XNONCE_LEN } from './provider.js';
export type { CryptoProvider } from './provider.js';
export { nodeCrypto, nodeCryptoAvailable } from './node.js';
export { nativeCrypto, nativeAeadAvailable, nativeHandshakeAvailable } from './native.js';
export { kdf1, kdf2, kdf3 } from './kdf.js';
export { tai64n, tai64nNow, compareTai64n, TAI64N_LEN, TAI64N_WHITEN_NS } from './tai64n.js';

let current: CryptoProvider | null = null;

/** Read `TSGUARD_CRYPTO` without assuming a `process` global exists. */
function envChoice(): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.['TSGUARD_CRYPTO'];
}

/** Whether the default choice is the @noble provider. */
function nobleChosen(): boolean {
  return envChoice() === 'noble' || !nodeCryptoAvailable;
}

/** The provider chosen by default: see the module documentation. */
function defaultProvider(): CryptoProvider {
  if (nobleChosen()) {
    const noble = loadedProviders.noble;
    if (noble === null) {
      throw new Error(
        `the @noble crypto provider is selected (${nodeCryptoAvailable ? 'TSGUARD_CRYPTO=noble' : 'node:crypto lacks X25519, BLAKE2s or ChaCha20-Poly1305'}) ` +
          'but not loaded: await loadCrypto() before getCrypto(), or import nobleCrypto',
      );
    }
    return noble;
  }
  if (envChoice() === 'node' || !nativeAeadAvailable) return nodeCrypto;
  return nativeCrypto;
}

/**
 * The crypto provider in use: the one last passed to {@link setCrypto}, else
 * node:crypto when available and `TSGUARD_CRYPTO` is not `noble`, else @noble.
 * The default is decided on the first call and then kept.
 * @throws Error when the default is @noble and `./noble.js` was never loaded (see {@link loadCrypto})
 */
export function getCrypto(): CryptoProvider {
  if (current === null) current = defaultProvider();
  return current;
}

/**
 * {@link getCrypto}, after loading the @noble provider's module if it is the
 * default choice and not loaded yet. Entry points await this once at start.
 */
export async function loadCrypto(): Promise<CryptoProvider> {
  if (current === null && nobleChosen() && loadedProviders.noble === null) await import('./noble.js');
  return getCrypto();
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
