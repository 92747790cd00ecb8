/**
 * Entry point of the crypto layer: the provider the rest of tsguard uses,
 * and the pieces re-exported.
 *
 * Choice, made once by {@link loadCrypto} (entry points await it at start):
 * - `TSGUARD_CRYPTO=noble`, or node:crypto missing or lacking X25519 /
 *   BLAKE2s / ChaCha20-Poly1305 (see {@link nodeCryptoAvailable}): the
 *   pure-JS {@link nobleCrypto}, loaded on demand;
 * - `TSGUARD_CRYPTO=node`: {@link nodeCrypto};
 * - otherwise the native provider when the caller passes one (the shell's
 *   `loadNativeCrypto` from `io/native.ts`: this layer never loads the
 *   addon), else {@link nodeCrypto}.
 * {@link getCrypto} is synchronous: without {@link loadCrypto} it picks node
 * or @noble by the same rules (and throws when @noble is chosen but was
 * never loaded). node.ts reaches node:crypto through
 * `process.getBuiltinModule`, so importing this module never fails on a
 * runtime without it.
 *
 * The @noble provider is not imported here: @noble/curves adds to the start
 * time of every CLI command, and the default provider does not need it. It
 * registers itself when `./noble.js` is loaded (the package index imports it;
 * so can any caller). There is deliberately no top-level await here: it
 * would make `require()` of the package fail.
 * @module
 */

import type { CryptoProvider } from './provider.js';
import { loadedProviders } from './loaded.js';
import { nodeCrypto, nodeCryptoAvailable } from './node.js';

export { KEY_LEN, TAG_LEN, MAC_LEN, XNONCE_LEN } from './provider.js';
export type { CryptoProvider } from './provider.js';
export { nodeCrypto, nodeCryptoAvailable } from './node.js';
export { kdf1, kdf2, kdf3 } from './kdf.js';
export { tai64n, tai64nNow, compareTai64n, TAI64N_LEN, TAI64N_WHITEN_NS } from './tai64n.js';

let current: CryptoProvider | null = null;

/** Read `TSGUARD_CRYPTO` without assuming a `process` global exists. */
function envChoice(): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.['TSGUARD_CRYPTO'];
}

/** Whether the choice is the @noble provider. */
function nobleChosen(): boolean {
  return envChoice() === 'noble' || !nodeCryptoAvailable;
}

/** The provider chosen without a native one: see the module documentation. */
function defaultProvider(): CryptoProvider {
  if (!nobleChosen()) return nodeCrypto;
  const noble = loadedProviders.noble;
  if (noble === null) {
    throw new Error(
      `the @noble crypto provider is selected (${nodeCryptoAvailable ? 'TSGUARD_CRYPTO=noble' : 'node:crypto lacks X25519, BLAKE2s or ChaCha20-Poly1305'}) ` +
        'but not loaded: await loadCrypto() before getCrypto(), or import nobleCrypto',
    );
  }
  return noble;
}

/**
 * The crypto provider in use: the one chosen by {@link loadCrypto} or last
 * passed to {@link setCrypto}, else node:crypto when available and
 * `TSGUARD_CRYPTO` is not `noble`, else @noble. Decided on the first call
 * and then kept.
 * @throws Error when the choice is @noble and `./noble.js` was never loaded (see {@link loadCrypto})
 */
export function getCrypto(): CryptoProvider {
  if (current === null) current = defaultProvider();
  return current;
}

/**
 * Choose the provider (see the module documentation) unless one is already
 * in use, loading @noble's module if it is the one chosen, and return it.
 * @param native the native provider's factory, from the shell (`loadNativeCrypto`); returns null when unavailable
 */
export async function loadCrypto(native?: () => CryptoProvider | null): Promise<CryptoProvider> {
  if (current !== null) return current;
  if (nobleChosen()) {
    if (loadedProviders.noble === null) await import('./noble.js');
  } else if (envChoice() !== 'node' && native !== undefined) {
    const p = native();
    if (p !== null) current = p;
  }
  return getCrypto();
}

/**
 * Switch the provider returned by {@link getCrypto}. Pass `null` to go back to
 * the default choice (made again on the next {@link getCrypto} or
 * {@link loadCrypto} call). Throws when asked for the node provider on a
 * runtime where it is unavailable.
 */
export function setCrypto(p: CryptoProvider | null): void {
  if (p === nodeCrypto && !nodeCryptoAvailable) {
    throw new Error('setCrypto: node:crypto is not available on this runtime');
  }
  current = p;
}
