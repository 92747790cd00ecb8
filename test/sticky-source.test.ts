/**
 * Sticky source address, as the kernel's WireGuard does it: a tsguard responder (B) answers from
 * the local address the initiator's packets arrived on, not from the route's choice. B's veth
 * has two addresses; the first (192.168.241.2 / fd00:241::2) is what the kernel picks for
 * traffic to A, the initiator (A: tsguard or Debian's wireguard-go) talks to the second one.
 * A's endpoint for B (`wg show endpoints`, which follows authenticated packets) must stay at the
 * second address: without stickiness B's replies would come from the first and A would roam
 * there. Then the second address is removed from B: B's sends from it fail, fall back to the
 * route's choice, A learns B's first address from them and traffic resumes both ways.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { configurePair, OUTER, ping, run, shouldSkip, teardownAll, Topology, waitFor, wg, type Impl, type Pair } from './net/netns.js';

const SKIP = shouldSkip('sticky-source.test.ts');

/** B's second address on vB per outer family; it matches A's address less than B's first one does. */
const SECOND = { 4: { addr: '192.168.241.3', prefix: 24 }, 6: { addr: 'fd00:241::8000:3', prefix: 64 } } as const;

const hostPort = (addr: string, port: number): string => (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);

async function endpointOf(ns: string, ifname: string, pub: string): Promise<string> {
  const line = (await wg(ns, ['show', ifname, 'endpoints'])).split('\n').find((l) => l.startsWith(pub));
  return line?.split('\t')[1] ?? '';
}

describe.skipIf(SKIP)('sticky source address on a tsguard responder with two addresses', () => {
  afterAll(async () => {
    await teardownAll();
  });

  const cases: { a: Impl; outer: 4 | 6 }[] = [
    { a: 'tsguard', outer: 4 },
    { a: 'tsguard', outer: 6 },
    { a: 'wireguard-go', outer: 4 },
  ];
  for (const { a: implA, outer } of cases) {
    it(`${implA} → tsguard over IPv${outer}: replies leave from the address A talks to, and from the other one once it is removed`, async () => {
      const t = await Topology.create();
      try {
        const second = SECOND[outer];
        const first = outer === 4 ? OUTER.b4 : OUTER.b6;
        const v = outer === 4 ? '-4' : '-6';
        await run('ip', ['-n', t.b!, v, 'addr', 'add', `${second.addr}/${second.prefix}`, 'dev', 'vB', ...(outer === 6 ? ['nodad'] : [])]);
        // B learns A's endpoint from A's handshake; A knows B only at B's second address.
        const p: Pair = await configurePair(t, implA, 'tsguard', { endpointOnB: false, outer });
        await wg(p.a.ns, ['set', p.a.ifname, 'peer', p.b.keys.pub, 'endpoint', hostPort(second.addr, p.b.port)]);

        const r1 = await ping(p.a.ns, p.b.inner4, { count: 5, interval: 0.1 });
        expect(r1.received, r1.output).toBe(5);
        const r2 = await ping(p.b.ns, p.a.inner4, { count: 5, interval: 0.1 });
        expect(r2.received, r2.output).toBe(5);
        // Every reply of B came from its second address (else A would have roamed to the first).
        expect(await endpointOf(p.a.ns, p.a.ifname, p.b.keys.pub)).toBe(hostPort(second.addr, p.b.port));

        // The second address goes away. B's next packets to A fail from it and leave from the
        // route's choice (the first address); A learns that endpoint and answers there.
        await run('ip', ['-n', t.b!, v, 'addr', 'del', `${second.addr}/${second.prefix}`, 'dev', 'vB']);
        await waitFor(
          "A to learn B's first address",
          async () => {
            await ping(p.b.ns, p.a.inner4, { count: 1, wait: 1 });
            return (await endpointOf(p.a.ns, p.a.ifname, p.b.keys.pub)) === hostPort(first, p.b.port);
          },
          20_000,
          100,
        );
        const r3 = await ping(p.a.ns, p.b.inner4, { count: 5, interval: 0.1 });
        expect(r3.received, r3.output).toBe(5);
        const r4 = await ping(p.b.ns, p.a.inner4, { count: 5, interval: 0.1 });
        expect(r4.received, r4.output).toBe(5);
        expect(await endpointOf(p.a.ns, p.a.ifname, p.b.keys.pub)).toBe(hostPort(first, p.b.port));
      } finally {
        await t.teardown();
      }
    });
  }
});
