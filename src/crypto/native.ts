/**
 * The data-path provider: node:crypto for everything, except ChaCha20-Poly1305
 * seal/open, which go through tsguard's native addon into the same OpenSSL
 * with one reused EVP context — node:crypto creates a Cipher object per
 * packet, which costs several microseconds. Loaded without static Node
 * imports, so the core still loads where there is no addon (then
 * {@link nativeAeadAvailable} is false and the default provider is node:crypto).
 * @module
 */

import { nodeCrypto, nodeCryptoAvailable } from './node.js';
import type { CryptoProvider } from './provider.js';
import { TAG_LEN } from './provider.js';

interface AeadBinding {
  aeadSeal(key: Uint8Array, lo: number, hi: number, plaintext: Uint8Array, out: Uint8Array, outOffset: number): void;
  aeadOpen(key: Uint8Array, lo: number, hi: number, ciphertext: Uint8Array, out: Uint8Array): number;
}

interface NodeLike {
  getBuiltinModule?: (id: string) => unknown;
  env?: Record<string, string | undefined>;
}

function loadAead(): AeadBinding | null {
  try {
    const proc = (globalThis as { process?: NodeLike }).process;
    const mod = proc?.getBuiltinModule?.('node:module') as { createRequire(url: string): (id: string) => unknown } | undefined;
    if (mod === undefined || !nodeCryptoAvailable) return null;
    const override = proc?.env?.['TSGUARD_NATIVE'];
    const path = override || decodeURIComponent(new URL('../../build/Release/tsguard_native.node', import.meta.url).pathname);
    const b = mod.createRequire(import.meta.url)(path) as Partial<AeadBinding>;
    if (typeof b.aeadSeal !== 'function' || typeof b.aeadOpen !== 'function') return null;
    return selfTest(b as AeadBinding) ? (b as AeadBinding) : null;
  } catch {
    return null;
  }
}

/** Seal and open a fixed message with a counter beyond 2^32 and compare with node:crypto. */
function selfTest(b: AeadBinding): boolean {
  const key = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 1);
  const pt = Uint8Array.from({ length: 45 }, (_, i) => i);
  const out = new Uint8Array(pt.length + TAG_LEN);
  b.aeadSeal(key, 0x01020304, 5, pt, out, 0);
  const ref = nodeCrypto.seal(key, 0x01020304, 5, pt);
  if (out.length !== ref.length || out.some((x, i) => x !== ref[i])) return false;
  const back = new Uint8Array(pt.length);
  if (b.aeadOpen(key, 0x01020304, 5, out, back) !== pt.length || back.some((x, i) => x !== pt[i])) return false;
  out[3]! ^= 1;
  return b.aeadOpen(key, 0x01020304, 5, out, back) === -1;
}

const binding = loadAead();

/** True when the native AEAD loaded and passed its self-test. */
export const nativeAeadAvailable: boolean = binding !== null;

function need(): AeadBinding {
  if (binding === null) throw new Error('the native AEAD is not available (build the addon with "npm ci" or use TSGUARD_CRYPTO=node)');
  return binding;
}

/**
 * node:crypto, with ChaCha20-Poly1305 through the native addon. Additional
 * data is not supported by the native path; calls with AD (the handshake)
 * use node:crypto.
 */
export const nativeCrypto: CryptoProvider = {
  ...nodeCrypto,
  name: 'native',

  seal(key, counterLo, counterHi, plaintext, ad) {
    if (ad !== undefined && ad.length > 0) return nodeCrypto.seal(key, counterLo, counterHi, plaintext, ad);
    const out = new Uint8Array(plaintext.length + TAG_LEN);
    need().aeadSeal(key, counterLo >>> 0, counterHi >>> 0, plaintext, out, 0);
    return out;
  },

  sealInto(key, counterLo, counterHi, plaintext, out, outOffset) {
    need().aeadSeal(key, counterLo >>> 0, counterHi >>> 0, plaintext, out, outOffset);
  },

  open(key, counterLo, counterHi, ciphertext, ad) {
    if (ad !== undefined && ad.length > 0) return nodeCrypto.open(key, counterLo, counterHi, ciphertext, ad);
    if (ciphertext.length < TAG_LEN) return null;
    const out = new Uint8Array(ciphertext.length - TAG_LEN);
    return need().aeadOpen(key, counterLo >>> 0, counterHi >>> 0, ciphertext, out) < 0 ? null : out;
  },
};
