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
import { AEAD_ROW, loopAeadBatch } from '../src/crypto/batch.js';
import { nodeCrypto } from '../src/crypto/node.js';
import type { CryptoProvider } from '../src/crypto/provider.js';
import { countType, ipv4Packet, pair, Sim, type Flight } from './helpers/sim.js';
import { parsePrefix } from '../src/routing/ip.js';

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
  it('reuseDatagrams: later batches carve from the same block, and every byte of a datagram is written (type, reserved zeros, zero padding)', () => {
    // What A seals, checked just before the seal: the block held longer datagrams of an earlier batch.
    const problems: string[] = [];
    let sealed = 0;
    const backings = new Set<ArrayBufferLike>();
    const checking: CryptoProvider = {
      ...nodeCrypto,
      aeadBatch(b) {
        if (b.seal) {
          for (let i = 0, r = 0; i < b.length; i++, r += AEAD_ROW) {
            const buf = b.bufs[i]!;
            backings.add(buf.buffer);
            sealed++;
            if (readU32(buf, 0) !== MSG_TRANSPORT) problems.push(`job ${i}: type/reserved bytes ${Array.from(buf.subarray(0, 4))}`);
            const plain = buf.subarray(b.table[r + 3]!, b.table[r + 3]! + b.table[r + 4]!);
            const ipLen = plain.length === 0 ? 0 : (plain[2]! << 8) | plain[3]!;
            if (plain.subarray(ipLen).some((x) => x !== 0)) problems.push(`job ${i}: padding after ${ipLen} of ${plain.length} not zero`);
          }
        }
        return loopAeadBatch(this, b);
      },
    };
    const sim = new Sim(checking);
    sim.batched = true;
    const a = sim.add({ host: '192.0.2.1', port: 51820 }, { reuseDatagrams: true });
    const b = sim.add({ host: '192.0.2.2', port: 51821 });
    const ka = checking.generatePrivateKey();
    const kb = checking.generatePrivateKey();
    a.device.setPrivateKey(ka);
    b.device.setPrivateKey(kb);
    a.device.setPeer(checking.publicKey(kb), { endpoint: b.endpoint, allowedIps: [parsePrefix('10.0.0.2/32')] });
    b.device.setPeer(checking.publicKey(ka), { endpoint: a.endpoint, allowedIps: [parsePrefix('10.0.0.1/32')] });
    a.device.batch(() => a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', payload(30))));
    sim.pump();
    const sent: Uint8Array[] = [ipv4Packet('10.0.0.1', '10.0.0.2', payload(30))];
    // Long packets first, then ever shorter ones whose padding lands where earlier plaintext was.
    for (const len of [1300, 1000, 700, 333, 101, 17, 1]) {
      const pkts = Array.from({ length: 20 }, (_, i) => ipv4Packet('10.0.0.1', '10.0.0.2', payload(len + (i % 5), 0xff - i), i));
      a.device.batch(() => pkts.forEach((p) => a.device.sendPacket(p)));
      sent.push(...pkts);
      sim.pump();
    }
    expect(problems).toEqual([]);
    expect(sealed).toBe(sent.length);
    expect(backings.size).toBe(1); // one block, reused by every batch
    expect(b.delivered).toEqual(sent);
  });

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
