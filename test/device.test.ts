/**
 * Two in-process devices over an in-memory link with a fake clock.
 */
import { describe, expect, it } from 'vitest';
import { parseIp, parsePrefix } from '../src/routing/ip.js';
import { CookieGenerator } from '../src/noise/cookie.js';
import { createInitiation, Handshake, makeIdentity } from '../src/noise/handshake.js';
import { tai64n } from '../src/crypto/tai64n.js';
import { KEEPALIVE_SIZE, MSG_COOKIE_REPLY, MSG_INITIATION, MSG_RESPONSE, MSG_TRANSPORT } from '../src/noise/constants.js';
import { REJECT_AFTER_TIME, REKEY_AFTER_TIME } from '../src/device/constants.js';
import { countType, ipv4Packet, ipv6Packet, pair, type Flight } from './helpers/sim.js';

const payload = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

describe('two devices', () => {
  it('exchange IPv4 and IPv6 packets byte-identical in both directions', () => {
    const { sim, a, b } = pair();
    const p4 = ipv4Packet('10.0.0.1', '10.0.0.2', payload(100));
    a.device.sendPacket(p4);
    sim.pump();
    expect(b.delivered).toHaveLength(1);
    expect(b.delivered[0]).toEqual(p4);

    const p6 = ipv6Packet(parseIp('fd00::2').bytes, parseIp('fd00::1').bytes, payload(1000, 3));
    b.device.sendPacket(p6);
    sim.pump();
    expect(a.delivered).toEqual([p6]);

    // Sizes that need padding and one that fills the MTU.
    for (const n of [1, 15, 16, 17, 1391]) {
      const pk = ipv4Packet('10.0.0.1', '10.0.0.2', payload(n, n));
      a.device.sendPacket(pk);
      sim.pump();
      expect(b.delivered.at(-1)).toEqual(pk);
    }
    // Transport plaintexts are padded to a multiple of 16, but never beyond the MTU.
    for (const f of sim.log) {
      if (f.data[0] !== MSG_TRANSPORT) continue;
      const plain = f.data.length - 32;
      expect(plain % 16 === 0 || plain === a.device.mtu).toBe(true);
    }
    expect(a.device.peerInfo(a.device.getPeer(b.device.publicKey!)!).lastHandshake).toBe(sim.clock.wallNow());
  });

  it('stages packets until the handshake completes, then flushes them in order', () => {
    const { sim, a, b } = pair();
    const pkts = [1, 2, 3].map((i) => ipv4Packet('10.0.0.1', '10.0.0.2', payload(20, i), i));
    for (const pk of pkts) a.device.sendPacket(pk);
    expect(countType(sim.queue, MSG_INITIATION)).toBe(1);
    sim.pump();
    expect(b.delivered).toEqual(pkts);
  });

  it('responder sends only after the initiator confirmed the session', () => {
    const { sim, a, b } = pair();
    a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', payload(10)));
    // Deliver the initiation only; the responder now has a "next" keypair.
    sim.filter = (f) => f.data[0] === MSG_INITIATION;
    sim.pump();
    const pk = ipv4Packet('10.0.0.2', '10.0.0.1', payload(10));
    b.device.sendPacket(pk);
    sim.queue = [];
    expect(b.sent.filter((f) => f.data[0] === MSG_TRANSPORT)).toHaveLength(0);
    sim.filter = () => true;
    // The initiator retransmits after REKEY_TIMEOUT; the new exchange completes and flushes B's staged packet.
    sim.advance(6000);
    expect(a.delivered).toContainEqual(pk);
  });

  it('rekeys after REKEY_AFTER_TIME without losing a packet', () => {
    const { sim, a, b } = pair();
    let sent = 0;
    for (let s = 0; s < 400; s++) {
      a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', payload(50, s), s));
      sim.advance(500);
      b.device.sendPacket(ipv4Packet('10.0.0.2', '10.0.0.1', payload(50, s), s));
      sim.advance(500);
      sent++;
    }
    expect(b.delivered).toHaveLength(sent);
    expect(a.delivered).toHaveLength(sent);
    // 400 s of traffic: a handshake at least every REKEY_AFTER_TIME (both sides may initiate).
    expect(countType(sim.log, MSG_INITIATION)).toBeGreaterThanOrEqual(Math.floor(400_000 / REKEY_AFTER_TIME));
    expect(countType(sim.log, MSG_INITIATION)).toBeLessThan(10);
    expect(a.device.stats.decryptFailed + b.device.stats.decryptFailed).toBe(0);
  });

  it('recovers from a dropped initiation and a dropped response by retransmission', () => {
    const { sim, a, b } = pair();
    let dropInit = 1;
    let dropResp = 1;
    sim.filter = (f) => {
      if (f.data[0] === MSG_INITIATION && dropInit > 0) return (dropInit--, false);
      if (f.data[0] === MSG_RESPONSE && dropResp > 0) return (dropResp--, false);
      return true;
    };
    const pk = ipv4Packet('10.0.0.1', '10.0.0.2', payload(30));
    a.device.sendPacket(pk);
    sim.advance(4999);
    expect(b.delivered).toHaveLength(0);
    sim.advance(1000); // second initiation at 5 s + jitter; its response is dropped
    expect(countType(a.sent, MSG_INITIATION)).toBe(2);
    expect(b.delivered).toHaveLength(0);
    sim.advance(6000); // third initiation succeeds
    expect(b.delivered).toEqual([pk]);
    expect(countType(a.sent, MSG_INITIATION)).toBe(3);
  });

  it('gives up after REKEY_ATTEMPT_TIME (20 initiations) and drops staged packets', () => {
    const { sim, a } = pair();
    sim.filter = () => false;
    const timeouts: string[] = [];
    a.device.events.on('handshakeTimeout', (e) => timeouts.push(e.publicKey));
    a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', payload(30)));
    sim.advance(200_000);
    expect(countType(a.sent, MSG_INITIATION)).toBe(20);
    expect(timeouts).toHaveLength(1);
    const peer = [...a.device.peers()][0]!;
    expect(peer.staged).toHaveLength(0);
  });

  it('sends a passive keepalive 10 s after receiving data with nothing to send', () => {
    const { sim, a, b } = pair();
    a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', payload(30)));
    sim.pump();
    const before = b.sent.length;
    sim.advance(9_999);
    expect(b.sent.length).toBe(before);
    sim.advance(2);
    const ka = b.sent.slice(before);
    expect(ka).toHaveLength(1);
    expect(ka[0]!.data.length).toBe(KEEPALIVE_SIZE);
    // No further keepalives while idle.
    sim.advance(60_000);
    expect(b.sent.filter((f) => f.data.length === KEEPALIVE_SIZE)).toHaveLength(1);
  });

  it('sends persistent keepalives at the configured interval and brings the tunnel up', () => {
    const { sim, a } = pair(undefined, { keepaliveA: 25 });
    // Turning persistent keepalive on starts a handshake right away.
    sim.pump();
    expect(countType(a.sent, MSG_INITIATION)).toBe(1);
    const start = sim.clock.t;
    const stamps: number[] = [];
    const origPush = a.sent.push.bind(a.sent);
    a.sent.push = (...fs: Flight[]) => {
      for (const f of fs) if (f.data.length === KEEPALIVE_SIZE) stamps.push(sim.clock.t - start);
      return origPush(...fs);
    };
    sim.advance(100_000);
    expect(stamps).toEqual([25_000, 50_000, 75_000, 100_000]);
  });

  it('initiates a new handshake 15 s after sending data without an answer', () => {
    const { sim, a, b } = pair();
    a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', payload(30)));
    sim.pump();
    sim.filter = (f) => f.from !== b.endpoint; // B goes silent
    const n0 = countType(a.sent, MSG_INITIATION);
    a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', payload(30)));
    sim.advance(15_000 - 1);
    expect(countType(a.sent, MSG_INITIATION)).toBe(n0);
    sim.advance(335); // KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter (< 334 ms)
    expect(countType(a.sent, MSG_INITIATION)).toBe(n0 + 1);
  });

  it('zeroes keys 540 s after the last handshake', () => {
    const { sim, a, b } = pair();
    const expired: string[] = [];
    a.device.events.on('sessionExpired', (e) => expired.push(e.publicKey));
    a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', payload(30)));
    sim.pump();
    const peer = a.device.getPeer(b.device.publicKey!)!;
    expect(peer.current).not.toBeNull();
    sim.advance(REJECT_AFTER_TIME * 3 - 1);
    expect(peer.current).not.toBeNull();
    const key = peer.current!.send;
    sim.advance(2);
    expect(peer.current).toBeNull();
    expect(key.every((x) => x === 0)).toBe(true);
    expect(expired).toEqual([peer.id]);
  });

  it('roams: the endpoint follows authenticated packets from a new address', () => {
    const { sim, a, b } = pair();
    a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', payload(30)));
    sim.pump();
    const peerOfB = b.device.getPeer(a.device.publicKey!)!;
    const allowedBefore = b.device.peerInfo(peerOfB).allowedIps;
    // A moves to a new address and port.
    const moved = { host: '2001:db8::7', port: 4000 };
    const pk = ipv4Packet('10.0.0.1', '10.0.0.2', payload(30));
    // Deliver by hand as if it came from the new address.
    a.device.sendPacket(pk);
    const f = sim.queue.pop()!;
    sim.queue = [];
    b.device.receiveDatagram(f.data, moved);
    expect(peerOfB.endpoint).toEqual(moved);
    expect(b.device.peerInfo(peerOfB).allowedIps).toEqual(allowedBefore);
    // Unauthenticated garbage from elsewhere does not move it.
    b.device.receiveDatagram(f.data.slice(0, 40), { host: '198.51.100.9', port: 1 });
    expect(peerOfB.endpoint).toEqual(moved);
  });
});

describe('drops and counts bad input', () => {
  function established() {
    const t = pair();
    t.a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', payload(30)));
    t.sim.pump();
    return t;
  }

  it('replayed and out-of-window packets', () => {
    const { sim, a, b } = established();
    const msgs: Uint8Array[] = [];
    for (let i = 0; i < 10_000; i++) {
      a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', payload(8, i)));
      msgs.push(sim.queue.pop()!.data);
    }
    // Deliver the last one first, then an old one (outside the window) and a replay.
    b.device.receiveDatagram(msgs[9_999]!, a.endpoint);
    b.device.receiveDatagram(msgs[0]!, a.endpoint);
    b.device.receiveDatagram(msgs[9_999]!, a.endpoint);
    b.device.receiveDatagram(msgs[9_000]!, a.endpoint);
    b.device.receiveDatagram(msgs[9_000]!, a.endpoint);
    expect(b.device.stats.replayed).toBe(3);
    expect(b.delivered).toHaveLength(1 + 2);
  });

  it('spoofed inner source addresses', () => {
    const { sim, a, b } = established();
    const peerB = a.device.getPeer(b.device.publicKey!)!;
    a.device.sendPacketTo(peerB, ipv4Packet('10.0.0.99', '10.0.0.2', payload(30)));
    sim.pump();
    expect(b.device.stats.sourceNotAllowed).toBe(1);
    expect(b.delivered).toHaveLength(1);
  });

  it('unknown receiver index, bad MACs, truncated and oversized messages of every type', () => {
    const { sim, a, b } = established();
    const from = a.endpoint;
    const d = b.device;
    const transport = (() => {
      a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', payload(30)));
      return sim.queue.pop()!.data;
    })();
    const badIndex = transport.slice();
    badIndex[4]! ^= 0xff;
    d.receiveDatagram(badIndex, from);
    expect(d.stats.unknownIndex).toBe(1);

    const flipped = transport.slice();
    flipped[40]! ^= 1;
    d.receiveDatagram(flipped, from);
    expect(d.stats.decryptFailed).toBe(1);

    const sizes: Record<number, number> = { 1: 148, 2: 92, 3: 64, 4: 32 };
    let malformed = 0;
    for (const [type, size] of Object.entries(sizes)) {
      for (const n of [Number(size) - 1, Number(size) + 1, 4, 65536]) {
        if (Number(type) === 4 && n > Number(size)) continue; // longer transport messages are legal
        const m = new Uint8Array(n);
        m[0] = Number(type);
        d.receiveDatagram(m, from);
        malformed++;
      }
    }
    expect(d.stats.malformed).toBe(malformed);
    d.receiveDatagram(new Uint8Array(148).fill(0).map((_, i) => (i === 0 ? 1 : 0)), from);
    expect(d.pendingHandshakes).toBe(1); // a well-sized initiation waits in the handshake queue
    expect(d.workHandshakes()).toBe(1);
    expect(d.stats.badMac1).toBe(1);
    d.receiveDatagram(new Uint8Array([9, 0, 0, 0, 1, 2, 3]), from);
    d.receiveDatagram(new Uint8Array([1, 0, 0, 1]), from);
    expect(d.stats.unknownType).toBe(2);
    d.receiveDatagram(new Uint8Array(2), from);
    expect(d.stats.malformed).toBe(malformed + 1);
    expect(b.delivered).toHaveLength(1);
  });
});

describe('checked allowed IPs', () => {
  it('moves a prefix by default and refuses it when checked, naming the owner', () => {
    const { a, b } = pair();
    const p = a.device.crypto;
    const k1 = p.publicKey(p.generatePrivateKey());
    const k2 = p.publicKey(p.generatePrivateKey());
    const d = a.device;
    d.setPeer(k1, { allowedIps: [parsePrefix('10.9.0.0/24')] });
    d.setPeer(k2, { allowedIps: [parsePrefix('10.9.0.0/24')] });
    expect(d.peerInfo(d.getPeer(k1)!).allowedIps).toEqual([]);
    expect(() => d.setPeer(k1, { allowedIps: [parsePrefix('10.9.0.5/32')], checkOverlap: true })).toThrow(
      d.getPeer(k2)!.id,
    );
    expect(d.peerInfo(d.getPeer(k1)!).allowedIps).toEqual([]);
    void b;
  });
});

describe('configuration and roaming', () => {
  it('re-applying the configured endpoint does not undo roaming; a new endpoint does', () => {
    const { sim, a, b } = pair();
    a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', payload(30)));
    sim.pump();
    const peerOfB = b.device.getPeer(a.device.publicKey!)!;
    const moved = { host: '192.0.2.77', port: 4000 };
    a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', payload(30)));
    const f = sim.queue.pop()!;
    sim.queue = [];
    b.device.receiveDatagram(f.data, moved);
    expect(peerOfB.endpoint).toEqual(moved);
    b.device.setPeer(a.device.publicKey!, { endpoint: a.endpoint }); // same as configured: keep the roamed one
    expect(peerOfB.endpoint).toEqual(moved);
    const other = { host: '192.0.2.99', port: 5 };
    b.device.setPeer(a.device.publicKey!, { endpoint: other });
    expect(peerOfB.endpoint).toEqual(other);
  });
});

describe('handshake replay, flood and low-order keys', () => {
  it('drops a replayed initiation and one arriving within 20 ms of the last; accepts a later one', () => {
    const { sim, a, b } = pair();
    const p = a.device.crypto;
    const ident = makeIdentity(p, a.device.privateKey!);
    const hs = new Handshake(p, b.device.publicKey!);
    hs.precompute(p, ident);
    const macs = new CookieGenerator(p, () => sim.clock.now(), b.device.publicKey!);
    const initiation = (wallMs: number) => {
      const m = createInitiation(p, ident, hs, 7, tai64n(wallMs))!;
      macs.addMacs(m);
      return m;
    };
    const responses = () => b.sent.filter((f) => f.data[0] === MSG_RESPONSE).length;
    const deliver = (m: Uint8Array, from: typeof a.endpoint) => {
      b.device.receiveDatagram(m, from);
      b.device.workHandshakes();
    };
    const wall = sim.clock.wallNow();
    const first = initiation(wall);
    deliver(first, a.endpoint);
    expect(responses()).toBe(1);
    deliver(first, a.endpoint); // exact replay: timestamp not newer
    expect(b.device.stats.handshakeReplay).toBe(1);
    sim.clock.t += 5;
    deliver(initiation(wall + 1000), a.endpoint); // newer, but 5 ms after the last: flood
    expect(b.device.stats.handshakeReplay).toBe(2);
    expect(responses()).toBe(1);
    sim.clock.t += 30;
    deliver(initiation(wall + 2000), a.endpoint);
    expect(responses()).toBe(2);
  });

  it('never starts a handshake with a low-order (all-zero) peer key', () => {
    const { sim, a } = pair();
    const zero = new Uint8Array(32);
    a.device.setPeer(zero, { endpoint: { host: '192.0.2.9', port: 1 }, allowedIps: [parsePrefix('10.0.9.0/24')] });
    a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.9.1', payload(10)));
    sim.advance(30_000);
    expect(sim.log.filter((f) => f.to.host === '192.0.2.9')).toHaveLength(0);
  });
});

describe('initiate()', () => {
  it('starts a handshake at once with a known endpoint and refuses without one', () => {
    const { sim, a, b } = pair();
    expect(a.device.initiate(b.device.publicKey!)).toBe(true);
    sim.pump();
    expect(countType(a.sent, MSG_INITIATION)).toBe(1);
    expect(a.device.getPeer(b.device.publicKey!)!.current).not.toBeNull();
    const p = a.device.crypto;
    const stranger = p.publicKey(p.generatePrivateKey());
    a.device.setPeer(stranger, {});
    expect(a.device.initiate(stranger)).toBe(false);
    expect(a.device.initiate(new Uint8Array(32).fill(7))).toBe(false);
  });
});
