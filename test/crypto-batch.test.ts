/**
 * Batched AEAD ({@link AeadBatch}, CryptoProvider.aeadBatch): for every provider, one batch call
 * seals and opens exactly what one call per packet does with @noble (the reference), for random
 * batches of mixed keys, lengths and counters near the 2^32 and 2^53 boundaries; tampered packets
 * fail, exactly those. The native provider runs batches of 8 or more on its crypto threads.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AEAD_ROW, AeadBatch, runAeadBatch } from '../src/crypto/batch.js';
import type { NativeCryptoProvider } from '../src/crypto/native.js';
import { nobleCrypto } from '../src/crypto/noble.js';
import { nodeCrypto } from '../src/crypto/node.js';
import type { CryptoProvider } from '../src/crypto/provider.js';
import { loadNative, loadNativeCrypto } from '../src/io/native.js';

const nativeCrypto = loadNativeCrypto() as NativeCryptoProvider;
const providers: CryptoProvider[] = [nativeCrypto, nodeCrypto, nobleCrypto];

const HEAD = 16; // the transport header in front of each plaintext, as on the data path
const u32 = fc.integer({ min: 0, max: 0xffffffff });
/** Counters as [lo, hi]: just below/above 2^32, around 2^53 (hi = 2^21), or anywhere. */
const counter = fc.oneof(
  fc.tuple(fc.integer({ min: 0xffffff00, max: 0xffffffff }), fc.integer({ min: 0, max: 1 })),
  fc.tuple(fc.integer({ min: 0, max: 0xff }), fc.constant(1)),
  fc.tuple(u32, fc.integer({ min: 2 ** 21 - 1, max: 2 ** 21 })),
  fc.tuple(u32, u32),
);
const job = fc.record({
  key: fc.integer({ min: 0, max: 3 }),
  counter,
  len: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 1500 }), fc.constant(1420)),
  seed: fc.integer({ min: 0, max: 255 }),
  tamper: fc.oneof(fc.constant(-1), fc.constant(-1), fc.nat()), // -1: intact, else which byte to flip
});
const batchArb = fc.record({ keys: fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { minLength: 4, maxLength: 4 }), jobs: fc.array(job, { maxLength: 128 }) });

const plaintext = (len: number, seed: number) => Uint8Array.from({ length: len }, (_, i) => (i * 31 + seed) & 255);

describe('AeadBatch', () => {
  it('the native provider batches on its crypto threads', () => {
    expect(nativeCrypto.name).toBe('native');
    expect(nativeCrypto.batchThreads).toBeGreaterThanOrEqual(1);
  });

  for (const p of providers) {
    it(`${p.name}: a batch seals and opens like one @noble call per packet; exactly the tampered ones fail`, () => {
      fc.assert(
        fc.property(batchArb, ({ keys, jobs }) => {
          const seal = new AeadBatch(true);
          const bufs = jobs.map((j) => {
            const b = new Uint8Array(HEAD + j.len + 16);
            b.set(plaintext(j.len, j.seed), HEAD);
            seal.add(keys[j.key]!, j.counter[0], j.counter[1], b, HEAD, j.len);
            return b;
          });
          expect(runAeadBatch(p, seal)).toBe(0);
          jobs.forEach((j, i) => {
            expect(seal.ok[i]).toBe(1);
            const expected = nobleCrypto.seal(keys[j.key]!, j.counter[0], j.counter[1], plaintext(j.len, j.seed));
            expect(bufs[i]!.subarray(HEAD)).toEqual(expected);
          });
          seal.clear();

          const open = new AeadBatch(false);
          jobs.forEach((j, i) => {
            const b = bufs[i]!;
            if (j.tamper >= 0) b[HEAD + (j.tamper % (j.len + 16))]! ^= 0x40;
            open.add(keys[j.key]!, j.counter[0], j.counter[1], b, HEAD, b.length - HEAD);
          });
          const tampered = jobs.filter((j) => j.tamper >= 0).length;
          expect(runAeadBatch(p, open)).toBe(tampered);
          jobs.forEach((j, i) => {
            const plain = bufs[i]!.subarray(HEAD, HEAD + j.len);
            if (j.tamper >= 0) {
              expect(open.ok[i]).toBe(0);
              expect(plain.every((x) => x === 0)).toBe(true); // no unauthenticated plaintext
            } else {
              expect(open.ok[i]).toBe(1);
              expect(plain).toEqual(plaintext(j.len, j.seed));
            }
          });
        }),
        { numRuns: p === nobleCrypto ? 25 : 60 },
      );
    });
  }

  it('jobs carved from a few shared buffers (as the data path does) seal and open like one @noble call per packet', () => {
    fc.assert(
      fc.property(batchArb, fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 40 }), ({ keys, jobs }, nStores, skew) => {
        // nStores backing buffers; each job is a view at a running offset in one of them, some of
        // those views themselves offset (byteOffset != 0), as UDP batch views and datagram blocks are.
        const backings = Array.from({ length: nStores }, () => new Uint8Array(skew + jobs.reduce((n, j) => n + HEAD + j.len + 16 + 8, 0)));
        const used = backings.map(() => skew);
        const seal = new AeadBatch(true);
        const views = jobs.map((j, i) => {
          const s = i % nStores;
          const v = backings[s]!.subarray(used[s]!, used[s]! + HEAD + j.len + 16);
          used[s]! += v.length + (i & 7);
          v.set(plaintext(j.len, j.seed), HEAD);
          seal.add(keys[j.key]!, j.counter[0], j.counter[1], v, HEAD, j.len);
          return v;
        });
        expect(seal.stores.length).toBe(Math.min(nStores, jobs.length));
        expect(runAeadBatch(nativeCrypto, seal)).toBe(0);
        jobs.forEach((j, i) => {
          expect(views[i]!.subarray(HEAD)).toEqual(nobleCrypto.seal(keys[j.key]!, j.counter[0], j.counter[1], plaintext(j.len, j.seed)));
        });
        seal.clear();
        expect(seal.stores.length).toBe(0);
        const open = new AeadBatch(false);
        jobs.forEach((j, i) => open.add(keys[j.key]!, j.counter[0], j.counter[1], views[i]!, HEAD, views[i]!.length - HEAD));
        expect(runAeadBatch(nativeCrypto, open)).toBe(0);
        jobs.forEach((j, i) => expect(views[i]!.subarray(HEAD, HEAD + j.len)).toEqual(plaintext(j.len, j.seed)));
      }),
      { numRuns: 40 },
    );
  });

  it('the addon refuses a row beyond its store before touching anything', () => {
    const addon = loadNative() as unknown as { aeadBatch(...a: unknown[]): number };
    const seal = new AeadBatch(true);
    const buf = new Uint8Array(HEAD + 100 + 16);
    for (let i = 0; i < 10; i++) seal.add(new Uint8Array(32), i, 0, buf, HEAD, 100);
    const before = buf.slice();
    seal.table[9 * AEAD_ROW + 6] = HEAD + 1; // one byte further: the tag would end past the buffer
    expect(() => addon.aeadBatch(true, seal.keys, seal.stores, seal.table, seal.length, seal.ok)).toThrow(/row 9 is out of range/);
    seal.table[9 * AEAD_ROW + 6] = HEAD;
    seal.table[9 * AEAD_ROW + 5] = 1; // no such store
    expect(() => addon.aeadBatch(true, seal.keys, seal.stores, seal.table, seal.length, seal.ok)).toThrow(RangeError);
    expect(buf).toEqual(before);
  });

  it('keys are snapshotted when a job is added: erasing the key afterwards changes nothing; clear() zeroes the snapshots', () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => i + 9);
    const original = key.slice();
    const seal = new AeadBatch(true);
    const bufs = Array.from({ length: 20 }, (_, i) => {
      const b = new Uint8Array(HEAD + 100 + 16);
      b.set(plaintext(100, i), HEAD);
      seal.add(key, i, 0, b, HEAD, 100);
      return b;
    });
    key.fill(0);
    runAeadBatch(nativeCrypto, seal);
    bufs.forEach((b, i) => expect(b.subarray(HEAD)).toEqual(nobleCrypto.seal(original, i, 0, plaintext(100, i))));
    expect(seal.keys.filter((k) => k.some((x) => x !== 0))).toHaveLength(1);
    seal.clear();
    expect(seal.keys.every((k) => k.every((x) => x === 0))).toBe(true);
    expect(seal.length).toBe(0);
  });

  it('refuses a job that does not fit its buffer or a key of the wrong size, naming the range', () => {
    const seal = new AeadBatch(true);
    expect(() => seal.add(new Uint8Array(32), 0, 0, new Uint8Array(40), 16, 10)).toThrow(/range 16\+10 does not fit a 40-byte buffer/);
    expect(() => seal.add(new Uint8Array(31), 0, 0, new Uint8Array(64), 16, 10)).toThrow(/key must be 32 bytes/);
    expect(() => new AeadBatch(false).add(new Uint8Array(32), 0, 0, new Uint8Array(40), 16, 15)).toThrow(RangeError);
    expect(seal.length).toBe(0);
  });
});
