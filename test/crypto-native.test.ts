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
import { initiatorAccepts } from '../src/crypto/native-steps.js';
import type { InitiationStepJob, ResponseStepJob, ResponseStepResult } from '../src/crypto/provider.js';
import { initialState, writeMessageA } from '../src/noise/ikpsk2.js';
import { initiationStep, responseStep } from '../src/noise/steps.js';

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

  /** Random initiations (one in eight tampered, one in ten with a low-order ephemeral) and responses (one in ten low-order) for the step batches. */
  const stepJobs = fc
    .tuple(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.array(fc.tuple(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.nat(39), fc.boolean()), { minLength: 0, maxLength: 24 }))
    .map(([responder, raw]) => {
      const st0 = initialState(nobleCrypto, 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s', Uint8Array.of(1, 2), nobleCrypto.publicKey(responder));
      const initiations: InitiationStepJob[] = [];
      const responses: ResponseStepJob[] = [];
      const initiators: [Uint8Array, Uint8Array][] = [];
      for (const [k, r, psk] of raw) {
        const e = k.map((x) => x ^ 0x33);
        const s = k.map((x) => x ^ 0x5a);
        initiators.push([e, s]);
        const a = writeMessageA(nobleCrypto, { ...st0 }, e, nobleCrypto.publicKey(e), nobleCrypto.publicKey(s), nobleCrypto.publicKey(responder), nobleCrypto.dh(s, nobleCrypto.publicKey(responder)) ?? new Uint8Array(32), k)!;
        const encryptedStatic = a.encryptedStatic.slice();
        if (r % 8 === 1) encryptedStatic[r % 48]! ^= 1;
        initiations.push({ ephemeral: r % 10 === 0 ? new Uint8Array(32) : a.ephemeral, encryptedStatic });
        responses.push({
          ck: k.map((x) => x ^ 1),
          h: k.map((x) => x ^ 2),
          // One in four draws its own ephemeral key (the handshake worker's case), checked as the initiator reads it.
          ...(r % 4 === 2 ? {} : { ephemeralPrivate: k.map((x) => x ^ 3) }),
          initiatorEphemeral: r % 10 === 3 ? new Uint8Array(32) : nobleCrypto.publicKey(e),
          initiatorStatic: nobleCrypto.publicKey(s),
          psk: psk ? k.map((x) => x ^ 4) : new Uint8Array(32),
        });
      }
      return { responder, st0, initiations, responses, initiators };
    });

  /**
   * Responses as the definitions give them: exactly, where the job gives our ephemeral key; else
   * (the step drew a fresh one) as the initiator reads them, and with a fresh key per job.
   */
  function expectResponses(got: (ResponseStepResult | null)[], jobs: ResponseStepJob[], initiators: [Uint8Array, Uint8Array][]): void {
    expect(got).toHaveLength(jobs.length);
    const fresh = new Set<string>();
    jobs.forEach((j, i) => {
      const want = responseStep(nobleCrypto, j);
      if (j.ephemeralPrivate !== undefined || want === null) return expect(got[i]).toEqual(want);
      expect(got[i]).not.toBeNull();
      expect(initiatorAccepts(nobleCrypto, j, ...initiators[i]!, got[i]!)).toBe(true);
      fresh.add(Buffer.from(got[i]!.ephemeralPublic).toString('hex'));
    });
    expect(fresh.size).toBe(jobs.filter((j, i) => j.ephemeralPrivate === undefined && got[i] !== null).length);
  }

  it('computes the Noise steps of a batch as src/noise/steps.ts defines them, failures included', () => {
    fc.assert(
      fc.property(stepJobs, ({ responder, st0, initiations, responses, initiators }) => {
        const gotI = nativeCrypto.initiationSteps!(responder, st0.ck, st0.h, initiations);
        expect(gotI).toEqual(initiations.map((j) => initiationStep(nobleCrypto, responder, st0, j)));
        expectResponses(nativeCrypto.responseSteps!(responses), responses, initiators);
      }),
      { numRuns: 25 },
    );
    expect(() => nativeCrypto.initiationSteps!(new Uint8Array(32), new Uint8Array(32), new Uint8Array(32), [{ ephemeral: new Uint8Array(31), encryptedStatic: new Uint8Array(48) }])).toThrow(/ephemeral: expected 32 bytes/);
    expect(() => nativeCrypto.responseSteps!([{ ck: new Uint8Array(32), h: new Uint8Array(32), ephemeralPrivate: new Uint8Array(32), initiatorEphemeral: new Uint8Array(32), initiatorStatic: new Uint8Array(32), psk: new Uint8Array(16) }])).toThrow(/field 4: expected 32 bytes/);
  });

  it('computes them asynchronously alike, with several batches out and their inputs dropped meanwhile', async () => {
    const asyncCrypto = createNativeCrypto(loadNative())!;
    await fc.assert(
      fc.asyncProperty(stepJobs, async ({ responder, st0, initiations, responses, initiators }) => {
        const wantI = initiations.map((j) => initiationStep(nobleCrypto, responder, st0, j));
        const got = await Promise.all([0, 1, 2].map(() => asyncCrypto.initiationStepsAsync!(responder.slice(), st0.ck.slice(), st0.h.slice(), initiations.slice())));
        for (const g of got) expect(g).toEqual(wantI);
        const copies = () => responses.map((j) => ({ ...j, ...(j.ephemeralPrivate === undefined ? {} : { ephemeralPrivate: j.ephemeralPrivate.slice() }) }));
        const gotR = await Promise.all([0, 1].map(() => asyncCrypto.responseStepsAsync!(copies())));
        for (const g of gotR) expectResponses(g, responses, initiators);
      }),
      { numRuns: 15 },
    );
    // Off unless TSGUARD_HANDSHAKE_ASYNC=1 (bench/README.md step 7).
    if (process.env['TSGUARD_HANDSHAKE_ASYNC'] !== '1') expect(nativeCrypto.initiationStepsAsync).toBeUndefined();
  });

  it('leaves the steps out (the primitives stay native) when a step function disagrees with the definitions', () => {
    const addon = loadNative();
    const wrong = createNativeCrypto({
      ...addon,
      noiseResponses: (keys, input, out, ok) => {
        addon.noiseResponses!(keys, input, out, ok);
        out[5]! ^= 1;
      },
    })!;
    expect(wrong.nativeHandshake).toBe(true);
    expect(wrong.responseSteps).toBeUndefined();
    expect(wrong.initiationSteps).toBeUndefined();
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
