// Vitest setup (every test file): choose the crypto provider as the CLI entry points do — the
// native one (injected from the shell's addon loader) unless TSGUARD_CRYPTO says node or noble
// (@noble is loaded on demand, see src/crypto/index.ts).
import { loadCrypto } from '../src/crypto/index.js';
import { loadNativeCrypto } from '../src/io/native.js';

await loadCrypto(loadNativeCrypto);
