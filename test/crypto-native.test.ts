/**
 * The native provider (ChaCha20-Poly1305, X25519, BLAKE2s, HMAC, KDF and MAC
 * through the addon) against node:crypto and @noble (the oracles), and the
 * default choice.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { getCrypto } from '../src/crypto/index.js';
import { kdf1, kdf2, kdf3 } from '../src/crypto/kdf.js';
import { createNativeCrypto, type NativeCryptoBinding, type NativeCryptoProvider } from '../src/crypto/native.js';
import { loadNative, loadNativeCrypto } from '../src/io/native.js';
import { nobleCrypto } from '../src/crypto/noble.js';
import { nodeCrypto } from '../src/crypto/node.js';

const nativeCrypto = loadNativeCrypto() as NativeCryptoProvider;

describe('native AEAD', () => {
  it('is built and is the provider the entry points choose', () => {
    expect(nativeCrypto?.name).toBe('native');
    if (process.env.TSGUARD_CRYPTO === undefined) expect(getCrypto()).toBe(nativeCrypto);
  });

  it('is refused when the addon lacks a function or a function disagrees with node:crypto', () => {
    const addon = loadNative();
    expect(createNativeCrypto({ ...addon, aeadOpen: undefined })).toBeNull();
    const wrong: NativeCryptoBinding = {
      ...addon,
      aeadSeal: (key, lo, hi, pt, out, off, ad) => {
        addon.aeadSeal!(key, lo, hi, pt, out, off, ad);
        out[off]! ^= 1;
      },
    };
    expect(createNativeCrypto(wrong)).toBeNull();
    // Wrong handshake primitives only lose the native handshake; the AEAD stays.
    const p = createNativeCrypto({ ...addon, blake2s: (out: Uint8Array) => void out.fill(0) });
    expect(p?.name).toBe('native');
    expect(p?.nativeHandshake).toBe(false);
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

  it('seals and opens with additional data (handshake messages) exactly like node:crypto', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 0, maxLength: 64 }),
        fc.uint8Array({ minLength: 0, maxLength: 64 }),
        (key, pt, ad) => {
          const ct = nativeCrypto.seal(key, 0, 0, pt, ad);
          expect(ct).toEqual(nodeCrypto.seal(key, 0, 0, pt, ad));
          expect(nativeCrypto.open(key, 0, 0, ct, ad)).toEqual(pt);
          const otherAd = ad.length > 0 ? ad.map((x, i) => (i === 0 ? x ^ 1 : x)) : Uint8Array.of(1);
          expect(nativeCrypto.open(key, 0, 0, ct, otherAd)).toBeNull();
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('native handshake primitives', () => {
  it('are built and pass their load-time self-test', () => {
    expect(nativeCrypto.nativeHandshake).toBe(true);
  });

  it('hash, HMAC, KDF and MAC agree with node:crypto and @noble for any input', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 0, maxLength: 300 }),
        fc.uint8Array({ minLength: 0, maxLength: 40 }),
        (key, data, more) => {
          expect(nativeCrypto.hash(data, more)).toEqual(nobleCrypto.hash(data, more));
          expect(nativeCrypto.hmac(key, data)).toEqual(nobleCrypto.hmac(key, data));
          expect(nativeCrypto.mac(key, data)).toEqual(nobleCrypto.mac(key, data));
          expect(nativeCrypto.mac(key.subarray(0, 16), data)).toEqual(nobleCrypto.mac(key.subarray(0, 16), data));
          // The one-call KDF against the HMAC construction (the @noble provider has no kdf()).
          expect(kdf1(nativeCrypto, key, data)).toEqual(kdf1(nobleCrypto, key, data));
          expect(kdf2(nativeCrypto, key, data)).toEqual(kdf2(nobleCrypto, key, data));
          expect(kdf3(nativeCrypto, key, data)).toEqual(kdf3(nobleCrypto, key, data));
        },
      ),
      { numRuns: 200 },
    );
    // HMAC keys outside 1–64 bytes go to node:crypto.
    const long = new Uint8Array(100).fill(7);
    expect(nativeCrypto.hmac(long, long)).toEqual(nobleCrypto.hmac(long, long));
    expect(nativeCrypto.hmac(new Uint8Array(0), long)).toEqual(nobleCrypto.hmac(new Uint8Array(0), long));
  });

  it('HMAC and MAC agree with @noble for every key length the addon takes (HMAC 1–64, MAC 1–32 bytes)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.uint8Array({ minLength: 0, maxLength: 200 }), (key, data) => {
        expect(nativeCrypto.hmac(key, data)).toEqual(nobleCrypto.hmac(key, data));
        const k = key.subarray(0, 32);
        expect(nativeCrypto.mac(k, data)).toEqual(nobleCrypto.mac(k, data));
      }),
      { numRuns: 200 },
    );
  });

  it('dhBatch gives what dh gives, job by job, low-order points included', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.nat(9)), { minLength: 0, maxLength: 40 }), (jobs) => {
        const privs = jobs.map(([k]) => k);
        // One job in ten gets a low-order point (zero), the rest a real public key.
        const pubs = jobs.map(([k, r]) => (r === 0 ? new Uint8Array(32) : nobleCrypto.publicKey(k.map((x) => x ^ 0x55))));
        const got = nativeCrypto.dhBatch!(privs, pubs);
        expect(got).toHaveLength(jobs.length);
        got.forEach((g, i) => expect(g).toEqual(nobleCrypto.dh(privs[i]!, pubs[i]!)));
      }),
      { numRuns: 30 },
    );
    expect(() => nativeCrypto.dhBatch!([new Uint8Array(32)], [])).toThrow(/1 private keys but 0 public keys/);
    expect(() => nativeCrypto.dhBatch!([new Uint8Array(32)], [new Uint8Array(31)])).toThrow(/32 bytes/);
  });

  it('dhBatchAsync resolves with what dh gives, job by job, and its inputs can be dropped while it runs', async () => {
    const asyncCrypto = createNativeCrypto(loadNative())!;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.nat(9)), { minLength: 0, maxLength: 40 }), async (jobs) => {
        const privs = jobs.map(([k]) => k);
        const pubs = jobs.map(([k, r]) => (r === 0 ? new Uint8Array(32) : nobleCrypto.publicKey(k.map((x) => x ^ 0x55))));
        const want = privs.map((k, i) => nobleCrypto.dh(k, pubs[i]!));
        // Several batches out at once; the arrays passed are not kept by the caller.
        const got = await Promise.all([0, 1, 2].map(() => asyncCrypto.dhBatchAsync!(privs.slice(), pubs.slice())));
        for (const g of got) expect(g).toEqual(want);
      }),
      { numRuns: 30 },
    );
    expect(() => asyncCrypto.dhBatchAsync!([new Uint8Array(32)], [])).toThrow(/1 private keys but 0 public keys/);
    expect(() => asyncCrypto.dhBatchAsync!([new Uint8Array(32)], [new Uint8Array(31)])).toThrow(/32 bytes/);
    // Off unless TSGUARD_HANDSHAKE_ASYNC=1 (bench/README.md step 7).
    if (process.env['TSGUARD_HANDSHAKE_ASYNC'] !== '1') expect(nativeCrypto.dhBatchAsync).toBeUndefined();
  });

  it('X25519 agrees with @noble; generated keys are clamped and unique; low-order points are refused', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const a = nativeCrypto.generatePrivateKey(); // from the addon's pool
      expect(a[0]! & 7).toBe(0);
      expect(a[31]! & 0xc0).toBe(0x40);
      const hex = Buffer.from(a).toString('hex');
      expect(seen.has(hex)).toBe(false);
      seen.add(hex);
      const b = nobleCrypto.generatePrivateKey();
      const pa = nativeCrypto.publicKey(a);
      expect(pa).toEqual(nobleCrypto.publicKey(a));
      const pb = nobleCrypto.publicKey(b);
      expect(nativeCrypto.dh(a, pb)).toEqual(nobleCrypto.dh(b, pa));
    }
    const k = nativeCrypto.generatePrivateKey();
    expect(nativeCrypto.dh(k, new Uint8Array(32))).toBeNull();
    const one = new Uint8Array(32);
    one[0] = 1;
    expect(nativeCrypto.dh(k, one)).toBeNull();
    expect(() => nativeCrypto.dh(k, new Uint8Array(31))).toThrow(/32 bytes/);
  });
});

describe('X25519 key-object cache (node and native providers)', () => {
  it.each([nodeCrypto, nativeCrypto])('never serves a key array that was rewritten in place from the cache ($name)', (p) => {
    const k = p.generatePrivateKey();
    const peer = p.publicKey(p.generatePrivateKey());
    const pub1 = p.publicKey(k);
    const dh1 = p.dh(k, peer);
    const other = p.generatePrivateKey();
    k.set(other); // same array, new bytes
    expect(p.publicKey(k)).toEqual(nobleCrypto.publicKey(other.slice()));
    expect(p.publicKey(k)).not.toEqual(pub1);
    expect(p.dh(k, peer)).toEqual(nobleCrypto.dh(other.slice(), peer));
    expect(p.dh(k, peer)).not.toEqual(dh1);
    k.fill(0); // a zeroed key is not a usable private key any more: no stale result either
    expect(p.publicKey(k)).toEqual(nobleCrypto.publicKey(new Uint8Array(32)));
  });
});
