import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { getCrypto } from '../src/crypto/index.js';
import { isLowOrderKey, validatePublicKey } from '../src/hub/registry/validate.js';
import { RegistryError } from '../src/hub/registry/types.js';

const hex = (h: string) => Uint8Array.from(Buffer.from(h, 'hex'));
const b64 = (k: Uint8Array) => Buffer.from(k).toString('base64');

// Small-order u-coordinates after masking bit 255, written out independently of the module.
const SMALL_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map(hex);

/** What the byte comparison replaces: a DH with a clamped scalar gives zero (dh returns null). */
const dhSaysLowOrder = (priv: Uint8Array, key: Uint8Array) => getCrypto().dh(priv, key) === null;

describe('low-order public keys (registry validation)', () => {
  const priv = getCrypto().generatePrivateKey();

  it('every small-order point, with and without bit 255, is low order for both the check and a DH', () => {
    for (const p of SMALL_ORDER) {
      for (const k of [p, Uint8Array.from(p, (b, i) => (i === 31 ? b | 0x80 : b))]) {
        expect(isLowOrderKey(k)).toBe(true);
        expect(dhSaysLowOrder(priv, k)).toBe(true);
      }
    }
  });

  it('agrees with a DH on random keys and on one-byte changes of the small-order points', () => {
    const near = fc.tuple(fc.constantFrom(...SMALL_ORDER), fc.integer({ min: 0, max: 31 }), fc.integer({ min: 1, max: 255 })).map(([p, i, x]) => {
      const k = Uint8Array.from(p);
      k[i] = k[i]! ^ x;
      return k;
    });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }), near), (k) => {
        expect(isLowOrderKey(k)).toBe(dhSaysLowOrder(priv, k));
      }),
      { numRuns: 400 },
    );
  });

  it('validatePublicKey refuses them with INVALID_KEY and keeps a real key', () => {
    for (const p of SMALL_ORDER.slice(1)) {
      expect(() => validatePublicKey(b64(p))).toThrow(RegistryError);
      expect(() => validatePublicKey(b64(p))).toThrow(/low-order point/);
    }
    const pub = b64(getCrypto().publicKey(getCrypto().generatePrivateKey()));
    expect(validatePublicKey(pub)).toBe(pub);
  });
});
