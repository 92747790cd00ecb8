// The benchmark's comparison and report (bench/lib/ratio.mjs, bench/lib/render.mjs) on hand-made
// results: each figure is held against the best wireguard-go on that figure, and the report names it.
import { describe, expect, it } from 'vitest';
import { againstFastest, udpAt, udpRates } from '../bench/lib/ratio.mjs';
import { renderMarkdown, renderSvg } from '../bench/lib/render.mjs';

const udp = (receiver_mbps: number, loss_percent: number) => ({ offered_mbps: 1000, receiver_mbps, loss_percent });

function results() {
  return {
    mode: 'quick',
    seconds_per_test: 3,
    date: '2026-12-01T12:00:00.000Z',
    config: { udp_offered_mbps: [300, 1000] },
    pairs: {
      wggo_wggo: { a: 'wireguard-go v0.0.20220316', b: 'wireguard-go v0.0.20220316', label: 'old ↔ old' },
      fast_fast: { a: 'wireguard-go fast', b: 'wireguard-go fast', label: 'fast ↔ fast' },
      tsguard_tsguard: { a: 'tsguard', b: 'tsguard', label: 'tsguard ↔ tsguard' },
    },
    tcp_mbps: { wggo_wggo: 600, fast_fast: 2000, tsguard_tsguard: 1000 },
    tcp4_mbps: { wggo_wggo: 1500, fast_fast: 1500, tsguard_tsguard: 1200 },
    tcp_ipv6_mbps: { wggo_wggo: 550, fast_fast: 1800, tsguard_tsguard: 900 },
    tcp4_ipv6_mbps: { wggo_wggo: 650, tsguard_tsguard: 1300 },
    udp_at_mbps: {
      300: { wggo_wggo: { ...udp(299, 0.1), offered_mbps: 300 }, fast_fast: { ...udp(300, 0), offered_mbps: 300 }, tsguard_tsguard: { ...udp(298, 0.5), offered_mbps: 300 } },
      1000: { wggo_wggo: udp(700, 30), fast_fast: udp(950, 5), tsguard_tsguard: udp(900, 10) },
    },
    ping_load_ms: { wggo_wggo: { p50: 2 }, fast_fast: { p50: 5 }, tsguard_tsguard: { p50: 4 } },
    handshakes_per_s: { wireguard_go: 3000, fast: 4000, tsguard: 2000 },
    mbit_per_cpu_s: { wggo_wggo: { tcp: 400, udp_1000: 500 }, tsguard_tsguard: { tcp: 600, tcp_ipv6: 550, udp_300: 450, udp_1000: 520 } },
    ratio: {} as Record<string, unknown>,
  };
}

const WGGO = [
  { id: 'wggo_wggo', handshakes: 'wireguard_go' },
  { id: 'fast_fast', handshakes: 'fast' },
];

describe('bench comparison against the fastest wireguard-go', () => {
  it('picks the best wireguard-go per figure: highest throughput, lowest loss and latency', () => {
    const a = againstFastest(results(), WGGO);
    expect(a.tcp).toEqual({ wggo: 'fast_fast', wggo_value: 2000, tsguard: 1000, ratio: 0.5, difference: -1000 });
    // A tie goes to the first pair of the run.
    expect(a.tcp4).toMatchObject({ wggo: 'wggo_wggo', wggo_value: 1500, ratio: 0.8 });
    expect(a.tcp_ipv6).toMatchObject({ wggo: 'fast_fast', ratio: 0.5 });
    // Only the Debian build measured IPv6 4 streams: it is the reference.
    expect(a.tcp4_ipv6).toMatchObject({ wggo: 'wggo_wggo', ratio: 2 });
    expect(a.udp1g).toMatchObject({ wggo: 'fast_fast', wggo_value: 950, tsguard: 900 });
    expect(a.udp1g_loss).toMatchObject({ wggo: 'fast_fast', wggo_value: 5, tsguard: 10, ratio: 2, difference: 5 });
    expect(a.ping_load).toMatchObject({ wggo: 'wggo_wggo', ratio: 2 });
    expect(a.handshakes).toMatchObject({ wggo: 'fast_fast', wggo_value: 4000, ratio: 0.5 });
  });

  it('has no reference and no ratio where a figure is missing', () => {
    const r = results();
    r.tcp_ipv6_mbps = {} as typeof r.tcp_ipv6_mbps;
    delete (r.udp_at_mbps as Partial<typeof r.udp_at_mbps>)[1000];
    const a = againstFastest(r, WGGO);
    expect(a.tcp_ipv6).toEqual({ wggo: null, wggo_value: null, tsguard: null, ratio: null, difference: null });
    expect(a.udp1g.ratio).toBeNull();
    // Zero loss on the reference: no ratio, the difference stays.
    const z = results();
    z.udp_at_mbps[1000].fast_fast.loss_percent = 0;
    expect(againstFastest(z, WGGO).udp1g_loss).toMatchObject({ wggo: 'fast_fast', ratio: null, difference: 10 });
  });

  it('reads UDP results of older runs (one rate in `udp`)', () => {
    const old = { config: { udp_offered_mbps: 300 }, udp: { a_a: udp(299, 0) } };
    expect(udpRates(old)).toEqual([300]);
    expect(udpAt(old, 300)).toBe(old.udp);
    expect(udpAt(old, 1000)).toBeUndefined();
    expect(udpRates(results())).toEqual([300, 1000]);
  });

  it('reports the IPv6 and UDP rows and names the reference build of each figure', () => {
    const r = results();
    r.ratio = { fastest_wggo: 'fast_fast', against_fastest: againstFastest(r, WGGO) };
    const md = renderMarkdown(r);
    expect(md).toContain('| TCP IPv6 inner, 1 stream (Mbit/s) | 550 | 1800 | 900 |');
    expect(md).toContain('| TCP IPv6 inner, 4 streams (Mbit/s) | 650 | — | 1300 |');
    expect(md).toContain('| UDP at 1000 Mbit/s offered: received (Mbit/s) | 700 | 950 | 900 |');
    expect(md).toContain('| UDP at 1000 Mbit/s offered: loss (%) | 30.00 | 5.00 | 10.00 |');
    expect(md).toContain('| UDP at 300 Mbit/s offered: loss (%) | 0.10 | 0.00 | 0.50 |');
    expect(md).toContain('TCP 1 stream **0.50×** (fast)');
    expect(md).toContain('TCP IPv6 inner 4 streams 2.00× (v0.0.20220316)');
    expect(md).toContain('UDP at 1 Gbit/s offered: received 0.95× (fast), loss 10.00 % vs 5.00 % (fast)');
    expect(md).toContain('ping p50 under TCP load 2.00× (v0.0.20220316; lower is better)');
    expect(md).toContain(
      '| received Mbit per daemon CPU-second (A + B): TCP 1 stream / TCP IPv6 inner 1 stream / UDP 300M / UDP 1000M | 400 / — / — / 500 | — | 600 / 550 / 450 / 520 |',
    );
    const svg = renderSvg(r);
    expect(svg).toContain('TCP IPv6 inner, 4 streams');
    expect(svg).toContain('>1800</text>');
  });

  it('says when the handshake figures are medians over the rounds', () => {
    const hs = (n: number) => ({ handshakes_per_s: n, identities: 256, window: 120, seconds: 3 });
    const r = { ...results(), handshakes: { tsguard: hs(2000) } } as ReturnType<typeof results> & Record<string, unknown>;
    expect(renderMarkdown(r)).toContain('3 s window; see');
    // Rounds from before handshakes ran in every round (only in the last): no claim of medians.
    r.rounds = [{ tcp_mbps: {} }, { tcp_mbps: {} }];
    expect(renderMarkdown(r)).toContain('3 s window; see');
    r.rounds = [{ handshakes_per_s: { tsguard: 1900 } }, { handshakes_per_s: { tsguard: 2100 } }];
    expect(renderMarkdown(r)).toContain('| tsguard | 2000 |');
    expect(renderMarkdown(r)).toContain('3 s window, medians of 2 rounds; see');
  });
});
