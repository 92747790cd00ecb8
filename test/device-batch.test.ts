/**
 * The device in batch mode (Device.batch / flush), as the runtime drives it: the data path's crypto
 * of a whole batch is one provider call, and every protocol decision comes out as per packet —
 * same packets delivered in order; reordered, duplicated, replayed and tampered packets inside one
 * batch dropped and counted as before; handshakes, confirmation and rekeying through batches.
 */
import { describe, expect, it } from 'vitest';
import { REKEY_AFTER_TIME } from '../src/device/constants.js';
import { MSG_INITIATION, MSG_TRANSPORT } from '../src/noise/constants.js';
import { readU32 } from '../src/noise/messages.js';
import { countType, ipv4Packet, pair, type Flight } from './helpers/sim.js';

const payload = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
const packetsAtoB = (n: number, seed = 0) =>
  Array.from({ length: n }, (_, i) => ipv4Packet('10.0.0.1', '10.0.0.2', payload((i * 97 + seed) % 1300, i + seed), i & 0xffff));

function established(batched: boolean) {
  const t = pair();
  t.sim.batched = batched;
  t.a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', payload(30)));
  t.sim.pump();
  expect(t.b.delivered).toHaveLength(1);
  t.b.delivered.length = 0;
  return t;
}

describe('Device.batch', () => {
  it('holds sealed datagrams until the batch ends, then hands them over in order with ascending counters', () => {
    const { sim, a, b } = established(true);
    const pkts = packetsAtoB(100);
    a.device.batch(() => {
      for (const p of pkts) a.device.sendPacket(p);
      expect(sim.queue).toHaveLength(0);
      a.device.batch(() => a.device.sendPacket(pkts[0]!)); // nested: still held
      expect(sim.queue).toHaveLength(0);
    });
    expect(sim.queue).toHaveLength(101);
    const counters = sim.queue.map((f) => readU32(f.data, 8));
    expect(counters).toEqual([...counters].sort((x, y) => x - y));
    sim.pump();
    expect(b.delivered).toEqual([...pkts, pkts[0]]);
  });

  it('delivers exactly what per-packet processing delivers, both directions, sizes up to the MTU', () => {
    const run = (batched: boolean) => {
      const { sim, a, b } = established(batched);
      const toB = packetsAtoB(130, 5);
      const toA = toB.map((p) => {
        const q = p.slice();
        q.set([10, 0, 0, 2], 12);
        q.set([10, 0, 0, 1], 16);
        return q;
      });
      a.device.batch(() => toB.forEach((p) => a.device.sendPacket(p)));
      b.device.batch(() => toA.forEach((p) => b.device.sendPacket(p)));
      sim.pump();
      return { toB, toA, atB: b.delivered, atA: a.delivered };
    };
    const batched = run(true);
    const single = run(false);
    expect(batched.atB).toEqual(batched.toB);
    expect(batched.atA.length).toBe(130);
    expect(single.atB).toEqual(single.toB);
    expect(batched.atB).toEqual(single.atB);
  });

  it('inside one batch: reordered packets are delivered, duplicates, replays and tampered ones dropped and counted', () => {
    const { sim, a, b } = established(true);
    const pkts = packetsAtoB(8, 3);
    a.device.batch(() => pkts.forEach((p) => a.device.sendPacket(p)));
    const msgs = sim.queue.splice(0).map((f) => f.data);
    // msgs[0] is accepted in an earlier batch.
    b.device.batch(() => b.device.receiveDatagram(msgs[0]!.slice(), a.endpoint));
    expect(b.delivered).toEqual([pkts[0]]);
    const tampered = msgs[4]!.slice();
    tampered[tampered.length - 1]! ^= 1;
    const order = [msgs[3], msgs[1], msgs[2], msgs[2], msgs[1], tampered, msgs[0], msgs[5], msgs[7], msgs[6], msgs[7]];
    b.device.batch(() => {
      for (const m of order) b.device.receiveDatagram(m!.slice(), a.endpoint);
      expect(b.delivered).toHaveLength(1); // nothing before the flush
    });
    expect(b.delivered).toEqual([pkts[0], pkts[3], pkts[1], pkts[2], pkts[5], pkts[7], pkts[6]]);
    expect(b.device.stats.replayed).toBe(4); // two duplicates in the batch, msgs[0] from before, msgs[7] again
    expect(b.device.stats.decryptFailed).toBe(1);
    // The tampered packet did not advance or mark the window: the genuine one is still accepted.
    b.device.batch(() => b.device.receiveDatagram(msgs[4]!.slice(), a.endpoint));
    expect(b.delivered.at(-1)).toEqual(pkts[4]);
  });

  it('handshake, confirmation by the first data packet, staged packets and rekeying all work through batches', () => {
    const { sim, a, b } = pair();
    sim.batched = true;
    const first = packetsAtoB(5, 11);
    a.device.batch(() => first.forEach((p) => a.device.sendPacket(p)));
    expect(countType(sim.queue, MSG_INITIATION)).toBe(1);
    sim.pump();
    expect(b.delivered).toEqual(first);
    // B answers over its new session (confirmed by A's data inside a batch).
    const back = ipv4Packet('10.0.0.2', '10.0.0.1', payload(40));
    b.device.batch(() => b.device.sendPacket(back));
    sim.pump();
    expect(a.delivered).toEqual([back]);

    const initiations = () => countType(sim.log, MSG_INITIATION);
    const before = initiations();
    sim.advance(REKEY_AFTER_TIME + 1000);
    const more = packetsAtoB(20, 17);
    a.device.batch(() => more.forEach((p) => a.device.sendPacket(p)));
    sim.advance(1000);
    expect(initiations()).toBeGreaterThan(before);
    a.device.batch(() => more.forEach((p) => a.device.sendPacket(p)));
    sim.pump();
    expect(b.delivered.slice(-40)).toEqual([...more, ...more]);
    expect(b.device.stats.decryptFailed + b.device.stats.unknownIndex + b.device.stats.replayed).toBe(0);
  });

  it('a peer removed before the flush: its datagrams already produced still go out, sealed with the keys of when they were sent', () => {
    const { sim, a, b, pubB } = established(true);
    const pkts = packetsAtoB(12, 2);
    a.device.batch(() => {
      pkts.forEach((p) => a.device.sendPacket(p));
      a.device.removePeer(pubB); // zeroes the session keys inside the batch
    });
    expect(countType(sim.queue, MSG_TRANSPORT)).toBe(12);
    sim.pump();
    expect(b.delivered).toEqual(pkts);
  });

  it('close() inside a batch drops what the batch held', () => {
    const { sim, a } = established(true);
    a.device.batch(() => {
      packetsAtoB(10).forEach((p) => a.device.sendPacket(p));
      a.device.close();
    });
    expect(sim.queue as Flight[]).toHaveLength(0);
  });
});
