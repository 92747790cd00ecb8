/**
 * Interoperability acceptance: tsguard-wg against wireguard-go (and itself) in two network
 * namespaces joined by a veth pair. Each side as initiator, IPv4/IPv6 inner traffic over
 * IPv4/IPv6 outer endpoints, iperf3 TCP, and `wg show dump` parity with wireguard-go.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  configurePair,
  dump,
  iperf3,
  OUTER,
  ping,
  shouldSkip,
  stableDumps,
  stopDaemon,
  teardownAll,
  Topology,
  type Dump,
  type End,
  type Impl,
  type Pair,
} from './net/netns.js';

const SKIP = shouldSkip('interop.test.ts');

async function stopPair(p: Pair): Promise<void> {
  await Promise.all([stopDaemon(p.a.daemon), stopDaemon(p.b.daemon)]);
}

/** Ping `to`'s tunnel addresses (IPv4 then IPv6) from `from` and expect every reply. */
async function pingBoth(from: End, to: End): Promise<void> {
  for (const dst of [to.inner4, to.inner6]) {
    const r = await ping(from.ns, dst, { count: 3, interval: 0.1, deadline: 10 });
    // ≥: replies that were held while a handshake completed may arrive together with later ones.
    expect(r.received, `ping ${dst} from ${from.ifname} (${from.daemon.impl}):\n${r.output}`).toBeGreaterThanOrEqual(3);
  }
}

function endpointOf(e: End, outer: 4 | 6): string {
  return outer === 4 ? `${e.outer4}:${e.port}` : `[${e.outer6}]:${e.port}`;
}

describe.skipIf(SKIP)('tsguard-wg ↔ wireguard-go interop (network namespaces)', () => {
  let t: Topology;

  beforeAll(async () => {
    t = await Topology.create();
  });

  afterAll(async () => {
    await teardownAll();
  });

  for (const outer of [4, 6] as const) {
    for (const initiator of ['tsguard', 'wireguard-go'] as const) {
      it(`${initiator} initiates; IPv4 and IPv6 inner traffic over IPv${outer} endpoints`, async () => {
        const p = await configurePair(t, 'tsguard', 'wireguard-go', { outer });
        try {
          // Fresh daemons: neither side has a session yet, so whoever sends first initiates.
          for (const e of [p.a, p.b]) {
            const d = await dump(e.ns, e.ifname);
            expect(d.peers).toHaveLength(1);
            expect(d.peers[0]!.latestHandshake, `${e.daemon.impl} has no handshake before traffic`).toBe(0);
          }
          const [first, second] = initiator === 'tsguard' ? [p.a, p.b] : [p.b, p.a];
          await pingBoth(first, second);
          await pingBoth(second, first);
          const [da, db] = await stableDumps(p.a, p.b);
          // Who initiated, from the byte counters: transport messages are 32 + a multiple of 16
          // bytes, an initiation is 148 (≡ 4 mod 16) and a response 92 (≡ 12 mod 16). One
          // handshake in all: the initiator's tx ≡ 4, the responder's tx ≡ 12 (mod 16).
          const [di, dr] = initiator === 'tsguard' ? [da, db] : [db, da];
          expect(di.peers[0]!.tx % 16, `initiator (${initiator}) sent exactly one initiation: tx=${di.peers[0]!.tx}`).toBe(4);
          expect(dr.peers[0]!.tx % 16, `responder sent exactly one response: tx=${dr.peers[0]!.tx}`).toBe(12);
          expect(da.peers[0]!.endpoint).toBe(endpointOf(p.b, outer));
          expect(db.peers[0]!.endpoint).toBe(endpointOf(p.a, outer));
          expect(da.peers[0]!.latestHandshake).toBeGreaterThan(0);
          expect(db.peers[0]!.latestHandshake).toBeGreaterThan(0);
        } finally {
          await stopPair(p);
        }
      });
    }
  }

  for (const peer of ['wireguard-go', 'tsguard'] as const satisfies readonly Impl[]) {
    it(`iperf3 TCP through tsguard ↔ ${peer}, both directions`, async () => {
      const p = await configurePair(t, 'tsguard', peer);
      try {
        await pingBoth(p.a, p.b);
        for (const reverse of [false, true]) {
          const r = await iperf3(p.b.ns, p.b.inner4, p.a.ns, { seconds: 2, reverse });
          const dir = reverse ? `${peer} (B) → tsguard (A)` : `tsguard (A) → ${peer} (B)`;
          console.log(`iperf3 TCP ${dir}: ${r.mbps.toFixed(0)} Mbit/s (${r.bytesReceived} bytes in ${r.seconds.toFixed(1)} s)`);
          expect(r.bytesSent).toBeGreaterThan(0);
          expect(r.bytesReceived).toBeGreaterThan(0);
        }
      } finally {
        await stopPair(p);
      }
    });
  }

  for (const outer of [4, 6] as const) {
    it(`wg show dump on tsguard matches wireguard-go's mirror view (IPv${outer} endpoints)`, async () => {
      const start = Math.floor(Date.now() / 1000);
      const p = await configurePair(t, 'tsguard', 'wireguard-go', { outer, psk: true, keepalive: 25 });
      try {
        await pingBoth(p.a, p.b);
        await pingBoth(p.b, p.a);
        const [da, db]: [Dump, Dump] = await stableDumps(p.a, p.b);
        const now = Math.ceil(Date.now() / 1000);
        // Interface lines.
        for (const [d, e] of [
          [da, p.a],
          [db, p.b],
        ] as const) {
          expect(d.iface).toEqual({ privateKey: e.keys.priv, publicKey: e.keys.pub, listenPort: String(e.port), fwmark: 'off' });
          expect(d.peers).toHaveLength(1);
        }
        const pa = da.peers[0]!; // tsguard's view of wireguard-go
        const pb = db.peers[0]!; // wireguard-go's view of tsguard
        expect(pa.publicKey).toBe(p.b.keys.pub);
        expect(pb.publicKey).toBe(p.a.keys.pub);
        expect(pa.presharedKey).toBe(p.psk);
        expect(pb.presharedKey).toBe(p.psk);
        // Same endpoint form (IPv6 in brackets) on both sides.
        expect(pa.endpoint).toBe(endpointOf(p.b, outer));
        expect(pb.endpoint).toBe(endpointOf(p.a, outer));
        // Same allowed-ips rendering (order as configured, v4 then v6).
        expect(pa.allowedIps).toBe(`${p.b.inner4}/32,${p.b.inner6}/128`);
        expect(pb.allowedIps).toBe(`${p.a.inner4}/32,${p.a.inner6}/128`);
        expect(pa.keepalive).toBe('25');
        expect(pb.keepalive).toBe('25');
        // Handshake: set, recent, and the same handshake seen from both sides.
        for (const hs of [pa.latestHandshake, pb.latestHandshake]) {
          expect(hs).toBeGreaterThanOrEqual(start - 1);
          expect(hs).toBeLessThanOrEqual(now + 1);
        }
        expect(Math.abs(pa.latestHandshake - pb.latestHandshake)).toBeLessThanOrEqual(2);
        // Transfer counters: what one side sent is what the other received (no datagram in flight).
        console.log(
          `dump counters (IPv${outer}): tsguard rx=${pa.rx} tx=${pa.tx}; wireguard-go rx=${pb.rx} tx=${pb.tx}`,
        );
        expect(pa.rx, 'tsguard rx vs wireguard-go tx').toBe(pb.tx);
        expect(pa.tx, 'tsguard tx vs wireguard-go rx').toBe(pb.rx);
        expect(pa.rx).toBeGreaterThan(0);
        expect(pa.tx).toBeGreaterThan(0);
      } finally {
        await stopPair(p);
      }
    });
  }
});
