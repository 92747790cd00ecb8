/**
 * Providers whose modules are loaded on demand register themselves here when
 * they are evaluated, so that `./index.js` can hand them out without importing
 * them statically (@noble/curves alone adds ~30 ms to every start of the CLI,
 * and the default provider does not need it).
 * @internal
 * @module
 */

import type { CryptoProvider } from './provider.js';

/** Set by `./noble.js` when it is evaluated. */
export const loadedProviders: { noble: CryptoProvider | null } = { noble: null };
