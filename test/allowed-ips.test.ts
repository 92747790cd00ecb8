/**
 * AllowedIPs: unit tests and a property test against a linear-scan oracle.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AllowedIps, AllowedIpsOverlapError } from '../src/routing/allowed-ips.js';
import { formatPrefix, maskBytes, parseIp, parsePrefix, prefixContains, type Prefix } from '../src/routing/ip.js';

class Owner {
  constructor(readonly id: string) {}
}

describe('AllowedIps', () => {
  it('longest prefix wins, families are separate, /0 matches everything', () => {
    const t = new AllowedIps<Owner>();
    const a = new Owner('a');
    const b = new Owner('b');
    const c = new Owner('c');
    t.insert(parsePrefix('0.0.0.0/0'), a);
    t.insert(parsePrefix('10.0.0.0/8'), b);
    t.insert(parsePrefix('10.1.2.3/32'), c);
    t.insert(parsePrefix('::/0'), c);
    expect(t.lookup(4, parseIp('8.8.8.8').bytes)).toBe(a);
    expect(t.lookup(4, parseIp('10.9.9.9').bytes)).toBe(b);
    expect(t.lookup(4, parseIp('10.1.2.3').bytes)).toBe(c);
    expect(t.lookup(6, parseIp('2001:db8::1').bytes)).toBe(c);
    t.remove(parsePrefix('::/0'));
    expect(t.lookup(6, parseIp('2001:db8::1').bytes)).toBeUndefined();
    expect(t.size).toBe(3);
  });

  it('moves an identical prefix to the new owner (WireGuard semantics)', () => {
    const t = new AllowedIps<Owner>();
    const a = new Owner('a');
    const b = new Owner('b');
    t.insert(parsePrefix('10.0.0.0/24'), a);
    t.insert(parsePrefix('10.0.0.0/24'), b);
    expect(t.prefixesOf(a)).toEqual([]);
    expect(t.prefixesOf(b).map(formatPrefix)).toEqual(['10.0.0.0/24']);
    expect(t.size).toBe(1);
  });

  it('insertChecked refuses equal, containing and contained prefixes of another owner and names it', () => {
    const t = new AllowedIps<Owner>();
    const a = new Owner('peer-A');
    const b = new Owner('peer-B');
    t.insert(parsePrefix('10.0.0.0/24'), a);
    for (const p of ['10.0.0.0/24', '10.0.0.7/32', '10.0.0.0/16', '0.0.0.0/0']) {
      let err: unknown;
      try {
        t.insertChecked(parsePrefix(p), b);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(AllowedIpsOverlapError);
      expect((err as Error).message).toContain('peer-A');
      expect((err as Error).message).toContain('10.0.0.0/24');
    }
    expect(t.prefixesOf(b)).toEqual([]);
    t.insertChecked(parsePrefix('10.0.1.0/24'), b);
    t.insertChecked(parsePrefix('10.0.0.0/25'), a); // own prefixes never conflict
    expect(t.prefixesOf(a).map(formatPrefix)).toEqual(['10.0.0.0/24', '10.0.0.0/25']);
  });

  it('removeOwner removes exactly that owner’s prefixes', () => {
    const t = new AllowedIps<Owner>();
    const a = new Owner('a');
    const b = new Owner('b');
    t.insert(parsePrefix('fd00::/64'), a);
    t.insert(parsePrefix('fd00::1/128'), b);
    t.insert(parsePrefix('10.0.0.1/32'), a);
    t.removeOwner(a);
    expect(t.size).toBe(1);
    expect(t.lookup(6, parseIp('fd00::1').bytes)).toBe(b);
    expect(t.lookup(6, parseIp('fd00::2').bytes)).toBeUndefined();
    expect(t.lookup(4, parseIp('10.0.0.1').bytes)).toBeUndefined();
  });

  it('reads addresses straight from packet headers', () => {
    const t = new AllowedIps<Owner>();
    const a = new Owner('a');
    t.insert(parsePrefix('192.0.2.0/24'), a);
    const pkt = new Uint8Array(20);
    pkt[0] = 0x45;
    pkt.set([192, 0, 2, 9], 16);
    pkt.set([198, 51, 100, 1], 12);
    expect(t.lookupPacketDst(pkt)).toBe(a);
    expect(t.lookupPacketSrc(pkt)).toBeUndefined();
    expect(t.lookupPacketDst(pkt.subarray(0, 19))).toBeUndefined();
    expect(t.lookupPacketDst(new Uint8Array([0x70]))).toBeUndefined();
  });

  // ─── property test ────────────────────────────────────────────────────────
  type Op =
    | { kind: 'insert'; prefix: Prefix; owner: number }
    | { kind: 'remove'; prefix: Prefix }
    | { kind: 'removeOwner'; owner: number };

  // Small address spaces so that prefixes actually nest and collide.
  const v4Addr = fc.tuple(fc.constantFrom(10, 192), fc.constantFrom(0, 1), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 255 }))
    .map((b) => Uint8Array.from(b));
  const v6Addr = fc.tuple(fc.constantFrom(0xfd, 0x20), fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 255 }))
    .map(([x, y, z]) => {
      const b = new Uint8Array(16);
      b[0] = x;
      b[1] = y;
      b[15] = z;
      b[8] = z & 3;
      return b;
    });
  const prefixArb: fc.Arbitrary<Prefix> = fc.oneof(
    fc.tuple(v4Addr, fc.integer({ min: 0, max: 32 })).map(([b, bits]) => ({ family: 4 as const, bytes: maskBytes(b, bits), bits })),
    fc.tuple(v6Addr, fc.integer({ min: 0, max: 128 })).map(([b, bits]) => ({ family: 6 as const, bytes: maskBytes(b, bits), bits })),
  );
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('insert' as const), prefix: prefixArb, owner: fc.integer({ min: 0, max: 4 }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('remove' as const), prefix: prefixArb }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('removeOwner' as const), owner: fc.integer({ min: 0, max: 4 }) }) },
  );
  const addrArb = fc.oneof(v4Addr.map((bytes) => ({ family: 4 as const, bytes })), v6Addr.map((bytes) => ({ family: 6 as const, bytes })));

  it('matches a linear-scan oracle under random insert/remove/removeOwner', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), fc.array(addrArb, { minLength: 1, maxLength: 40 }), (ops, addrs) => {
        const owners = Array.from({ length: 5 }, (_, i) => new Owner(`o${i}`));
        const t = new AllowedIps<Owner>();
        let oracle: { prefix: Prefix; owner: number }[] = [];
        const same = (x: Prefix, y: Prefix) => x.family === y.family && x.bits === y.bits && formatPrefix(x) === formatPrefix(y);
        for (const op of ops) {
          if (op.kind === 'insert') {
            t.insert(op.prefix, owners[op.owner]!);
            oracle = oracle.filter((e) => !same(e.prefix, op.prefix));
            oracle.push({ prefix: op.prefix, owner: op.owner });
          } else if (op.kind === 'remove') {
            t.remove(op.prefix);
            oracle = oracle.filter((e) => !same(e.prefix, op.prefix));
          } else {
            t.removeOwner(owners[op.owner]!);
            oracle = oracle.filter((e) => e.owner !== op.owner);
          }
        }
        expect(t.size).toBe(oracle.length);
        for (const a of addrs) {
          const host: Prefix = { family: a.family, bytes: a.bytes, bits: a.family === 4 ? 32 : 128 };
          let best: { prefix: Prefix; owner: number } | undefined;
          for (const e of oracle) if (prefixContains(e.prefix, host) && (best === undefined || e.prefix.bits > best.prefix.bits)) best = e;
          expect(t.lookup(a.family, a.bytes)).toBe(best === undefined ? undefined : owners[best.owner]);
        }
        for (let i = 0; i < owners.length; i++) {
          const mine = oracle.filter((e) => e.owner === i).map((e) => formatPrefix(e.prefix));
          expect(t.prefixesOf(owners[i]!).map(formatPrefix)).toEqual(mine);
        }
      }),
      { numRuns: 300 },
    );
  });
});
