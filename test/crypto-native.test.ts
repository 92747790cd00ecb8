/**
 * The native ChaCha20-Poly1305 path against node:crypto (the oracle), and the default choice.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { getCrypto } from '../src/crypto/index.js';
import { nativeAeadAvailable, nativeCrypto } from '../src/crypto/native.js';
import { nodeCrypto } from '../src/crypto/node.js';

describe('native AEAD', () => {
  it('is built and is the default provider', () => {
    expect(nativeAeadAvailable).toBe(true);
    if (process.env.TSGUARD_CRYPTO === undefined) expect(getCrypto().name).toBe('native');
  });

  it('seals and opens exactly like node:crypto, for any key, counter and length', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.nat({ max: 0xffffffff }),
        fc.nat({ max: 0xffffffff }),
        fc.uint8Array({ minLength: 0, maxLength: 1600 }),
        fc.nat({ max: 40 }),
        (key, lo, hi, pt, off) => {
          const ref = nodeCrypto.seal(key, lo, hi, pt);
          expect(nativeCrypto.seal(key, lo, hi, pt)).toEqual(ref);
          const out = new Uint8Array(off + pt.length + 16);
          nativeCrypto.sealInto(key, lo, hi, pt, out, off);
          expect(out.subarray(off)).toEqual(ref);
          expect(nativeCrypto.open(key, lo, hi, ref)).toEqual(pt);
          if (ref.length > 0) {
            const bad = ref.slice();
            bad[bad.length - 1]! ^= 0x80;
            expect(nativeCrypto.open(key, lo, hi, bad)).toBeNull();
            expect(nativeCrypto.open(key, lo ^ 1, hi, ref)).toBeNull();
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('rejects short input and bad arguments clearly', () => {
    const key = new Uint8Array(32);
    expect(nativeCrypto.open(key, 0, 0, new Uint8Array(15))).toBeNull();
    expect(() => nativeCrypto.sealInto(key, 0, 0, new Uint8Array(10), new Uint8Array(20), 0)).toThrow(/too small/);
    expect(() => nativeCrypto.sealInto(new Uint8Array(31), 0, 0, new Uint8Array(1), new Uint8Array(40), 0)).toThrow(/32-byte/);
  });

  it('uses node:crypto when additional data is given (handshake messages)', () => {
    const key = new Uint8Array(32).fill(9);
    const ad = new Uint8Array(32).fill(3);
    const pt = new Uint8Array(12).fill(1);
    const ct = nativeCrypto.seal(key, 0, 0, pt, ad);
    expect(ct).toEqual(nodeCrypto.seal(key, 0, 0, pt, ad));
    expect(nativeCrypto.open(key, 0, 0, ct, ad)).toEqual(pt);
  });
});

describe('X25519 key-object cache (node and native providers)', () => {
  it('never serves a key array that was rewritten in place from the cache', () => {
    const k = nodeCrypto.generatePrivateKey();
    const peer = nodeCrypto.publicKey(nodeCrypto.generatePrivateKey());
    const pub1 = nodeCrypto.publicKey(k);
    const dh1 = nodeCrypto.dh(k, peer);
    const other = nodeCrypto.generatePrivateKey();
    k.set(other); // same array, new bytes
    expect(nodeCrypto.publicKey(k)).toEqual(nodeCrypto.publicKey(other.slice()));
    expect(nodeCrypto.publicKey(k)).not.toEqual(pub1);
    expect(nodeCrypto.dh(k, peer)).toEqual(nodeCrypto.dh(other.slice(), peer));
    expect(nodeCrypto.dh(k, peer)).not.toEqual(dh1);
    k.fill(0); // a zeroed key is not a usable private key any more: no stale result either
    expect(nodeCrypto.publicKey(k)).toEqual(nodeCrypto.publicKey(new Uint8Array(32)));
  });
});
