/**
 * TUN offload logic of the addon (native/offload.cc) through its test-only entry points:
 * `_groCoalesce` plans the writes of a batch (virtio_net_hdr + packet per write) and `_gsoSplit`
 * cuts what the kernel would hand us back into packets. Property: any mix of TCP/UDP segment trains
 * (IPv4 and IPv6) and other packets, coalesced and split again, gives back every packet byte for
 * byte, in order per flow, with valid checksums.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadNative } from '../src/io/native.js';

interface OffloadTesting {
  _gsoSplit(read: Uint8Array): Buffer[] | null;
  _groCoalesce(packets: Uint8Array[], udp: boolean): Buffer[];
}
const addon = loadNative() as unknown as OffloadTesting;

// ─── packet building (independent of the addon) ──────────────────────────────

function sum16(b: Uint8Array, initial = 0): number {
  let s = initial;
  for (let i = 0; i + 1 < b.length; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (b.length & 1) s += b[b.length - 1]! << 8;
  return s;
}
const fold = (s: number): number => {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
};
function pseudo(ip: Uint8Array, proto: number, l4len: number): number {
  const v4 = ip[0]! >> 4 === 4;
  return sum16(v4 ? ip.subarray(12, 20) : ip.subarray(8, 40), proto + l4len);
}
const put16 = (b: Uint8Array, at: number, v: number) => {
  b[at] = (v >> 8) & 0xff;
  b[at + 1] = v & 0xff;
};
const put32 = (b: Uint8Array, at: number, v: number) => {
  put16(b, at, (v >>> 16) & 0xffff);
  put16(b, at + 2, v & 0xffff);
};

/** True when the IPv4 header checksum (if any) and the TCP/UDP checksum of `p` are valid. */
function checksumsValid(p: Uint8Array): boolean {
  const v4 = p[0]! >> 4 === 4;
  const ipLen = v4 ? (p[0]! & 15) * 4 : 40;
  if (v4 && fold(sum16(p.subarray(0, ipLen))) !== 0xffff) return false;
  const proto = v4 ? p[9]! : p[6]!;
  if (proto !== 6 && proto !== 17) return true;
  const l4 = p.subarray(ipLen);
  return fold(sum16(l4, pseudo(p, proto, l4.length))) === 0xffff;
}

interface Flow {
  v6: boolean;
  udp: boolean;
  src: Uint8Array;
  dst: Uint8Array;
  sport: number;
  dport: number;
  ttl: number;
  tos: number;
  df: boolean;
  options: Uint8Array; // TCP options (multiple of 4 bytes)
}

interface Seg {
  flow: Flow;
  id: number;
  seq: number;
  ack: number;
  flags: number;
  payload: Uint8Array;
}

/** A complete packet with valid checksums. */
function build(s: Seg): Uint8Array {
  const f = s.flow;
  const ipLen = f.v6 ? 40 : 20;
  const l4hdr = f.udp ? 8 : 20 + f.options.length;
  const p = new Uint8Array(ipLen + l4hdr + s.payload.length);
  if (f.v6) {
    p[0] = 0x60 | (f.tos >> 4);
    p[1] = (f.tos & 15) << 4;
    put16(p, 4, p.length - 40);
    p[6] = f.udp ? 17 : 6;
    p[7] = f.ttl;
    p.set(f.src, 8);
    p.set(f.dst, 24);
  } else {
    p[0] = 0x45;
    p[1] = f.tos;
    put16(p, 2, p.length);
    put16(p, 4, s.id & 0xffff);
    p[6] = f.df ? 0x40 : 0;
    p[8] = f.ttl;
    p[9] = f.udp ? 17 : 6;
    p.set(f.src, 12);
    p.set(f.dst, 16);
    put16(p, 10, ~fold(sum16(p.subarray(0, 20))) & 0xffff);
  }
  const l4 = p.subarray(ipLen);
  put16(l4, 0, f.sport);
  put16(l4, 2, f.dport);
  if (f.udp) {
    put16(l4, 4, l4.length);
  } else {
    put32(l4, 4, s.seq >>> 0);
    put32(l4, 8, s.ack >>> 0);
    l4[12] = (l4hdr / 4) << 4;
    l4[13] = s.flags;
    put16(l4, 14, 65535);
    l4.set(f.options, 20);
  }
  l4.set(s.payload, l4hdr);
  let c = ~fold(sum16(l4, pseudo(p, f.udp ? 17 : 6, l4.length))) & 0xffff;
  if (f.udp && c === 0) c = 0xffff;
  put16(l4, f.udp ? 6 : 16, c);
  return p;
}

/** Flow identity: addresses, protocol and ports (other packets: their own bytes). */
function flowKey(p: Uint8Array): string {
  const v4 = p[0]! >> 4 === 4;
  const ipLen = v4 ? (p[0]! & 15) * 4 : 40;
  const proto = v4 ? p[9] : p[6];
  if (proto !== 6 && proto !== 17) return `other:${Buffer.from(p).toString('hex')}`;
  const addrs = v4 ? p.subarray(12, 20) : p.subarray(8, 40);
  return `${proto}:${Buffer.from(addrs).toString('hex')}:${Buffer.from(p.subarray(ipLen, ipLen + 4)).toString('hex')}`;
}

// ─── generators ──────────────────────────────────────────────────────────────

const flowArb = (udpAllowed: boolean) =>
  fc.record({
    v6: fc.boolean(),
    udp: udpAllowed ? fc.boolean() : fc.constant(false),
    src: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    dst: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    sport: fc.integer({ min: 1, max: 65535 }),
    dport: fc.integer({ min: 1, max: 65535 }),
    ttl: fc.integer({ min: 1, max: 255 }),
    tos: fc.constantFrom(0, 0x10, 0xb8),
    df: fc.boolean(),
    options: fc.constantFrom(new Uint8Array(0), Uint8Array.of(1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2)),
  }).map((f): Flow => ({ ...f, src: f.v6 ? f.src : f.src.subarray(0, 4), dst: f.v6 ? f.dst : f.dst.subarray(0, 4) }));

/** A train of one flow: equal payloads (the last may be shorter), consecutive ids and sequence numbers. */
const trainArb = (udpAllowed: boolean) =>
  fc
    .record({
      flow: flowArb(udpAllowed),
      size: fc.integer({ min: 1, max: 1400 }),
      count: fc.integer({ min: 1, max: 70 }),
      shortLast: fc.integer({ min: 0, max: 1399 }),
      pshLast: fc.boolean(),
      seq: fc.integer({ min: 0, max: 0xffffffff }),
      ack: fc.integer({ min: 0, max: 0xffffffff }),
      id: fc.integer({ min: 0, max: 0xffff }),
      seed: fc.integer({ min: 0, max: 255 }),
    })
    .map((t) => {
      const size = t.flow.v6 || t.flow.udp ? Math.min(t.size, 1200) : t.size;
      const segs: Seg[] = [];
      let seq = t.seq;
      for (let i = 0; i < t.count; i++) {
        const last = i === t.count - 1;
        const len = last && t.shortLast > 0 && t.shortLast < size ? t.shortLast : size;
        const payload = new Uint8Array(len).map((_, j) => (t.seed + i * 7 + j) & 0xff);
        segs.push({ flow: t.flow, id: t.id + i, seq, ack: t.ack, flags: last && t.pshLast ? 0x18 : 0x10, payload });
        seq = (seq + len) >>> 0;
      }
      return segs.map(build);
    });

/** Interleaves trains (each keeps its order) and sprinkles in packets that must not merge. */
const batchArb = (udpAllowed: boolean) =>
  fc
    .record({
      trains: fc.array(trainArb(udpAllowed), { minLength: 1, maxLength: 4 }),
      picks: fc.array(fc.nat(), { minLength: 300, maxLength: 300 }),
      corrupt: fc.option(fc.nat(), { nil: null }),
      extra: fc.array(fc.uint8Array({ minLength: 20, maxLength: 60 }), { maxLength: 3 }),
    })
    .map(({ trains, picks, corrupt, extra }) => {
      const queues = trains.map((t) => [...t]);
      const out: Uint8Array[] = [];
      let k = 0;
      while (queues.some((q) => q.length > 0)) {
        const live = queues.filter((q) => q.length > 0);
        out.push(live[picks[k++ % picks.length]! % live.length]!.shift()!);
      }
      for (const e of extra) {
        const p = new Uint8Array(e);
        p[0] = 0x45; // IPv4, protocol ICMP: never coalesced
        p[9] = 1;
        out.splice(picks[k++ % picks.length]! % (out.length + 1), 0, p);
      }
      if (corrupt !== null && out.length > 0) {
        const i = corrupt % out.length;
        const p = new Uint8Array(out[i]!);
        p[p.length - 1] ^= 0x5a; // a bad checksum: must be written alone, untouched
        out[i] = p;
      }
      return out;
    });

function byFlow(packets: Uint8Array[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const p of packets) {
    const k = flowKey(p);
    if (!m.has(k)) m.set(k, []);
    m.get(k)!.push(Buffer.from(p).toString('hex'));
  }
  return m;
}

function roundTrip(packets: Uint8Array[], udp: boolean): { writes: Buffer[]; back: Uint8Array[] } {
  const writes = addon._groCoalesce(packets, udp);
  const back: Uint8Array[] = [];
  for (const w of writes) {
    const segs = addon._gsoSplit(w);
    expect(segs).not.toBeNull();
    back.push(...segs!);
  }
  return { writes, back };
}

// ─── tests ───────────────────────────────────────────────────────────────────

describe('TUN offload: coalesce then split', () => {
  for (const udp of [false, true]) {
    it(`gives back every packet, in order per flow, with valid checksums (${udp ? 'TCP and UDP (USO)' : 'TCP only'})`, () => {
      fc.assert(
        fc.property(batchArb(udp), (packets) => {
          const { writes, back } = roundTrip(packets, udp);
          expect(back.length).toBe(packets.length);
          expect(byFlow(back)).toEqual(byFlow(packets));
          for (const p of back) if (flowKey(p).startsWith('other:') === false && checksumsValid(p) === false) {
            // Only the deliberately corrupted packet may fail, and it came back untouched (checked above).
            expect(packets.some((q) => Buffer.from(q).equals(Buffer.from(p)))).toBe(true);
          }
          expect(writes.length).toBeLessThanOrEqual(packets.length);
        }),
        { numRuns: 150 },
      );
    });
  }

  it('merges a full-sized train of one TCP flow into one write with a kernel-style virtio_net_hdr', () => {
    fc.assert(
      fc.property(trainArb(false), fc.boolean(), (train, v6) => {
        void v6;
        const mss = train[0]!.length;
        const ip = train[0]![0]! >> 4 === 4 ? 20 : 40;
        const hdr = ip + (train[0]![ip + 12]! >> 4) * 4;
        // As many full-sized segments as fit one merged packet (64 at most, 65,535 bytes).
        const fit = Math.min(64, Math.floor((65535 - hdr) / (mss - hdr)));
        const full = train.filter((p) => p.length === mss).slice(0, fit);
        const flagsAck = full.every((p) => {
          const ip = p[0]! >> 4 === 4 ? 20 : 40;
          return p[ip + 13] === 0x10;
        });
        fc.pre(full.length >= 2 && flagsAck);
        const writes = addon._groCoalesce(full, false);
        expect(writes.length).toBe(1);
        const w = writes[0]!;
        const v4 = w[10]! >> 4 === 4;
        const ipLen = v4 ? 20 : 40;
        expect(w[0]).toBe(1); // NEEDS_CSUM
        expect(w[1]).toBe(v4 ? 1 : 4); // GSO_TCPV4 / GSO_TCPV6
        expect(w.readUInt16LE(6)).toBe(ipLen); // csum_start
        expect(w.readUInt16LE(8)).toBe(16); // csum_offset
        const hdrLen = w.readUInt16LE(2);
        expect(w.readUInt16LE(4)).toBe(mss - hdrLen); // gso_size: one segment's payload
        const pkt = w.subarray(10);
        // The checksum field holds the pseudo-header sum of the merged packet (what the kernel expects).
        expect(pkt.readUInt16BE(ipLen + 16)).toBe(fold(pseudo(pkt, 6, pkt.length - ipLen)));
        expect(pkt.length).toBe(hdrLen + full.reduce((n, p) => n + p.length - hdrLen, 0));
      }),
      { numRuns: 100 },
    );
  });

  it('never merges across a gap in sequence numbers, a different ACK, TTL or TOS', () => {
    const flow: Flow = {
      v6: false, udp: false, src: Uint8Array.of(10, 0, 0, 1), dst: Uint8Array.of(10, 0, 0, 2),
      sport: 1000, dport: 2000, ttl: 64, tos: 0, df: true, options: new Uint8Array(0),
    };
    const pay = new Uint8Array(100).fill(7);
    const seg = (o: Partial<Seg>, f: Partial<Flow> = {}) => build({ flow: { ...flow, ...f }, id: 1, seq: 0, ack: 5, flags: 0x10, payload: pay, ...o });
    const cases: Uint8Array[][] = [
      [seg({ seq: 0, id: 1 }), seg({ seq: 101, id: 2 })], // gap
      [seg({ seq: 0, id: 1 }), seg({ seq: 100, id: 2, ack: 6 })], // other ACK
      [seg({ seq: 0, id: 1 }), seg({ seq: 100, id: 2 }, { ttl: 63 })], // other TTL
      [seg({ seq: 0, id: 1 }), seg({ seq: 100, id: 2 }, { tos: 0x10 })], // other TOS
      [seg({ seq: 0, id: 1 }), seg({ seq: 100, id: 3 })], // IPv4 id not consecutive
      [seg({ seq: 0, id: 1, flags: 0x18 }), seg({ seq: 100, id: 2 })], // PSH only last
      [seg({ seq: 0, id: 1, flags: 0x11 }), seg({ seq: 100, id: 2 })], // FIN
      [seg({ seq: 0, id: 1, payload: new Uint8Array(50) }), seg({ seq: 50, id: 2 })], // shorter only last
    ];
    for (const c of cases) expect(addon._groCoalesce(c, false).length).toBe(2);
    expect(addon._groCoalesce([seg({ seq: 0, id: 1 }), seg({ seq: 100, id: 2 })], false).length).toBe(1);
  });

  it('finishes the checksum of a single packet marked NEEDS_CSUM (field holds the pseudo-header sum)', () => {
    fc.assert(
      fc.property(trainArb(true), (train) => {
        const p = new Uint8Array(train[0]!);
        const v4 = p[0]! >> 4 === 4;
        const ipLen = v4 ? 20 : 40;
        const proto = v4 ? p[9]! : p[6]!;
        const field = ipLen + (proto === 6 ? 16 : 6);
        const expected = Buffer.from(p);
        put16(p, field, fold(pseudo(p, proto, p.length - ipLen)));
        const read = new Uint8Array(10 + p.length);
        read[0] = 1;
        new DataView(read.buffer).setUint16(6, ipLen, true);
        new DataView(read.buffer).setUint16(8, field - ipLen, true);
        read.set(p, 10);
        const out = addon._gsoSplit(read);
        expect(out).toHaveLength(1);
        expect(Buffer.from(out![0]!).equals(expected)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('rejects a virtio_net_hdr that does not describe the packet', () => {
    const p = build({
      flow: { v6: false, udp: false, src: Uint8Array.of(1, 2, 3, 4), dst: Uint8Array.of(5, 6, 7, 8), sport: 1, dport: 2, ttl: 64, tos: 0, df: true, options: new Uint8Array(0) },
      id: 1, seq: 1, ack: 1, flags: 0x10, payload: new Uint8Array(300),
    });
    const read = new Uint8Array(10 + p.length);
    read.set(p, 10);
    const dv = new DataView(read.buffer);
    read[1] = 4; // GSO_TCPV6 on an IPv4 packet
    dv.setUint16(4, 100, true);
    dv.setUint16(6, 20, true);
    expect(addon._gsoSplit(read)).toBeNull();
    read[1] = 1;
    dv.setUint16(6, 24, true); // csum_start past the IPv4 header
    expect(addon._gsoSplit(read)).toBeNull();
    read[0] = 1;
    read[1] = 0;
    dv.setUint16(6, 20, true);
    dv.setUint16(8, 5000, true); // checksum field outside the packet
    expect(addon._gsoSplit(read)).toBeNull();
  });
});
