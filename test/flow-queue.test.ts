/**
 * The flow-fair queue in front of the tunnel (native/flow_queue.cc) through its test-only entry
 * points: `_flowSchedule` pushes packets and pops in between, `_flowBucket` tells a packet's bucket.
 * Oracles: every packet leaves exactly once; packets of one flow (addresses, protocol, ports) leave in
 * the order they came; a packet of an idle flow leaves before the backlog of a bulk flow; two bulk
 * flows take turns.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadNative } from '../src/io/native.js';

interface FlowQueueTesting {
  _flowSchedule(ops: (Uint8Array | number)[], seed: number): number[];
  _flowBucket(packet: Uint8Array, seed: number): number;
}
const addon = loadNative() as unknown as FlowQueueTesting;

/** The quantum of the queue's deficit round robin (fq_codel's default). */
const QUANTUM = 1514;

interface Flow {
  v6: boolean;
  proto: number;
  src: number;
  dst: number;
  sport: number;
  dport: number;
}

/** An IP packet of `flow` with `len` bytes in all (at least the headers). */
function packet(f: Flow, len: number, fragment = false): Uint8Array {
  const ipLen = f.v6 ? 40 : 20;
  const p = new Uint8Array(Math.max(len, ipLen + 8));
  const dv = new DataView(p.buffer);
  if (f.v6) {
    p[0] = 0x60;
    dv.setUint16(4, p.length - 40);
    p[6] = f.proto;
    p[7] = 64;
    p[8] = 0xfd;
    dv.setUint32(20, f.src);
    p[24] = 0xfd;
    dv.setUint32(36, f.dst);
  } else {
    p[0] = 0x45;
    dv.setUint16(2, p.length);
    if (fragment) p[6] = 0x20; // more fragments
    p[8] = 64;
    p[9] = f.proto;
    dv.setUint32(12, f.src);
    dv.setUint32(16, f.dst);
  }
  dv.setUint16(ipLen, f.sport);
  dv.setUint16(ipLen + 2, f.dport);
  return p;
}

const flowKey = (f: Flow): string => `${f.v6 ? 6 : 4}/${f.proto}/${f.src}/${f.dst}/${[6, 17].includes(f.proto) ? `${f.sport}/${f.dport}` : ''}`;

const flowArb: fc.Arbitrary<Flow> = fc.record({
  v6: fc.boolean(),
  proto: fc.constantFrom(6, 17, 1),
  src: fc.integer({ min: 1, max: 4 }),
  dst: fc.integer({ min: 1, max: 4 }),
  sport: fc.integer({ min: 1, max: 3 }),
  dport: fc.constantFrom(80, 443),
});

describe('flow queue (native/flow_queue.cc)', () => {
  it('lets every packet out exactly once, in order within each flow, whatever the interleaving of pushes and pops', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.record({ flow: flowArb, len: fc.integer({ min: 28, max: 65_000 }) }), fc.integer({ min: 0, max: 5 })), { maxLength: 300 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (script, seed) => {
          const keys: string[] = [];
          const ops = script.map((op) => {
            if (typeof op === 'number') return op;
            keys.push(flowKey(op.flow));
            return packet(op.flow, op.len);
          });
          const out = addon._flowSchedule(ops, seed);
          expect([...out].sort((a, b) => a - b)).toEqual(keys.map((_, i) => i));
          const last = new Map<string, number>();
          for (const tag of out) {
            const k = keys[tag]!;
            expect(tag).toBeGreaterThan(last.get(k) ?? -1);
            last.set(k, tag);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('lets a packet of an idle flow out before the backlog of a bulk flow that has used its quantum', () => {
    fc.assert(
      fc.property(
        flowArb,
        flowArb,
        fc.integer({ min: 60, max: 65_000 }),
        fc.integer({ min: 2, max: 200 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (bulk, idle, size, backlog, seed) => {
          const spent = Math.ceil(QUANTUM / size) + 1; // pops after which the bulk flow's first quantum is gone
          fc.pre(flowKey(bulk) !== flowKey(idle));
          fc.pre(addon._flowBucket(packet(bulk, size), seed) !== addon._flowBucket(packet(idle, 84), seed));
          const ops: (Uint8Array | number)[] = Array.from({ length: backlog + spent }, () => packet(bulk, size));
          ops.push(spent, packet(idle, 84), 1);
          const out = addon._flowSchedule(ops, seed);
          // Tags: 0 … backlog+spent-1 are the bulk flow's, backlog+spent the idle flow's packet.
          expect(out.slice(0, spent)).toEqual(Array.from({ length: spent }, (_, i) => i));
          expect(out[spent]).toBe(backlog + spent);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('lets two bulk flows with packets of one size take turns', () => {
    fc.assert(
      fc.property(flowArb, flowArb, fc.integer({ min: 60, max: 65_000 }), fc.integer({ min: 10, max: 100 }), fc.integer({ min: 0, max: 0xffffffff }), (x, y, size, n, seed) => {
        fc.pre(addon._flowBucket(packet(x, size), seed) !== addon._flowBucket(packet(y, size), seed));
        const ops: Uint8Array[] = [];
        for (let i = 0; i < n; i++) ops.push(packet(x, size), packet(y, size));
        const out = addon._flowSchedule(ops, seed);
        const perTurn = Math.ceil(QUANTUM / size) + 1;
        let ax = 0;
        let ay = 0;
        for (const tag of out) {
          if (tag % 2 === 0) ax++;
          else ay++;
          if (ax < n && ay < n) expect(Math.abs(ax - ay)).toBeLessThanOrEqual(perTurn);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('puts the packets of one flow in one bucket: same addresses and ports, and IPv4 fragments by addresses', () => {
    const f: Flow = { v6: false, proto: 17, src: 1, dst: 2, sport: 5000, dport: 53 };
    for (let seed = 0; seed < 20; seed++) {
      expect(addon._flowBucket(packet(f, 100), seed)).toBe(addon._flowBucket(packet(f, 1400), seed));
      expect(addon._flowBucket(packet({ ...f, v6: true }, 100), seed)).toBe(addon._flowBucket(packet({ ...f, v6: true }, 900), seed));
      // Fragments carry no ports (a later one has none at all): their bucket ignores those bytes.
      expect(addon._flowBucket(packet(f, 100, true), seed)).toBe(addon._flowBucket(packet({ ...f, sport: 1, dport: 2 }, 100, true), seed));
    }
    // Different ports spread over buckets.
    const buckets = new Set(Array.from({ length: 64 }, (_, i) => addon._flowBucket(packet({ ...f, sport: 1000 + i }, 100), 7)));
    expect(buckets.size).toBeGreaterThan(48);
  });
});
