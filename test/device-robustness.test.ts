/**
 * Hostile input: fast-check fuzzing with random and mutated datagrams, and a
 * handshake flood answered with cookies while a real peer still gets through.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MSG_COOKIE_REPLY, MSG_INITIATION, MSG_TRANSPORT } from '../src/noise/constants.js';
import { CookieGenerator } from '../src/noise/cookie.js';
import { createInitiation, Handshake, makeIdentity } from '../src/noise/handshake.js';
import { tai64n } from '../src/crypto/tai64n.js';
import { countType, FakeClock, ipv4Packet, pair } from './helpers/sim.js';
import { getCrypto } from '../src/crypto/index.js';
import type { CryptoProvider } from '../src/crypto/provider.js';

describe('fuzzing', () => {
  it('random and mutated datagrams never throw, never deliver, and are counted', () => {
    const { sim, a, b } = pair();
    a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(40)));
    sim.pump();
    // Collect one valid message of every type to mutate.
    const samples = sim.log.map((f) => f.data);
    a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(100)));
    samples.push(sim.queue.pop()!.data);
    sim.queue = [];
    const deliveredBefore = b.delivered.length;
    const dropsBefore = Object.values(b.device.stats).reduce((x, y) => x + y, 0);

    const random = fc.uint8Array({ minLength: 0, maxLength: 300 });
    const typed = fc.tuple(fc.integer({ min: 1, max: 4 }), fc.uint8Array({ minLength: 0, maxLength: 200 })).map(([t, rest]) => {
      const m = new Uint8Array(4 + rest.length);
      m[0] = t;
      m.set(rest, 4);
      return m;
    });
    const mutated = fc
      .tuple(fc.constantFrom(...samples), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), fc.option(fc.nat()))
      .map(([m, flips, cut]) => {
        const x = m.slice();
        for (const [pos, v] of flips) x[pos % x.length]! ^= v;
        return cut === null ? x : x.subarray(0, cut % (x.length + 1));
      });
    let fed = 0;
    fc.assert(
      fc.property(fc.oneof(random, typed, mutated), (d) => {
        expect(() => b.device.receiveDatagram(d, a.endpoint)).not.toThrow();
        fed++;
      }),
      { numRuns: 3000 },
    );
    sim.pump(); // replies (e.g. cookie or handshake responses to mutated-but-valid initiations) are fine
    expect(b.delivered.length).toBe(deliveredBefore);
    const dropsAfter = Object.values(b.device.stats).reduce((x, y) => x + y, 0);
    // Every fuzzed datagram was dropped and counted (a mutated datagram can only be valid if no byte changed).
    expect(dropsAfter - dropsBefore).toBe(fed);
    // The tunnel still works afterwards.
    const pk = ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(33));
    a.device.sendPacket(pk);
    sim.pump();
    expect(b.delivered.at(-1)).toEqual(pk);
  });
});

describe('handshake flood', () => {
  it('answers with cookie replies under load and still completes a handshake with a peer that echoes the cookie', () => {
    // The fake clock makes processing take no time, so the message-rate threshold is what trips here.
    const { sim, a, b } = pair(undefined, { underLoadThreshold: 1000 });
    const bd = b.device;
    const p = bd.crypto;
    // Attacker: valid mac1 (anyone who knows B's public key can compute it), from many sources.
    const attacker = makeIdentity(p, p.generatePrivateKey());
    const attackerHs = new Handshake(p, bd.publicKey!);
    attackerHs.precompute(p, attacker);
    const gen = new CookieGenerator(p, () => sim.clock.now(), bd.publicKey!);
    const flood = (n: number) => {
      for (let i = 0; i < n; i++) {
        const m = createInitiation(p, attacker, attackerHs, i + 1, tai64n(Date.now()))!;
        gen.addMacs(m);
        bd.receiveDatagram(m, { host: `198.51.100.${i % 250}`, port: 1000 + i });
      }
    };
    flood(1500); // above the threshold of 1000 handshakes/s
    expect(bd.underLoad).toBe(true);
    const cookiesBefore = countType(b.sent, MSG_COOKIE_REPLY);
    expect(cookiesBefore).toBeGreaterThan(0);

    // The real peer A tries while B is under load: it gets a cookie reply, and its retransmission carries mac2.
    const pk = ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(20));
    a.device.sendPacket(pk);
    sim.pump();
    expect(countType(b.sent, MSG_COOKIE_REPLY)).toBe(cookiesBefore + 1);
    expect(b.delivered).toHaveLength(0);
    // Keep B under load while A retransmits.
    for (let t = 0; t < 6; t++) {
      flood(1100);
      sim.advance(1000);
    }
    expect(bd.stats.cookieReplySent).toBeGreaterThan(1500);
    expect(b.delivered).toEqual([pk]);
    expect(countType(a.sent, MSG_INITIATION)).toBe(2);
    expect(countType(a.sent, MSG_TRANSPORT)).toBeGreaterThan(0);
  });
});

describe('load detection', () => {
  it('goes under load when handshake processing takes more than 90% of each second', () => {
    // A provider whose DH takes 5 ms of (fake) time: handshake processing becomes visible to the device.
    let clock: FakeClock | null = null;
    const base = getCrypto();
    const slow: CryptoProvider = { ...base, dh: (k, pub) => ((clock !== null && (clock.t += 5)), base.dh(k, pub)) };
    const { sim, b } = pair(slow); // default message-rate threshold: far above this flood
    const bd = b.device;
    const attacker = makeIdentity(base, base.generatePrivateKey());
    const hs = new Handshake(base, bd.publicKey!);
    hs.precompute(base, attacker);
    const gen = new CookieGenerator(base, () => sim.clock.now(), bd.publicKey!);
    const msgs = Array.from({ length: 400 }, (_, i) => {
      const m = createInitiation(base, attacker, hs, i + 1, tai64n(Date.now()))!;
      gen.addMacs(m);
      return m;
    });
    clock = sim.clock;
    let i = 0;
    for (; i < msgs.length && !bd.underLoad; i++) bd.receiveDatagram(msgs[i]!, { host: `198.51.100.${i % 200}`, port: 9 });
    expect(bd.underLoad).toBe(true);
    expect(i).toBeLessThan(msgs.length);
    bd.receiveDatagram(msgs[i]!, { host: '198.51.100.250', port: 9 });
    expect(bd.stats.cookieReplySent).toBeGreaterThan(0);
  });
});
