/**
 * Key encodings (src/crypto/keys.ts) against Node's Buffer as the oracle:
 * the core's own base64/hex code must agree byte for byte.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { keyFromBase64, keyFromHex, KeyFormatError, keyToBase64, keyToHex } from '../src/crypto/keys.js';

describe('key encodings', () => {
  it('base64 and hex agree with Buffer for any bytes, and round-trip 32-byte keys', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 70 }), (b) => {
        expect(keyToBase64(b)).toBe(Buffer.from(b).toString('base64'));
        expect(keyToHex(b)).toBe(Buffer.from(b).toString('hex'));
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (k) => {
        expect(keyFromBase64(keyToBase64(k))).toEqual(k);
        expect(keyFromHex(keyToHex(k))).toEqual(k);
        expect(keyFromHex(keyToHex(k).toUpperCase())).toEqual(k);
      }),
      { numRuns: 500 },
    );
  });

  it('encodes a subarray view by its own bytes only', () => {
    const big = Uint8Array.from({ length: 40 }, (_, i) => i);
    expect(keyToBase64(big.subarray(3, 35))).toBe(Buffer.from(big.subarray(3, 35)).toString('base64'));
  });

  it('refuses strings that are not a 32-byte key, without echoing them whole', () => {
    const k = keyToBase64(new Uint8Array(32).fill(7));
    expect(() => keyFromBase64(k.slice(1))).toThrow(KeyFormatError);
    expect(() => keyFromBase64(`${k.slice(0, 42)}B=`)).toThrow(/not a valid WireGuard key/); // non-zero padding bits
    expect(() => keyFromBase64(`${k.slice(0, 20)}!${k.slice(21)}`, 'PublicKey')).toThrow(/^PublicKey: ".{4}…\(44 characters\)"/);
    expect(() => keyFromHex('ab'.repeat(31))).toThrow(/64 hexadecimal characters, got 62/);
    expect(() => keyFromHex('zz'.repeat(32))).toThrow(KeyFormatError);
  });
});
