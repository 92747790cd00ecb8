/**
 * The handshake worker's batches (src/device/handshakes.ts) against the
 * one-message-at-a-time path: two responders with the same keys, peers and
 * random streams, one whose provider has `dhBatch` and one without, are fed
 * the same random mix of initiations (fresh, replayed, duplicated, too
 * early, with bad MACs, floods that put the device under load), responses,
 * cookie replies and clock steps, and must send the same datagrams, count
 * the same drops and end in the same peer and session state.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { getCrypto } from '../src/crypto/index.js';
import type { CryptoProvider } from '../src/crypto/provider.js';
import { tai64n } from '../src/crypto/tai64n.js';
import { Device } from '../src/device/device.js';
import type { Endpoint } from '../src/device/types.js';
import { CookieGenerator } from '../src/noise/cookie.js';
import { consumeResponse, createInitiation, Handshake, makeIdentity, type LocalIdentity } from '../src/noise/handshake.js';
import { parsePrefix } from '../src/routing/ip.js';
import { FakeClock, ipv4Packet, mulberry32 } from './helpers/sim.js';

const base = getCrypto();

/** `base` with a seeded random stream, and with or without dhBatch (counting its calls). */
function seeded(seed: number, batch: boolean, calls: { batches: number; jobs: number }): CryptoProvider {
  let counter = 0;
  const seedBytes = Uint8Array.of(seed & 255, (seed >>> 8) & 255, 0x42);
  const randomBytes = (n: number): Uint8Array => {
    const out = new Uint8Array(n);
    for (let off = 0; off < n; off += 32) {
      const block = base.hash(seedBytes, Uint8Array.of(counter & 255, (counter >>> 8) & 255, (counter >>> 16) & 255));
      counter++;
      out.set(block.subarray(0, Math.min(32, n - off)), off);
    }
    return out;
  };
  const p: CryptoProvider = Object.create(base);
  Object.defineProperties(p, {
    randomBytes: { value: randomBytes },
    generatePrivateKey: {
      value: () => {
        const k = randomBytes(32);
        k[0]! &= 248;
        k[31]! = (k[31]! & 127) | 64;
        return k;
      },
    },
    dhBatch: {
      value: batch
        ? (privs: readonly Uint8Array[], pubs: readonly Uint8Array[]) => {
            calls.batches++;
            calls.jobs += privs.length;
            return base.dhBatch !== undefined ? base.dhBatch(privs, pubs) : privs.map((k, i) => base.dh(k, pubs[i]!));
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
  | { kind: 'advance'; ms: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('init' as const), who: fc.nat(4), stale: fc.boolean(), badMac: fc.boolean() }).map((s) => ({ ...s, stale: s.stale && s.who % 2 === 0, badMac: s.badMac && s.who === 3 })) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('dup' as const), who: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('flood' as const), who: fc.nat(4), n: fc.integer({ min: 100, max: 160 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('junk' as const), type: fc.constantFrom(2 as const, 3 as const) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('work' as const), max: fc.integer({ min: 1, max: 40 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.constantFrom(0, 10, 60, 1200) }) },
);

describe('handshake worker: batches against one message at a time', () => {
  it('sends the same datagrams, counts the same drops and ends in the same state', () => {
    const calls = { batches: 0, jobs: 0 };
    let responses = 0;
    let cookies = 0;
    const responderKey = base.generatePrivateKey();
    const initiators: LocalIdentity[] = Array.from({ length: 5 }, () => makeIdentity(base, base.generatePrivateKey()));
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 40 }), fc.nat(1000), (steps, seed) => {
        const clock = new FakeClock();
        const mk = (batch: boolean) => {
          const sent: { to: Endpoint; data: Uint8Array }[] = [];
          const d = new Device({
            clock,
            crypto: seeded(seed, batch, calls),
            random: mulberry32(seed + 1),
            io: { sendDatagram: (data, to) => sent.push({ to, data: data.slice() }), deliverPacket: () => undefined },
          });
          d.setPrivateKey(responderKey.slice());
          initiators.forEach((ini, k) => d.setPeer(ini.publicKey, { allowedIps: [parsePrefix(`10.1.${k}.0/24`)], ...(k === 1 ? { presharedKey: new Uint8Array(32).fill(9) } : {}) }));
          return { d, sent };
        };
        const seq = mk(false);
        const bat = mk(true);
        const responderPub = seq.d.publicKey!;
        const who: Initiator[] = initiators.map((id, k) => {
          const hs = new Handshake(base, responderPub);
          hs.presharedKey = k === 1 ? new Uint8Array(32).fill(9) : new Uint8Array(32);
          hs.precompute(base, id);
          return { id, hs, gen: new CookieGenerator(base, () => clock.now(), responderPub), from: { host: `192.0.2.${k + 1}`, port: 4000 + k }, ms: 1000, sent: [] };
        });
        const feed = (data: Uint8Array, from: Endpoint) => {
          seq.d.receiveDatagram(data.slice(), from);
          bat.d.receiveDatagram(data.slice(), from);
        };
        const initiation = (w: Initiator, stale: boolean): Uint8Array => {
          if (!stale) w.ms += 1000;
          const m = createInitiation(base, w.id, w.hs, (w.ms * 7919) >>> 0 || 1, tai64n(1_700_000_000_000 + w.ms))!;
          w.gen.addMacs(m);
          w.sent.push(m);
          return m;
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
            expect(bat.d.workHandshakes(s.max)).toBe(seq.d.workHandshakes(s.max));
          } else {
            clock.t += s.ms;
          }
        }
        seq.d.workHandshakes();
        bat.d.workHandshakes();
        // Data to every peer: sealed with the same session keys and counters, or the same new initiation.
        for (let k = 0; k < initiators.length; k++) {
          const pkt = ipv4Packet('10.0.0.1', `10.1.${k}.1`, Uint8Array.of(k));
          seq.d.sendPacket(pkt.slice());
          bat.d.sendPacket(pkt.slice());
        }
        expect(bat.sent).toEqual(seq.sent);
        expect(bat.d.stats).toEqual(seq.d.stats);
        for (const ini of initiators) {
          expect(bat.d.peerInfo(bat.d.getPeer(ini.publicKey)!)).toEqual(seq.d.peerInfo(seq.d.getPeer(ini.publicKey)!));
        }
        responses += seq.sent.filter((f) => f.data[0] === 2).length;
        cookies += seq.sent.filter((f) => f.data[0] === 3).length;
        seq.d.close();
        bat.d.close();
      }),
      { numRuns: 40 },
    );
    // Not vacuous: responses and cookie replies were sent, and batches of several DH values ran.
    expect(responses).toBeGreaterThan(0);
    expect(cookies).toBeGreaterThan(0);
    expect(calls.jobs).toBeGreaterThan(calls.batches);
  });

  it('answers two initiations of one peer in one batch correctly when the clock lets both through', () => {
    // A clock that moves 100 ms per reading, so the flood rule (50 ms) does not refuse the second
    // initiation: the first one's response must be completed before the second is consumed.
    let t = 5_000_000;
    const clock = { now: () => (t += 100), wallNow: () => 1_700_000_000_000 + t };
    const calls = { batches: 0, jobs: 0 };
    const sent: Uint8Array[] = [];
    const d = new Device({ clock, crypto: seeded(7, true, calls), io: { sendDatagram: (data) => sent.push(data.slice()), deliverPacket: () => undefined } });
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
});
