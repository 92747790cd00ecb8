/**
 * TUN offloads end to end: iperf3 TCP through tsguard ↔ tsguard and tsguard ↔ wireguard-go
 * (Debian's, no offloads of its own) with IPv4 and IPv6 inner addresses, both directions, in
 * network namespaces. The kernel must accept the coalesced writes (the receiver's TCP counts no
 * checksum errors) and hand over super-packets (the TUN's average packet is larger than its MTU).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configurePair, iperf3, nsRun, ping, shouldSkip, stopDaemon, teardownAll, Topology, type End, type Impl, type Pair } from './net/netns.js';

const SKIP = shouldSkip('tun-offload-netns.test.ts');
const MTU = 1420;

interface LinkCounters {
  rxBytes: number;
  rxPackets: number;
  txBytes: number;
  txPackets: number;
}

/** The kernel's counters of `e`'s TUN (rx: what the daemon wrote, tx: what it read). */
async function counters(e: End): Promise<LinkCounters> {
  const out = (await nsRun(e.ns, 'ip', ['-s', '-j', 'link', 'show', 'dev', e.ifname])).stdout;
  const s = (JSON.parse(out) as { stats64: { rx: { bytes: number; packets: number }; tx: { bytes: number; packets: number } } }[])[0]!.stats64;
  return { rxBytes: s.rx.bytes, rxPackets: s.rx.packets, txBytes: s.tx.bytes, txPackets: s.tx.packets };
}

/** TCP InCsumErrors of a namespace (IPv4 and IPv6 share the TCP MIB). */
async function tcpCsumErrors(ns: string): Promise<number> {
  const snmp = (await nsRun(ns, 'cat', ['/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Tcp:'));
  const names = snmp[0]!.split(/\s+/);
  const values = snmp[1]!.split(/\s+/);
  return Number(values[names.indexOf('InCsumErrors')]);
}

async function withEnv<T>(env: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

describe.skipIf(SKIP)('TUN offloads through the tunnel (network namespaces)', () => {
  let t: Topology;

  beforeAll(async () => {
    t = await Topology.create();
  });

  afterAll(async () => {
    await teardownAll();
  });

  async function up(peer: Impl, env: Record<string, string> = {}): Promise<Pair> {
    const p = await withEnv(env, () => configurePair(t, 'tsguard', peer));
    for (const dst of [p.b.inner4, p.b.inner6]) {
      const r = await ping(p.a.ns, dst, { count: 2, interval: 0.2, deadline: 10 });
      expect(r.received, `ping ${dst}: ${r.output}`).toBeGreaterThanOrEqual(1);
    }
    return p;
  }

  for (const peer of ['tsguard', 'wireguard-go'] as const satisfies readonly Impl[]) {
    for (const inner of [4, 6] as const) {
      it(`iperf3 TCP tsguard ↔ ${peer}, IPv${inner} inner, both directions, with super-packets on tsguard's TUN`, async () => {
        const p = await up(peer);
        try {
          const errs0 = [await tcpCsumErrors(p.a.ns), await tcpCsumErrors(p.b.ns)];
          for (const reverse of [false, true]) {
            const before = await counters(p.a);
            const r = await iperf3(p.b.ns, inner === 4 ? p.b.inner4 : p.b.inner6, p.a.ns, { seconds: 2, reverse });
            const after = await counters(p.a);
            const dir = reverse ? `${peer} → tsguard` : `tsguard → ${peer}`;
            console.log(`iperf3 TCP IPv${inner} ${dir}: ${r.mbps.toFixed(0)} Mbit/s`);
            expect(r.bytesReceived).toBeGreaterThan(1_000_000);
            // Sending, tsguard reads TSO super-packets; receiving, it writes coalesced ones.
            const bytes = reverse ? after.rxBytes - before.rxBytes : after.txBytes - before.txBytes;
            const packets = reverse ? after.rxPackets - before.rxPackets : after.txPackets - before.txPackets;
            expect(bytes / packets, `average ${reverse ? 'write' : 'read'} on tsguard's TUN (${dir})`).toBeGreaterThan(MTU);
          }
          expect([await tcpCsumErrors(p.a.ns), await tcpCsumErrors(p.b.ns)]).toEqual(errs0);
        } finally {
          await Promise.all([stopDaemon(p.a.daemon), stopDaemon(p.b.daemon)]);
        }
      });
    }
  }

  it('TSGUARD_TUN_OFFLOAD=0 moves only MTU-sized packets through the TUN', async () => {
    const p = await up('tsguard', { TSGUARD_TUN_OFFLOAD: '0' });
    try {
      const before = await counters(p.a);
      const r = await iperf3(p.b.ns, p.b.inner4, p.a.ns, { seconds: 1 });
      const after = await counters(p.a);
      expect(r.bytesReceived).toBeGreaterThan(100_000);
      expect((after.txBytes - before.txBytes) / (after.txPackets - before.txPackets)).toBeLessThanOrEqual(MTU);
    } finally {
      await Promise.all([stopDaemon(p.a.daemon), stopDaemon(p.b.daemon)]);
    }
  });
});
