// Vitest setup (every test file): the @noble provider is loaded on demand (src/crypto/index.ts),
// so load it here when TSGUARD_CRYPTO=noble selects it, as the CLI entry points do.
import { loadCrypto } from '../src/crypto/index.js';

await loadCrypto();
