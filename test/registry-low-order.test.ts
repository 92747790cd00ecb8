import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { getCrypto } from '../src/crypto/index.js';
import { isLowOrderKey, LOW_ORDER_KEYS } from '../src/crypto/keys.js';
import { validatePublicKey } from '../src/hub/registry/validate.js';
import { RegistryError } from '../src/hub/registry/types.js';

const b64 = (k: Uint8Array) => Buffer.from(k).toString('base64');

// Each entry is checked against a DH below; the property test looks for any other key the DH calls low order.
const SMALL_ORDER = LOW_ORDER_KEYS;

/** What the byte comparison replaces: a DH with a clamped scalar gives zero (dh returns null). */
const dhSaysLowOrder = (priv: Uint8Array, key: Uint8Array) => getCrypto().dh(priv, key) === null;

describe('low-order public keys (registry validation)', () => {
  const priv = getCrypto().generatePrivateKey();

  it('every small-order point, with and without bit 255, is low order for both the check and a DH', () => {
    expect(new Set(SMALL_ORDER.map(b64)).size).toBe(7);
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
