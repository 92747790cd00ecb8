/**
 * AllowedIPs: unit tests and property tests against a linear-scan oracle.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AllowedIps, AllowedIpsOverlapError } from '../src/routing/allowed-ips.js';
import { comparePrefixes, formatPrefix, maskPrefix, parseIp, parsePrefix, prefixContains, prefixesOverlap, type Prefix } from '../src/routing/ip.js';

const maskBytes = (bytes: Uint8Array, bits: number): Uint8Array => maskPrefix({ family: bytes.length === 4 ? 4 : 6, bytes, bits }).bytes;
/** Same block (host bits ignored). */
const prefixEquals = (a: Prefix, b: Prefix): boolean => comparePrefixes(maskPrefix(a), maskPrefix(b)) === 0;

class Owner {
  constructor(readonly id: string) {}
}

const P = parsePrefix;
const fmt = (ps: Prefix[]) => ps.map(formatPrefix);

function v4Packet(src: string, dst: string): Uint8Array {
  const p = new Uint8Array(28);
  p[0] = 0x45;
  p[3] = 28;
  p.set(parseIp(src).bytes, 12);
  p.set(parseIp(dst).bytes, 16);
  return p;
}

function v6Packet(src: string, dst: string): Uint8Array {
  const p = new Uint8Array(48);
  p[0] = 0x60;
  p[5] = 8;
  p.set(parseIp(src).bytes, 8);
  p.set(parseIp(dst).bytes, 24);
  return p;
}

describe('AllowedIps', () => {
  it('longest prefix wins, families are separate, /0 matches everything', () => {
    const t = new AllowedIps<Owner>();
    const [a, b, c] = [new Owner('a'), new Owner('b'), new Owner('c')];
    t.insert(P('0.0.0.0/0'), a);
    t.insert(P('10.0.0.0/8'), b);
    t.insert(P('10.1.2.3/32'), c);
    t.insert(P('::/0'), c);
    expect(t.lookupIp('8.8.8.8')).toBe(a);
    expect(t.lookupIp('10.9.9.9')).toBe(b);
    expect(t.lookupIp('10.1.2.3')).toBe(c);
    expect(t.lookupIp('10.1.2.2')).toBe(b);
    expect(t.lookupIp('2001:db8::1')).toBe(c);
    expect(t.lookupIp('::ffff:10.1.2.3')).toBe(c); // IPv4-mapped is IPv6 here
    t.remove(P('::/0'));
    expect(t.lookupIp('2001:db8::1')).toBeUndefined();
    expect(t.lookupIp('10.1.2.3')).toBe(c);
    t.remove(P('0.0.0.0/0'));
    expect(t.lookupIp('8.8.8.8')).toBeUndefined();
    expect(t.size).toBe(2);
  });

  it('/32 and /128 match exactly one address; v4 and v6 never mix', () => {
    const t = new AllowedIps<Owner>();
    const [a, b] = [new Owner('a'), new Owner('b')];
    t.insert(P('192.0.2.1/32'), a);
    t.insert(P('2001:db8::1/128'), b);
    t.insert(P('::c000:201/128'), b); // same low 32 bits as 192.0.2.1
    expect(t.lookupIp('192.0.2.1')).toBe(a);
    expect(t.lookupIp('192.0.2.0')).toBeUndefined();
    expect(t.lookupIp('192.0.2.2')).toBeUndefined();
    expect(t.lookupIp('2001:db8::1')).toBe(b);
    expect(t.lookupIp('2001:db8::')).toBeUndefined();
    expect(t.lookupIp('2001:db8::3')).toBeUndefined();
    expect(t.lookup(6, parseIp('::c000:201').bytes)).toBe(b);
    t.remove(P('::c000:201/128'));
    expect(t.lookupIp('192.0.2.1')).toBe(a);
    // A 16-byte buffer read as IPv4 only looks at 4 bytes from the offset.
    expect(t.lookup(4, parseIp('::c000:201').bytes, 12)).toBe(a);
    expect(t.lookup(4, new Uint8Array(3))).toBeUndefined();
    expect(t.lookup(6, new Uint8Array(20), 5)).toBeUndefined();
  });

  it('moves an identical prefix to the new owner (WireGuard semantics)', () => {
    const t = new AllowedIps<Owner>();
    const [a, b] = [new Owner('a'), new Owner('b')];
    t.insert(P('10.0.0.0/24'), a);
    t.insert(P('10.0.1.0/24'), a);
    t.insert(P('10.0.0.77/24'), b); // host bits ignored: same prefix
    expect(fmt(t.prefixesOf(a))).toEqual(['10.0.1.0/24']);
    expect(fmt(t.prefixesOf(b))).toEqual(['10.0.0.0/24']);
    expect(t.size).toBe(2);
    expect(t.get(P('10.0.0.0/24'))).toBe(b);
    expect(t.get(P('10.0.0.0/25'))).toBeUndefined();
    expect(t.lookupIp('10.0.0.9')).toBe(b);
    // Re-adding one's own prefix keeps its place.
    t.insert(P('10.0.2.0/24'), a);
    t.insert(P('10.0.1.0/24'), a);
    expect(fmt(t.prefixesOf(a))).toEqual(['10.0.1.0/24', '10.0.2.0/24']);
  });

  it('insertChecked refuses equal, containing and contained prefixes of another owner and names it', () => {
    const t = new AllowedIps<Owner>();
    const [a, b] = [new Owner('peer-A'), new Owner('peer-B')];
    t.insert(P('10.0.0.0/24'), a);
    t.insert(P('fd00::/64'), a);
    for (const p of ['10.0.0.0/24', '10.0.0.7/32', '10.0.0.128/25', '10.0.0.0/16', '0.0.0.0/0', 'fd00::5/128', '::/0', 'fd00::/48']) {
      let err: unknown;
      try {
        t.insertChecked(P(p), b);
      } catch (e) {
        err = e;
      }
      expect(err, p).toBeInstanceOf(AllowedIpsOverlapError);
      const e = err as AllowedIpsOverlapError<Owner>;
      expect(e.owner).toBe(a);
      expect(formatPrefix(e.attempted)).toBe(formatPrefix(P(p)));
      const conflicting = p.includes(':') ? 'fd00::/64' : '10.0.0.0/24';
      expect(formatPrefix(e.prefix)).toBe(conflicting);
      expect(e.message).toBe(`${formatPrefix(P(p))} overlaps ${conflicting}, which belongs to peer-A`);
    }
    expect(t.prefixesOf(b)).toEqual([]);
    expect(t.size).toBe(2);
    t.insertChecked(P('10.0.1.0/24'), b);
    t.insertChecked(P('10.0.0.0/25'), a); // own prefixes never conflict
    t.insertChecked(P('10.0.0.0/24'), a);
    expect(fmt(t.prefixesOf(a))).toEqual(['10.0.0.0/24', 'fd00::/64', '10.0.0.0/25']);
    expect(t.findOverlap(P('10.0.0.0/23'))?.owner).toBe(a); // no exception: anyone conflicts
    expect(t.findOverlap(P('10.0.2.0/24'))).toBeUndefined();
    expect(t.findOverlap(P('10.0.1.0/24'), b)).toBeUndefined();
    const named = new AllowedIps<Owner>((o) => `peer "${o.id}"`);
    named.insert(P('10.0.0.0/8'), a);
    expect(() => named.insertChecked(P('10.1.0.0/16'), b)).toThrow('10.1.0.0/16 overlaps 10.0.0.0/8, which belongs to peer "peer-A"');
  });

  it('remove only removes the exact prefix, optionally only for its owner', () => {
    const t = new AllowedIps<Owner>();
    const [a, b] = [new Owner('a'), new Owner('b')];
    t.insert(P('10.0.0.0/8'), a);
    t.insert(P('10.1.0.0/16'), b);
    expect(t.remove(P('10.0.0.0/9'))).toBe(false);
    expect(t.remove(P('10.1.0.0/16'), a)).toBe(false);
    expect(t.lookupIp('10.1.1.1')).toBe(b);
    expect(t.remove(P('10.1.0.0/16'), b)).toBe(true);
    expect(t.remove(P('10.1.0.0/16'))).toBe(false);
    expect(t.lookupIp('10.1.1.1')).toBe(a);
    expect(t.size).toBe(1);
    expect(t.countOf(b)).toBe(0);
  });

  it('removeOwner removes exactly that owner’s prefixes', () => {
    const t = new AllowedIps<Owner>();
    const [a, b] = [new Owner('a'), new Owner('b')];
    t.insert(P('fd00::/64'), a);
    t.insert(P('fd00::1/128'), b);
    t.insert(P('10.0.0.1/32'), a);
    t.insert(P('10.0.0.0/24'), b);
    expect(t.nodeCount).toBeLessThanOrEqual(8);
    expect(t.removeOwner(a)).toBe(2);
    expect(t.removeOwner(a)).toBe(0);
    expect(t.size).toBe(2);
    expect(t.lookupIp('fd00::1')).toBe(b);
    expect(t.lookupIp('fd00::2')).toBeUndefined();
    expect(t.lookupIp('10.0.0.1')).toBe(b);
    expect(t.prefixesOf(a)).toEqual([]);
    expect([...t.entries()].map(([p, o]) => [formatPrefix(p), o.id])).toEqual([
      ['fd00::1/128', 'b'],
      ['10.0.0.0/24', 'b'],
    ]);
    t.removeOwner(b);
    expect(t.nodeCount).toBe(0);
    t.insert(P('fd00::/64'), a);
    t.clear();
    expect(t.size).toBe(0);
    expect(t.nodeCount).toBe(0);
    expect(t.lookupIp('fd00::1')).toBeUndefined();
    expect([...t.entries()]).toEqual([]);
  });

  it('returned prefixes are copies', () => {
    const t = new AllowedIps<Owner>();
    const a = new Owner('a');
    const p = P('10.0.0.0/8');
    t.insert(p, a);
    p.bytes[0] = 11;
    t.prefixesOf(a)[0]!.bytes[0] = 12;
    expect(t.lookupIp('10.1.1.1')).toBe(a);
    expect(fmt(t.prefixesOf(a))).toEqual(['10.0.0.0/8']);
  });

  it('rejects malformed prefixes', () => {
    const t = new AllowedIps<Owner>();
    const a = new Owner('a');
    expect(() => t.insert({ family: 4, bytes: new Uint8Array(16), bits: 8 }, a)).toThrow(RangeError);
    expect(() => t.insert({ family: 6, bytes: new Uint8Array(16), bits: 129 }, a)).toThrow(RangeError);
    expect(() => t.insert({ family: 4, bytes: new Uint8Array(4), bits: 1.5 }, a)).toThrow(RangeError);
    expect(t.size).toBe(0);
  });

  it('reads addresses straight from packet headers', () => {
    const t = new AllowedIps<Owner>();
    const [a, b] = [new Owner('a'), new Owner('b')];
    t.insert(P('192.0.2.0/24'), a);
    t.insert(P('2001:db8::/32'), b);
    const p4 = v4Packet('198.51.100.1', '192.0.2.9');
    expect(t.lookupPacketDst(p4)).toBe(a);
    expect(t.lookupPacketSrc(p4)).toBeUndefined();
    expect(t.lookupPacketSrc(v4Packet('192.0.2.200', '1.1.1.1'))).toBe(a);
    const p6 = v6Packet('2001:db8:1::1', 'fd00::1');
    expect(t.lookupPacketSrc(p6)).toBe(b);
    expect(t.lookupPacketDst(p6)).toBeUndefined();
    expect(t.lookupPacketDst(p4.subarray(0, 19))).toBeUndefined();
    expect(t.lookupPacketSrc(v6Packet('2001:db8::1', '::').subarray(0, 39))).toBeUndefined();
    expect(t.lookupPacketDst(new Uint8Array(0))).toBeUndefined();
    expect(t.lookupPacketDst(Uint8Array.of(0x70, ...new Uint8Array(60)))).toBeUndefined();
  });

  it('100k prefixes and 10k owners: every lookup matches a longest-prefix oracle, removal leaves nothing', () => {
    const t = new AllowedIps<Owner>();
    const owners = Array.from({ length: 10_000 }, (_, i) => new Owner(`p${i}`));
    let seed = 12345;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    // Oracle: masked prefix → owner of the last insert (insert moves a prefix to the new owner).
    const key = (family: 4 | 6, bytes: Uint8Array, bits: number) => `${family}/${bits}/${Buffer.from(maskBytes(bytes, bits)).toString('hex')}`;
    const expected = new Map<string, Owner>();
    const longest = (family: 4 | 6, addr: Uint8Array): Owner | undefined => {
      for (let bits = family === 4 ? 32 : 128; bits >= 0; bits--) {
        const o = expected.get(key(family, addr, bits));
        if (o !== undefined) return o;
      }
      return undefined;
    };
    const inserted: Prefix[] = [];
    for (let i = 0; i < 50_000; i++) {
      const owner = owners[i % owners.length]!;
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, rnd());
      const b6 = new Uint8Array(16);
      for (let j = 0; j < 16; j += 4) new DataView(b6.buffer).setUint32(j, rnd());
      for (const p of [{ family: 4, bytes: b, bits: 16 + (i % 17) }, { family: 6, bytes: b6, bits: 128 - (i % 80) }] as Prefix[]) {
        t.insert(p, owner);
        expected.set(key(p.family, p.bytes, p.bits), owner);
        inserted.push(p);
      }
    }
    expect(t.size).toBe(expected.size);
    expect(t.nodeCount).toBeLessThanOrEqual(2 * t.size);

    // Addresses inside inserted prefixes (hits), from packets as the data path sees them.
    const pkt4 = new Uint8Array(28);
    pkt4[0] = 0x45;
    const pkt6 = new Uint8Array(48);
    pkt6[0] = 0x60;
    let hits = 0;
    for (let i = 0; i < inserted.length; i += 50) {
      const p = inserted[i]!;
      const addr = p.bytes.slice();
      addr[addr.length - 1]! ^= rnd() & 1; // a neighbour: still inside unless the prefix is a /32 or /128
      const want = longest(p.family, addr);
      expect(t.get(p)).toBe(expected.get(key(p.family, p.bytes, p.bits)));
      const pkt = p.family === 4 ? pkt4 : pkt6;
      pkt.set(addr, p.family === 4 ? 16 : 24);
      const got = t.lookupPacketDst(pkt);
      expect(got).toBe(want);
      if (got !== undefined) hits++;
    }
    expect(hits).toBeGreaterThan(inserted.length / 50 / 2); // most probes land in a prefix
    // Random addresses: mostly misses, and whatever matches is the longest match.
    for (let i = 0; i < 1_000; i++) {
      new DataView(pkt4.buffer).setUint32(16, rnd());
      expect(t.lookupPacketDst(pkt4)).toBe(longest(4, pkt4.subarray(16, 20)));
      new DataView(pkt6.buffer).setUint32(24, rnd());
      expect(t.lookupPacketDst(pkt6)).toBe(longest(6, pkt6.subarray(24, 40)));
    }

    let removed = 0;
    for (const o of owners) removed += t.removeOwner(o);
    expect(removed).toBe(expected.size);
    expect(t.size).toBe(0);
    expect(t.nodeCount).toBe(0);
    expect(t.lookupPacketDst(pkt6)).toBeUndefined();
  });

  // ─── property tests ───────────────────────────────────────────────────────

  type Op =
    | { kind: 'insert'; prefix: Prefix; owner: number }
    | { kind: 'insertChecked'; prefix: Prefix; owner: number }
    | { kind: 'remove'; prefix: Prefix; owner: number | null }
    | { kind: 'removeOwner'; owner: number };

  const bytesWith = (len: number, set: [number, number][]) => {
    const b = new Uint8Array(len);
    for (const [i, v] of set) b[i] = v;
    return b;
  };
  // Small address spaces so that prefixes actually nest and collide: a few /24s, a few /120s …
  const v4Small = fc
    .tuple(fc.constantFrom(10, 192), fc.constantFrom(0, 1), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 255 }))
    .map(([x, y, z, w]) => bytesWith(4, [[0, x], [1, y], [2, z], [3, w]]));
  const bit = fc.integer({ min: 0, max: 1 });
  const v6Small = fc
    .tuple(fc.constantFrom(0xfd, 0x20), bit, bit, fc.integer({ min: 0, max: 3 }), bit, fc.integer({ min: 0, max: 255 }))
    .map(([x, y, u, z, v, w]) => bytesWith(16, [[0, x], [1, y], [5, u << 3], [8, z], [11, v], [14, z], [15, w]])); // every word varies
  // … and the whole space too.
  const v4Any = fc.uint8Array({ minLength: 4, maxLength: 4 });
  const v6Any = fc.uint8Array({ minLength: 16, maxLength: 16 });
  const v4Addr = fc.oneof({ weight: 4, arbitrary: v4Small }, { weight: 1, arbitrary: v4Any });
  const v6Addr = fc.oneof({ weight: 4, arbitrary: v6Small }, { weight: 1, arbitrary: v6Any });
  const v4Bits = fc.oneof(fc.integer({ min: 0, max: 32 }), fc.integer({ min: 20, max: 32 }));
  const v6Bits = fc.oneof(fc.integer({ min: 0, max: 128 }), fc.integer({ min: 100, max: 128 }), fc.constantFrom(0, 8, 16, 64));
  const prefixArb: fc.Arbitrary<Prefix> = fc.oneof(
    fc.tuple(v4Addr, v4Bits).map(([b, bits]) => ({ family: 4 as const, bytes: maskBytes(b, bits), bits })),
    fc.tuple(v6Addr, v6Bits).map(([b, bits]) => ({ family: 6 as const, bytes: maskBytes(b, bits), bits })),
  );
  const N_OWNERS = 5;
  const ownerArb = fc.integer({ min: 0, max: N_OWNERS - 1 });
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('insert' as const), prefix: prefixArb, owner: ownerArb }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('insertChecked' as const), prefix: prefixArb, owner: ownerArb }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('remove' as const), prefix: prefixArb, owner: fc.option(ownerArb) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('removeOwner' as const), owner: ownerArb }) },
  );
  const addrArb = fc.oneof(v4Addr.map((bytes) => ({ family: 4 as const, bytes })), v6Addr.map((bytes) => ({ family: 6 as const, bytes })));

  interface Entry {
    prefix: Prefix;
    owner: number;
  }

  /** Plain array oracle: per-owner insertion order, last insert wins for identical prefixes. */
  class Oracle {
    entries: Entry[] = [];
    insert(prefix: Prefix, owner: number): void {
      const i = this.entries.findIndex((e) => prefixEquals(e.prefix, prefix));
      if (i >= 0 && this.entries[i]!.owner === owner) return;
      if (i >= 0) this.entries.splice(i, 1);
      this.entries.push({ prefix, owner });
    }
    overlap(prefix: Prefix, except: number): Entry | undefined {
      return this.entries.find((e) => e.owner !== except && prefixesOverlap(e.prefix, prefix));
    }
    remove(prefix: Prefix, owner: number | null): boolean {
      const i = this.entries.findIndex((e) => prefixEquals(e.prefix, prefix) && (owner === null || e.owner === owner));
      if (i >= 0) this.entries.splice(i, 1);
      return i >= 0;
    }
    removeOwner(owner: number): number {
      const before = this.entries.length;
      this.entries = this.entries.filter((e) => e.owner !== owner);
      return before - this.entries.length;
    }
    lookup(family: 4 | 6, bytes: Uint8Array): number | undefined {
      const host: Prefix = { family, bytes, bits: family === 4 ? 32 : 128 };
      let best: Entry | undefined;
      for (const e of this.entries) if (prefixContains(e.prefix, host) && (best === undefined || e.prefix.bits > best.prefix.bits)) best = e;
      return best?.owner;
    }
  }

  it('matches a linear-scan oracle under random insert/insertChecked/remove/removeOwner', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 80 }), fc.array(addrArb, { minLength: 1, maxLength: 40 }), (ops, addrs) => {
        const owners = Array.from({ length: N_OWNERS }, (_, i) => new Owner(`o${i}`));
        const idx = new Map(owners.map((o, i) => [o, i]));
        const t = new AllowedIps<Owner>();
        const oracle = new Oracle();
        const check = (probe: { family: 4 | 6; bytes: Uint8Array }[]) => {
          expect(t.size).toBe(oracle.entries.length);
          for (const a of probe) {
            const want = oracle.lookup(a.family, a.bytes);
            expect(t.lookup(a.family, a.bytes)).toBe(want === undefined ? undefined : owners[want]);
            // Same answer read from a packet header.
            const pkt = a.family === 4 ? new Uint8Array(20) : new Uint8Array(40);
            pkt[0] = a.family === 4 ? 0x45 : 0x60;
            pkt.set(a.bytes, a.family === 4 ? 16 : 24);
            expect(t.lookupPacketDst(pkt)).toBe(t.lookup(a.family, a.bytes));
          }
        };
        for (const op of ops) {
          if (op.kind === 'insert') {
            t.insert(op.prefix, owners[op.owner]!);
            oracle.insert(op.prefix, op.owner);
          } else if (op.kind === 'insertChecked') {
            const conflict = oracle.overlap(op.prefix, op.owner);
            if (conflict === undefined) {
              t.insertChecked(op.prefix, owners[op.owner]!);
              oracle.insert(op.prefix, op.owner);
            } else {
              expect(() => t.insertChecked(op.prefix, owners[op.owner]!)).toThrow(AllowedIpsOverlapError);
              const f = t.findOverlap(op.prefix, owners[op.owner]!)!;
              // The reported entry really is in the table and really conflicts.
              expect(f.owner).not.toBe(owners[op.owner]);
              expect(prefixesOverlap(f.prefix, op.prefix)).toBe(true);
              expect(oracle.entries.some((e) => owners[e.owner] === f.owner && prefixEquals(e.prefix, f.prefix))).toBe(true);
            }
          } else if (op.kind === 'remove') {
            const want = oracle.remove(op.prefix, op.owner);
            expect(t.remove(op.prefix, op.owner === null ? undefined : owners[op.owner])).toBe(want);
          } else {
            expect(t.removeOwner(owners[op.owner]!)).toBe(oracle.removeOwner(op.owner));
          }
          // Probe the prefixes themselves and their neighbours as we go.
          if (op.kind !== 'removeOwner') check([{ family: op.prefix.family, bytes: op.prefix.bytes }]);
        }
        check(addrs);
        expect(t.nodeCount).toBeLessThanOrEqual(2 * t.size); // no leaked glue
        for (let i = 0; i < N_OWNERS; i++) {
          const mine = oracle.entries.filter((e) => e.owner === i).map((e) => formatPrefix(e.prefix));
          expect(fmt(t.prefixesOf(owners[i]!))).toEqual(mine);
          expect(t.countOf(owners[i]!)).toBe(mine.length);
        }
        const all = [...t.entries()].map(([p, o]) => `${formatPrefix(p)} ${idx.get(o)}`).sort();
        expect(all).toEqual(oracle.entries.map((e) => `${formatPrefix(e.prefix)} ${e.owner}`).sort());
        for (const e of oracle.entries) expect(t.get(e.prefix)).toBe(owners[e.owner]);
        for (const o of owners) t.removeOwner(o);
        expect([t.size, t.nodeCount]).toEqual([0, 0]);
      }),
      { numRuns: 400 },
    );
  });

  it('findOverlap agrees with the oracle', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(prefixArb, ownerArb), { maxLength: 40 }),
        fc.array(fc.tuple(prefixArb, fc.option(ownerArb)), { minLength: 1, maxLength: 20 }),
        (inserts, probes) => {
          const owners = Array.from({ length: N_OWNERS }, (_, i) => new Owner(`o${i}`));
          const t = new AllowedIps<Owner>();
          const oracle = new Oracle();
          for (const [p, o] of inserts) {
            t.insert(p, owners[o]!);
            oracle.insert(p, o);
          }
          for (const [p, except] of probes) {
            const got = t.findOverlap(p, except === null ? undefined : owners[except]);
            const conflicts = oracle.entries.filter((e) => e.owner !== (except ?? -1) && prefixesOverlap(e.prefix, p));
            if (conflicts.length === 0) {
              expect(got).toBeUndefined();
            } else {
              expect(got).toBeDefined();
              expect(conflicts.some((e) => owners[e.owner] === got!.owner && prefixEquals(e.prefix, got!.prefix))).toBe(true);
            }
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});
