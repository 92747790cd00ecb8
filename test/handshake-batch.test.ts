/**
 * The handshake worker's batches (src/device/handshakes.ts) against the
 * one-message-at-a-time path: responders with the same keys, peers and
 * random streams — one whose provider has no batched Noise steps, one with
 * `initiationSteps`/`responseSteps`, one with their asynchronous forms whose
 * batches the test completes later, in random order — are fed the same
 * random mix of initiations (fresh, replayed, duplicated, too early, with
 * bad MACs, floods that put the device under load), responses, cookie
 * replies and clock steps, and must send the same datagrams, count the same
 * drops and end in the same peer and session state. State changes while an
 * asynchronous batch is out (own initiation, peer removed, key changed,
 * device closed) have their own cases.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { getCrypto } from '../src/crypto/index.js';
import type { CryptoProvider, InitiationStepJob, ResponseStepJob } from '../src/crypto/provider.js';
import { tai64n } from '../src/crypto/tai64n.js';
import { Device } from '../src/device/device.js';
import type { Endpoint } from '../src/device/types.js';
import { CookieGenerator } from '../src/noise/cookie.js';
import { consumeResponse, createInitiation, Handshake, makeIdentity, type LocalIdentity } from '../src/noise/handshake.js';
import { initiationStep, responseStep } from '../src/noise/steps.js';
import { parsePrefix } from '../src/routing/ip.js';
import { FakeClock, ipv4Packet, mulberry32 } from './helpers/sim.js';

const base = getCrypto();

/** Asynchronous step batches that the test completes when it chooses (`release`). */
class Deferred {
  readonly waiting: (() => void)[] = [];
  /** Complete `k` of the waiting batches (all by default), in an order drawn from `order`; then let their callbacks run. */
  async release(k = Infinity, order: (n: number) => number = () => 0): Promise<void> {
    for (let i = 0; i < k && this.waiting.length > 0; i++) this.waiting.splice(order(this.waiting.length) % this.waiting.length, 1)[0]!();
    await new Promise((r) => setImmediate(r));
  }
  /** Release until nothing is waiting (a completion may start the next batch). */
  async drain(): Promise<void> {
    while (this.waiting.length > 0) await this.release();
  }
}

type Mode = 'seq' | 'batch' | 'async';

/**
 * `base` with seeded random streams and one step mode (counting its batch calls). Private keys have
 * a stream of their own: a batch draws the ephemeral keys of its responses together, after the
 * run's indices, one message at a time draws them in turn; each stream is drawn in queue order.
 */
function seeded(seed: number, mode: Mode, calls: { batches: number; jobs: number }, deferred?: Deferred): CryptoProvider {
  const stream = (tag: number) => {
    let counter = 0;
    const seedBytes = Uint8Array.of(seed & 255, (seed >>> 8) & 255, tag);
    return (n: number): Uint8Array => {
      const out = new Uint8Array(n);
      for (let off = 0; off < n; off += 32) {
        const block = base.hash(seedBytes, Uint8Array.of(counter & 255, (counter >>> 8) & 255, (counter >>> 16) & 255));
        counter++;
        out.set(block.subarray(0, Math.min(32, n - off)), off);
      }
      return out;
    };
  };
  const randomBytes = stream(0x42);
  const keyBytes = stream(0x43);
  const count = (n: number): void => {
    calls.batches++;
    calls.jobs += n;
  };
  // The definitions (src/noise/steps.ts) on the seeded provider, counted; copies of the inputs, as the worker must not change them while a batch is out.
  const initiations = (k: Uint8Array, ck: Uint8Array, h: Uint8Array, jobs: readonly InitiationStepJob[]) => {
    count(jobs.length);
    return jobs.map((j) => initiationStep(p, k, { ck, h }, { ephemeral: j.ephemeral.slice(), encryptedStatic: j.encryptedStatic.slice() }));
  };
  const responses = (jobs: readonly ResponseStepJob[]) => {
    count(jobs.length);
    return jobs.map((j) => responseStep(p, { ...j, ...(j.ephemeralPrivate === undefined ? {} : { ephemeralPrivate: j.ephemeralPrivate.slice() }) }));
  };
  const later = <T>(compute: () => T) => new Promise<T>((resolve) => deferred!.waiting.push(() => resolve(compute())));
  const p: CryptoProvider = Object.create(base);
  Object.defineProperties(p, {
    randomBytes: { value: randomBytes },
    generatePrivateKey: {
      value: () => {
        const k = keyBytes(32);
        k[0]! &= 248;
        k[31]! = (k[31]! & 127) | 64;
        return k;
      },
    },
    initiationSteps: { value: mode === 'batch' ? initiations : undefined },
    responseSteps: { value: mode === 'batch' ? responses : undefined },
    initiationStepsAsync: {
      value:
        mode === 'async'
          ? (k: Uint8Array, ck: Uint8Array, h: Uint8Array, jobs: readonly InitiationStepJob[]) => {
              const copy = { k: k.slice(), ck: ck.slice(), h: h.slice(), jobs: jobs.map((j) => ({ ephemeral: j.ephemeral.slice(), encryptedStatic: j.encryptedStatic.slice() })) };
              return later(() => initiations(copy.k, copy.ck, copy.h, copy.jobs));
            }
          : undefined,
    },
    responseStepsAsync: {
      value:
        mode === 'async'
          ? (jobs: readonly ResponseStepJob[]) => {
              // Our ephemeral keys are drawn at submission, in job order, as the native provider draws them.
              const copy = jobs.map((j) => ({ ...j, ephemeralPrivate: j.ephemeralPrivate?.slice() ?? p.generatePrivateKey() }));
              return later(() => responses(copy));
            }
          : undefined,
    },
  });
  return p;
}

interface Initiator {
  id: LocalIdentity;
  hs: Handshake;
  gen: CookieGenerator;
  from: Endpoint;
  ms: number;
  sent: Uint8Array[];
}

type Step =
  | { kind: 'init'; who: number; stale: boolean; badMac: boolean }
  | { kind: 'dup'; who: number }
  | { kind: 'flood'; who: number; n: number }
  | { kind: 'junk'; type: 2 | 3 }
  | { kind: 'work'; max: number }
  | { kind: 'complete'; k: number; order: number }
  | { kind: 'advance'; ms: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('init' as const), who: fc.nat(4), stale: fc.boolean(), badMac: fc.boolean() }).map((s) => ({ ...s, stale: s.stale && s.who % 2 === 0, badMac: s.badMac && s.who === 3 })) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('dup' as const), who: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('flood' as const), who: fc.nat(4), n: fc.integer({ min: 100, max: 160 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('junk' as const), type: fc.constantFrom(2 as const, 3 as const) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('work' as const), max: fc.integer({ min: 1, max: 40 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('complete' as const), k: fc.integer({ min: 1, max: 3 }), order: fc.nat(7) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.constantFrom(0, 10, 60, 1200) }) },
);

/** A responder with `initiators` as peers (peer 1 with a preshared key) on a seeded provider in `mode`. */
function responder(clock: FakeClock | { now(): number; wallNow(): number }, seed: number, mode: Mode, key: Uint8Array, initiators: LocalIdentity[], calls: { batches: number; jobs: number }, deferred?: Deferred) {
  const sent: { to: Endpoint; data: Uint8Array }[] = [];
  const d = new Device({
    clock,
    crypto: seeded(seed, mode, calls, deferred),
    random: mulberry32(seed + 1),
    io: { sendDatagram: (data, to) => sent.push({ to, data: data.slice() }), deliverPacket: () => undefined },
  });
  d.setPrivateKey(key.slice());
  initiators.forEach((ini, k) => d.setPeer(ini.publicKey, { allowedIps: [parsePrefix(`10.1.${k}.0/24`)], ...(k === 1 ? { presharedKey: new Uint8Array(32).fill(9) } : {}) }));
  return { d, sent };
}

/** An initiator's side: its handshake with the responder and a cookie generator for its MACs. */
function initiatorOf(id: LocalIdentity, k: number, responderPub: Uint8Array, clock: { now(): number }): Initiator {
  const hs = new Handshake(base, responderPub);
  hs.presharedKey = k === 1 ? new Uint8Array(32).fill(9) : new Uint8Array(32);
  hs.precompute(base, id);
  return { id, hs, gen: new CookieGenerator(base, () => clock.now(), responderPub), from: { host: `192.0.2.${k + 1}`, port: 4000 + k }, ms: 1000, sent: [] };
}

/** A fresh initiation of `w` (or, `stale`, one with the timestamp of its previous one), MACs added. */
function initiation(w: Initiator, stale: boolean): Uint8Array {
  if (!stale) w.ms += 1000;
  const m = createInitiation(base, w.id, w.hs, (w.ms * 7919) >>> 0 || 1, tai64n(1_700_000_000_000 + w.ms))!;
  w.gen.addMacs(m);
  w.sent.push(m);
  return m;
}

describe('handshake worker: batches against one message at a time', () => {
  it('sends the same datagrams, counts the same drops and ends in the same state (sync and async batches)', async () => {
    const calls = { batches: 0, jobs: 0 };
    const asyncCalls = { batches: 0, jobs: 0 };
    let responses = 0;
    let cookies = 0;
    const responderKey = base.generatePrivateKey();
    const initiators: LocalIdentity[] = Array.from({ length: 5 }, () => makeIdentity(base, base.generatePrivateKey()));
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 40 }), fc.nat(1000), async (steps, seed) => {
        const clock = new FakeClock();
        const deferred = new Deferred();
        const seq = responder(clock, seed, 'seq', responderKey, initiators, calls);
        const bat = responder(clock, seed, 'batch', responderKey, initiators, calls);
        const asy = responder(clock, seed, 'async', responderKey, initiators, asyncCalls, deferred);
        const all = [seq, bat, asy];
        const who = initiators.map((id, k) => initiatorOf(id, k, seq.d.publicKey!, clock));
        const feed = (data: Uint8Array, from: Endpoint) => {
          for (const r of all) r.d.receiveDatagram(data.slice(), from);
        };
        for (const s of steps) {
          if (s.kind === 'init') {
            const w = who[s.who]!;
            const m = initiation(w, s.stale);
            if (s.badMac) m[120]! ^= 1;
            feed(m, w.from);
          } else if (s.kind === 'dup') {
            const w = who[s.who]!;
            const m = w.sent.at(-1);
            if (m !== undefined) feed(m, w.from);
          } else if (s.kind === 'flood') {
            const w = who[s.who]!;
            for (let i = 0; i < s.n; i++) feed(initiation(w, false), w.from);
          } else if (s.kind === 'junk') {
            const m = base.randomBytes(s.type === 2 ? 92 : 64);
            m.set([s.type, 0, 0, 0]);
            if (s.type === 2) who[0]!.gen.addMacs(m);
            feed(m, who[0]!.from);
          } else if (s.kind === 'work') {
            const n = seq.d.workHandshakes(s.max);
            expect(bat.d.workHandshakes(s.max)).toBe(n);
            expect(asy.d.workHandshakes(s.max)).toBe(n);
          } else if (s.kind === 'complete') {
            // Batches complete in any order; the steps must still be processed in queue order.
            await deferred.release(s.k, (n) => s.order % n);
          } else {
            // Time moves only once the asynchronous device has made the decisions the others made.
            await deferred.drain();
            clock.t += s.ms;
          }
        }
        await deferred.drain();
        for (const r of all) r.d.workHandshakes();
        await deferred.drain();
        expect(asy.d.handshakesInFlight).toBe(0);
        // Data to every peer: sealed with the same session keys and counters, or the same new initiation.
        for (let k = 0; k < initiators.length; k++) {
          const pkt = ipv4Packet('10.0.0.1', `10.1.${k}.1`, Uint8Array.of(k));
          for (const r of all) r.d.sendPacket(pkt.slice());
        }
        for (const r of [bat, asy]) {
          expect(r.sent).toEqual(seq.sent);
          expect(r.d.stats).toEqual(seq.d.stats);
          for (const ini of initiators) expect(r.d.peerInfo(r.d.getPeer(ini.publicKey)!)).toEqual(seq.d.peerInfo(seq.d.getPeer(ini.publicKey)!));
        }
        responses += seq.sent.filter((f) => f.data[0] === 2).length;
        cookies += seq.sent.filter((f) => f.data[0] === 3).length;
        for (const r of all) r.d.close();
      }),
      { numRuns: 60 },
    );
    // Not vacuous: responses and cookie replies were sent, and batches of several DH values ran.
    expect(responses).toBeGreaterThan(0);
    expect(cookies).toBeGreaterThan(0);
    expect(calls.jobs).toBeGreaterThan(calls.batches);
    expect(asyncCalls.jobs).toBeGreaterThan(asyncCalls.batches);
  });

  it('answers two initiations of one peer in one batch correctly when the clock lets both through', () => {
    // A clock that moves 100 ms per reading, so the flood rule (50 ms) does not refuse the second
    // initiation: the first one's response must be completed before the second is consumed.
    let t = 5_000_000;
    const clock = { now: () => (t += 100), wallNow: () => 1_700_000_000_000 + t };
    const calls = { batches: 0, jobs: 0 };
    const sent: Uint8Array[] = [];
    const d = new Device({ clock, crypto: seeded(7, 'batch', calls), io: { sendDatagram: (data) => sent.push(data.slice()), deliverPacket: () => undefined } });
    d.setPrivateKey(base.generatePrivateKey());
    const id = makeIdentity(base, base.generatePrivateKey());
    d.setPeer(id.publicKey, {});
    const gen = new CookieGenerator(base, clock.now, d.publicKey!);
    const hss = [111, 222].map((index, i) => {
      const hs = new Handshake(base, d.publicKey!);
      hs.precompute(base, id);
      const m = createInitiation(base, id, hs, index, tai64n(1_700_000_000_000 + i * 1000))!;
      gen.addMacs(m);
      d.receiveDatagram(m, { host: '192.0.2.9', port: 9 });
      return hs;
    });
    expect(d.workHandshakes()).toBe(2);
    expect(calls.jobs).toBeGreaterThanOrEqual(2);
    const responses = sent.filter((m) => m[0] === 2);
    expect(responses).toHaveLength(2);
    for (const r of responses) {
      const hs = consumeResponse(base, id, r, (index) => (index === 111 ? hss[0] : index === 222 ? hss[1] : undefined));
      expect(hs).not.toBeNull();
    }
    d.close();
  });

  describe('asynchronous batches: state that changes before a batch completes', () => {
    const key = base.generatePrivateKey();
    const ids: LocalIdentity[] = Array.from({ length: 3 }, () => makeIdentity(base, base.generatePrivateKey()));
    /** An async responder and a one-at-a-time one, and the initiators' side. */
    const setup = () => {
      const clock = new FakeClock();
      const deferred = new Deferred();
      const calls = { batches: 0, jobs: 0 };
      const asy = responder(clock, 5, 'async', key, ids, calls, deferred);
      const seq = responder(clock, 5, 'seq', key, ids, calls);
      const who = ids.map((id, k) => initiatorOf(id, k, asy.d.publicKey!, clock));
      const feed = (m: Uint8Array, w: Initiator) => {
        asy.d.receiveDatagram(m.slice(), w.from);
        seq.d.receiveDatagram(m.slice(), w.from);
      };
      return { clock, deferred, asy, seq, who, feed };
    };
    const types = (sent: { data: Uint8Array }[]) => sent.map((f) => f.data[0]);

    it('pipelines runs and answers in queue order when a later batch completes first', async () => {
      const { deferred, asy, seq, who, feed } = setup();
      feed(initiation(who[0]!, false), who[0]!);
      feed(initiation(who[1]!, false), who[1]!);
      expect(asy.d.workHandshakes()).toBe(2);
      feed(initiation(who[2]!, false), who[2]!);
      expect(asy.d.workHandshakes()).toBe(1); // a second run while the first one's es is out
      expect(deferred.waiting).toHaveLength(2);
      expect(asy.d.handshakesInFlight).toBe(2);
      await deferred.release(1, () => 1); // the second run's es first: nothing may be decided yet
      expect(asy.sent).toHaveLength(0);
      await deferred.drain();
      seq.d.workHandshakes();
      expect(types(asy.sent)).toEqual([2, 2, 2]);
      expect(asy.sent).toEqual(seq.sent);
      expect(asy.d.stats).toEqual(seq.d.stats);
      expect(asy.d.handshakesInFlight).toBe(0);
    });

    it('drops the response when our own initiation to the peer came first', async () => {
      const { clock, deferred, asy, who, feed } = setup();
      feed(initiation(who[0]!, false), who[0]!);
      feed(initiation(who[1]!, false), who[1]!);
      asy.d.workHandshakes();
      await deferred.release(1); // es in: both consumed, ee/se out
      expect(deferred.waiting).toHaveLength(1);
      clock.t += 6000; // past REKEY_TIMEOUT: a packet to peer 0 makes us initiate
      asy.d.sendPacket(ipv4Packet('10.0.0.1', '10.1.0.1', Uint8Array.of(1)));
      expect(types(asy.sent)).toEqual([1]);
      const before = asy.d.stats.handshakeFailed;
      await deferred.drain();
      expect(types(asy.sent)).toEqual([1, 2]); // peer 1 answered, peer 0 not
      expect(asy.sent[1]!.to).toEqual(who[1]!.from);
      expect(asy.d.stats.handshakeFailed).toBe(before + 1);
    });

    it('answers nothing for a peer removed before its es or its response completes', async () => {
      const { deferred, asy, who, feed } = setup();
      feed(initiation(who[0]!, false), who[0]!);
      feed(initiation(who[1]!, false), who[1]!);
      asy.d.workHandshakes();
      asy.d.removePeer(ids[0]!.publicKey); // before es: unknown peer when consumed
      await deferred.release(1);
      asy.d.removePeer(ids[1]!.publicKey); // before ee/se: the response is abandoned
      await deferred.drain();
      expect(asy.sent).toHaveLength(0);
      expect(asy.d.stats.handshakeFailed).toBe(2);
      expect(asy.d.handshakesInFlight).toBe(0);
    });

    it('takes a run as the new private key would when the key changed before its es completed', async () => {
      const { deferred, asy, who, feed } = setup();
      feed(initiation(who[0]!, false), who[0]!);
      feed(initiation(who[1]!, false), who[1]!);
      asy.d.workHandshakes();
      asy.d.setPrivateKey(base.generatePrivateKey());
      await deferred.drain();
      expect(asy.sent).toHaveLength(0);
      expect(asy.d.stats.badMac1).toBe(2); // mac1 was made for the old public key
    });

    it('abandons responses pending when the key changed, and does nothing after close', async () => {
      const { deferred, asy, who, feed } = setup();
      feed(initiation(who[0]!, false), who[0]!);
      feed(initiation(who[1]!, false), who[1]!);
      asy.d.workHandshakes();
      await deferred.release(1);
      asy.d.setPrivateKey(base.generatePrivateKey());
      await deferred.drain();
      expect(asy.sent).toHaveLength(0);
      expect(asy.d.stats.handshakeFailed).toBe(2);

      const other = setup();
      other.feed(initiation(other.who[0]!, false), other.who[0]!);
      other.feed(initiation(other.who[1]!, false), other.who[1]!);
      other.asy.d.workHandshakes();
      other.asy.d.close();
      await other.deferred.drain();
      expect(other.asy.sent).toHaveLength(0);
      expect(other.asy.d.handshakesInFlight).toBe(0);
    });
  });
});
