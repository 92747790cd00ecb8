/**
 * Hostile input: fast-check fuzzing with random and mutated datagrams, a
 * handshake flood answered with cookies while a real peer still gets
 * through, and the under-load rule of the device's handshake queue.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MSG_COOKIE_REPLY, MSG_INITIATION, MSG_TRANSPORT } from '../src/noise/constants.js';
import { CookieGenerator } from '../src/noise/cookie.js';
import { createInitiation, Handshake, makeIdentity } from '../src/noise/handshake.js';
import { tai64n } from '../src/crypto/tai64n.js';
import { HANDSHAKE_QUEUE_SIZE, UNDER_LOAD_AFTER_TIME } from '../src/device/constants.js';
import type { Device } from '../src/device/device.js';
import type { DeviceStats } from '../src/device/types.js';
import { countType, ipv4Packet, pair } from './helpers/sim.js';

const totalDrops = (stats: DeviceStats) => Object.values(stats).reduce((x, y) => x + y, 0);

/**
 * An attacker's initiations to `device`: valid mac1 (anyone who knows its public key can compute it),
 * no cookie, a fresh sender index `i + 1` each.
 */
function attackerOf(device: Device, now: () => number): (i: number) => Uint8Array {
  const p = device.crypto;
  const attacker = makeIdentity(p, p.generatePrivateKey());
  const hs = new Handshake(p, device.publicKey!);
  hs.precompute(p, attacker);
  const gen = new CookieGenerator(p, now, device.publicKey!);
  return (i) => {
    const m = createInitiation(p, attacker, hs, i + 1, tai64n(Date.now()))!;
    gen.addMacs(m);
    return m;
  };
}

describe('fuzzing', () => {
  it('random and mutated datagrams are each dropped and counted once, never by an exception, and never delivered', () => {
    const { sim, a, b } = pair();
    a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(40)));
    sim.pump();
    // Collect one valid message of every type to mutate.
    const samples = sim.log.map((f) => f.data);
    a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(100)));
    samples.push(sim.queue.pop()!.data);
    sim.queue = [];
    const deliveredBefore = b.delivered.length;
    const dropsBefore = totalDrops(b.device.stats);

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
        const before = totalDrops(b.device.stats);
        b.device.receiveDatagram(d, a.endpoint);
        b.device.workHandshakes();
        // Exactly one drop counter moved, and not the one for code that threw (receiveDatagram catches everything).
        expect(totalDrops(b.device.stats) - before).toBe(1);
        expect(b.device.stats.exception).toBe(0);
        fed++;
      }),
      { numRuns: 3000 },
    );
    sim.pump(); // replies (e.g. cookie or handshake responses to mutated-but-valid initiations) are fine
    expect(b.delivered.length).toBe(deliveredBefore);
    const dropsAfter = totalDrops(b.device.stats);
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
    const { sim, a, b } = pair();
    const bd = b.device;
    // The attacker sends from many sources.
    const initiation = attackerOf(bd, () => sim.clock.now());
    const flood = (n: number) => {
      for (let i = 0; i < n; i++) {
        bd.receiveDatagram(initiation(i), { host: `198.51.100.${i % 250}`, port: 1000 + i });
      }
    };
    flood(1500); // more than the queue holds: the rest is dropped and counted
    expect(bd.pendingHandshakes).toBe(HANDSHAKE_QUEUE_SIZE);
    expect(bd.stats.handshakeQueueFull).toBe(1500 - HANDSHAKE_QUEUE_SIZE);
    expect(bd.underLoad).toBe(true);
    sim.pump(); // works the queue off: every initiation gets a cookie reply
    expect(bd.pendingHandshakes).toBe(0);
    expect(countType(b.sent, MSG_COOKIE_REPLY)).toBe(HANDSHAKE_QUEUE_SIZE);
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

describe('under-load rule', () => {
  it('is under load while ≥ 1/8 of the handshake queue waits and for one second after, and answers with cookies meanwhile', () => {
    const { sim, a, b } = pair();
    const bd = b.device;
    const initiation = attackerOf(bd, () => sim.clock.now());
    const eighth = HANDSHAKE_QUEUE_SIZE / 8;
    for (let i = 0; i < eighth - 1; i++) bd.receiveDatagram(initiation(i), { host: `198.51.100.${i % 200}`, port: 9 });
    expect(bd.underLoad).toBe(false);
    bd.receiveDatagram(initiation(eighth), { host: '198.51.100.201', port: 9 });
    bd.receiveDatagram(initiation(eighth + 1), { host: '198.51.100.202', port: 9 });
    expect(bd.underLoad).toBe(true);
    // The first one processed leaves an eighth waiting; the rest are answered within the second after.
    expect(bd.workHandshakes()).toBe(eighth + 1);
    expect(bd.stats.cookieReplySent).toBe(eighth + 1);
    sim.queue = []; // the cookie replies go to the attacker
    // One second after the queue last held an eighth, a real initiation is answered without a cookie.
    sim.clock.t += UNDER_LOAD_AFTER_TIME - 1;
    expect(bd.underLoad).toBe(true);
    sim.clock.t += 1;
    expect(bd.underLoad).toBe(false);
    const pk = ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(20));
    a.device.sendPacket(pk);
    sim.pump();
    expect(bd.stats.cookieReplySent).toBe(eighth + 1);
    expect(b.delivered).toEqual([pk]);
  });
});
