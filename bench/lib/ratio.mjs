// tsguard against the wireguard-go builds of a run, figure by figure: for each figure the reference is
// the best wireguard-go pair on that very figure (highest throughput, lowest loss or latency), named.

/** The UDP results `{ [pair]: {...} }` at `mbps` offered, also from results written before `udp_at_mbps` existed. */
export function udpAt(r, mbps) {
  if (r.udp_at_mbps) return r.udp_at_mbps[mbps];
  return r.udp && r.config?.udp_offered_mbps === mbps ? r.udp : undefined;
}

/** The offered UDP rates of a results object, ascending. */
export function udpRates(r) {
  if (r.udp_at_mbps) return Object.keys(r.udp_at_mbps).map(Number).sort((a, b) => a - b);
  return r.udp && typeof r.config?.udp_offered_mbps === 'number' ? [r.config.udp_offered_mbps] : [];
}

/**
 * The figures tsguard is held against wireguard-go on: key (in `ratio.against_fastest`), label,
 * how to read it from the results for a pair `{ id, handshakes }`, and whether higher is better.
 */
export const METRICS = [
  { key: 'tcp', label: 'TCP 1 stream', higher: true, get: (r, p) => r.tcp_mbps?.[p.id] },
  { key: 'tcp4', label: 'TCP 4 streams', higher: true, get: (r, p) => r.tcp4_mbps?.[p.id] },
  { key: 'tcp_ipv6', label: 'TCP IPv6 inner 1 stream', higher: true, get: (r, p) => r.tcp_ipv6_mbps?.[p.id] },
  { key: 'tcp4_ipv6', label: 'TCP IPv6 inner 4 streams', higher: true, get: (r, p) => r.tcp4_ipv6_mbps?.[p.id] },
  { key: 'udp1g', label: 'UDP at 1 Gbit/s offered, received', higher: true, get: (r, p) => udpAt(r, 1000)?.[p.id]?.receiver_mbps },
  { key: 'udp1g_loss', label: 'UDP at 1 Gbit/s offered, loss %', higher: false, get: (r, p) => udpAt(r, 1000)?.[p.id]?.loss_percent },
  { key: 'ping_load', label: 'ping p50 under TCP load', higher: false, get: (r, p) => r.ping_load_ms?.[p.id]?.p50 },
  { key: 'handshakes', label: 'handshakes/s', higher: true, get: (r, p) => (p.handshakes ? r.handshakes_per_s?.[p.handshakes] : undefined) },
];

const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const r3 = (x) => Math.round(x * 1000) / 1000;

/**
 * For every metric: `{ wggo: pair id of the best wireguard-go on it (first of the run on a tie) or
 * null, wggo_value, tsguard: tsguard's value, ratio: tsguard ÷ wireguard-go (null when either is
 * missing or the reference is 0), difference: tsguard − wireguard-go }`.
 * `wggoPairs`: the wireguard-go ↔ wireguard-go pairs in run order, `{ id, handshakes }` (the key of
 * their responder in `handshakes_per_s`); `tsguard`: the same for tsguard ↔ tsguard.
 */
export function againstFastest(r, wggoPairs, tsguard = { id: 'tsguard_tsguard', handshakes: 'tsguard' }) {
  const out = {};
  for (const m of METRICS) {
    let best = null;
    for (const p of wggoPairs) {
      const v = num(m.get(r, p));
      if (v !== null && (best === null || (m.higher ? v > best.v : v < best.v))) best = { id: p.id, v };
    }
    const t = num(m.get(r, tsguard));
    out[m.key] = {
      wggo: best?.id ?? null,
      wggo_value: best?.v ?? null,
      tsguard: t,
      ratio: best !== null && t !== null && best.v !== 0 ? r3(t / best.v) : null,
      difference: best !== null && t !== null ? r3(t - best.v) : null,
    };
  }
  return out;
}
