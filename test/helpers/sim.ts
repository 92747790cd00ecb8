/**
 * In-memory network and fake clock for driving sans-IO devices in tests.
 * Like the runtime, the sim drives each device's handshake queue: a node
 * works off its queued handshake messages right after each datagram it is
 * given (see {@link Sim.pump}); tests that feed a device by hand call
 * `device.workHandshakes()` (or {@link Sim.pump}) themselves.
 */
import { Device, type DeviceOptions } from '../../src/device/device.js';
import type { Clock, Endpoint } from '../../src/device/types.js';
import type { CryptoProvider } from '../../src/crypto/provider.js';
import { parsePrefix } from '../../src/routing/ip.js';

/** A controllable clock. Monotonic time starts at an arbitrary non-zero value. */
export class FakeClock implements Clock {
  t = 5_000_000;
  readonly wallBase = 1_700_000_000_000 - 5_000_000;
  now(): number {
    return this.t;
  }
  wallNow(): number {
    return this.wallBase + this.t;
  }
}

/** A datagram in flight. */
export interface Flight {
  from: Endpoint;
  to: Endpoint;
  data: Uint8Array;
}

/** A node of the simulated network: a device plus what it delivered. */
export interface Node {
  device: Device;
  endpoint: Endpoint;
  delivered: Uint8Array[];
  sent: Flight[];
}

/** Network of devices keyed by endpoint, with a programmable filter. */
export class Sim {
  readonly clock = new FakeClock();
  readonly nodes: Node[] = [];
  queue: Flight[] = [];
  /** Return false to drop a datagram. */
  filter: (f: Flight) => boolean = () => true;
  /** Every datagram ever sent (including dropped ones). */
  readonly log: Flight[] = [];
  /**
   * Deliver as the runtime does: each round hands every node the datagrams queued for it as one
   * {@link Device.batch} (copies: inside a batch the device decrypts in place), then works its
   * handshake queue in a batch of its own.
   */
  batched = false;

  constructor(readonly crypto?: CryptoProvider) {}

  #seed = 1;

  /**
   * Add a device at `endpoint`. Decrypted packets go to `onPacket` first (a hub's relay, say);
   * those it does not consume (returns false) are recorded in `delivered`.
   */
  add(endpoint: Endpoint, opts: Partial<DeviceOptions> = {}, onPacket?: (packet: Uint8Array, fromPeer: string) => boolean): Node {
    const node: Node = { device: undefined as unknown as Device, endpoint, delivered: [], sent: [] };
    node.device = new Device({
      clock: this.clock,
      crypto: this.crypto,
      random: mulberry32(this.#seed++ * 0x9e3779b9),
      ...opts,
      io: {
        sendDatagram: (data, to) => {
          // A device that reuses its datagram blocks needs a sink that is done with them when the batch ends.
          const f = { from: endpoint, to, data: opts.reuseDatagrams === true ? data.slice() : data };
          node.sent.push(f);
          this.log.push(f);
          this.queue.push(f);
        },
        deliverPacket: (packet, fromPeer) => {
          if (onPacket?.(packet, fromPeer)) return;
          node.delivered.push(packet.slice());
        },
      },
    });
    this.nodes.push(node);
    return node;
  }

  /**
   * Work off every node's queued handshake messages, then deliver queued
   * datagrams (and the ones they cause) until the network is quiet; each
   * receiver works its handshake queue after each datagram.
   */
  pump(): void {
    for (const n of this.nodes) n.device.workHandshakes();
    if (this.batched) return this.#pumpBatched();
    for (let guard = 0; this.queue.length > 0 && guard < 100_000; guard++) {
      const f = this.queue.shift()!;
      if (!this.filter(f)) continue;
      const dst = this.nodes.find((n) => n.endpoint.host === f.to.host && n.endpoint.port === f.to.port);
      if (dst === undefined) continue;
      dst.device.receiveDatagram(f.data, f.from);
      dst.device.workHandshakes();
    }
  }

  #tickAll(): void {
    for (const n of this.nodes) {
      if (this.batched) n.device.batch(() => n.device.tick());
      else n.device.tick();
    }
  }

  #pumpBatched(): void {
    for (let guard = 0; this.queue.length > 0 && guard < 100_000; guard++) {
      const round = new Map<Node, Flight[]>();
      for (const f of this.queue.splice(0)) {
        if (!this.filter(f)) continue;
        const dst = this.nodes.find((n) => n.endpoint.host === f.to.host && n.endpoint.port === f.to.port);
        if (dst === undefined) continue;
        round.set(dst, [...(round.get(dst) ?? []), f]);
      }
      for (const [dst, flights] of round) {
        dst.device.batch(() => {
          for (const f of flights) dst.device.receiveDatagram(f.data.slice(), f.from);
        });
        dst.device.batch(() => dst.device.workHandshakes());
      }
    }
  }

  /** Advance time by `ms`, firing every timer at its deadline and pumping the network. */
  advance(ms: number): void {
    const end = this.clock.t + ms;
    this.pump();
    for (;;) {
      const next = Math.min(...this.nodes.map((n) => n.device.nextDeadline()));
      if (next > end) break;
      this.clock.t = Math.max(this.clock.t, next);
      this.#tickAll();
      this.pump();
    }
    this.clock.t = end;
    this.#tickAll();
    this.pump();
  }
}

/** Small seeded PRNG so that runs are reproducible but jitter differs between devices. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Two peered devices A (10.0.0.1, fd00::1) and B (10.0.0.2, fd00::2). */
export function pair(crypto?: CryptoProvider, opts: { keepaliveA?: number; keepaliveB?: number } = {}) {
  const sim = new Sim(crypto);
  const a = sim.add({ host: '192.0.2.1', port: 51820 });
  const b = sim.add({ host: '192.0.2.2', port: 51821 });
  const p = a.device.crypto;
  const ka = p.generatePrivateKey();
  const kb = p.generatePrivateKey();
  a.device.setPrivateKey(ka);
  b.device.setPrivateKey(kb);
  a.device.setPeer(p.publicKey(kb), {
    endpoint: b.endpoint,
    allowedIps: [parsePrefix('10.0.0.2/32'), parsePrefix('fd00::2/128')],
    persistentKeepalive: opts.keepaliveA ?? 0,
  });
  b.device.setPeer(p.publicKey(ka), {
    endpoint: a.endpoint,
    allowedIps: [parsePrefix('10.0.0.1/32'), parsePrefix('fd00::1/128')],
    persistentKeepalive: opts.keepaliveB ?? 0,
  });
  return { sim, a, b, pubA: p.publicKey(ka), pubB: p.publicKey(kb) };
}

/** Internet checksum. */
function checksum(b: Uint8Array, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i += 2) s += (b[off + i]! << 8) | (b[off + i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** A UDP-in-IPv4 packet with the given addresses and payload. */
export function ipv4Packet(src: string, dst: string, payload: Uint8Array, id = 0): Uint8Array {
  const total = 20 + 8 + payload.length;
  const p = new Uint8Array(total);
  p[0] = 0x45;
  p[2] = total >> 8;
  p[3] = total & 0xff;
  p[4] = id >> 8;
  p[5] = id & 0xff;
  p[8] = 64;
  p[9] = 17;
  p.set(src.split('.').map(Number), 12);
  p.set(dst.split('.').map(Number), 16);
  const c = checksum(p, 0, 20);
  p[10] = c >> 8;
  p[11] = c & 0xff;
  p[20] = 0x30;
  p[21] = 0x39;
  p[22] = 0x30;
  p[23] = 0x39;
  p[24] = (8 + payload.length) >> 8;
  p[25] = (8 + payload.length) & 0xff;
  p.set(payload, 28);
  return p;
}

/** A UDP-in-IPv6 packet (addresses given as 16-byte arrays via parseIp). */
export function ipv6Packet(src: Uint8Array, dst: Uint8Array, payload: Uint8Array): Uint8Array {
  const plen = 8 + payload.length;
  const p = new Uint8Array(40 + plen);
  p[0] = 0x60;
  p[4] = plen >> 8;
  p[5] = plen & 0xff;
  p[6] = 17;
  p[7] = 64;
  p.set(src, 8);
  p.set(dst, 24);
  p[44] = plen >> 8;
  p[45] = plen & 0xff;
  p.set(payload, 48);
  return p;
}

/** Count datagrams of a given message type in a list of flights. */
export function countType(flights: Flight[], type: number): number {
  return flights.filter((f) => f.data[0] === type).length;
}
