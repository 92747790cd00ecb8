// Render benchmark results: markdown table, SVG bar chart, README section. No dependencies.
import { readFileSync, writeFileSync } from 'node:fs';
import { METRICS, udpAt, udpRates } from './ratio.mjs';

/** Column label of a pair: "X ↔ X" for a same-implementation pair, "X (A) → Y (B)" for a mixed one. */
export function pairLabel(id, a, b) {
  return a === b ? `${a} ↔ ${b}` : `${a} (A) → ${b} (B)`;
}

/** The pairs of a results object in the order they ran, with their labels. */
const pairsOf = (r) => Object.keys(r.pairs ?? {});
const labelOf = (r, p) => r.pairs?.[p]?.label ?? p;

const fmt = (v, digits = 0, unit = '') => (v === null || v === undefined || Number.isNaN(v) ? '—' : `${Number(v).toFixed(digits)}${unit}`);

/** The markdown report (tables + machine/versions). */
export function renderMarkdown(r) {
  const L = [];
  const pairs = pairsOf(r);
  const cell = (obj, p, f) => (obj && obj[p] !== undefined && obj[p] !== null ? f(obj[p]) : '—');
  const rounds = r.rounds?.length ?? 1;
  L.push(
    `Results of \`npm run bench${r.mode === 'quick' ? ' -- --quick' : ''}\` (${r.mode} mode, ${r.seconds_per_test} s per iperf3 test` +
      `${rounds > 1 ? `, medians of ${rounds} alternating rounds` : ''}) — ${r.date}`,
  );
  L.push('');
  L.push(`| | ${pairs.map((p) => labelOf(r, p)).join(' | ')} |`);
  L.push(`|---|${pairs.map(() => '---:').join('|')}|`);
  const row = (name, obj, f) => L.push(`| ${name} | ${pairs.map((p) => cell(obj, p, f)).join(' | ')} |`);
  row('TCP, 1 stream (Mbit/s)', r.tcp_mbps, (v) => fmt(v));
  row('TCP, 4 streams (Mbit/s)', r.tcp4_mbps, (v) => fmt(v));
  if (r.tcp_ipv6_mbps && Object.keys(r.tcp_ipv6_mbps).length) {
    row('TCP IPv6 inner, 1 stream (Mbit/s)', r.tcp_ipv6_mbps, (v) => fmt(v));
    row('TCP IPv6 inner, 4 streams (Mbit/s)', r.tcp4_ipv6_mbps, (v) => fmt(v));
  }
  for (const rate of udpRates(r)) {
    row(`UDP at ${rate} Mbit/s offered: received (Mbit/s)`, udpAt(r, rate), (v) => fmt(v.receiver_mbps));
    row(`UDP at ${rate} Mbit/s offered: loss (%)`, udpAt(r, rate), (v) => fmt(v.loss_percent, 2));
  }
  row('ping idle p50 / p99 (ms)', r.ping_idle_ms, (v) => `${fmt(v.p50, 3)} / ${fmt(v.p99, 3)}`);
  row('ping under TCP load p50 / p99 (ms)', r.ping_load_ms, (v) => `${fmt(v.p50, 2)} / ${fmt(v.p99, 2)}`);
  row('daemon CPU during TCP 1 stream, A / B (cores)', r.cpu_cores_tcp1, (v) => `${fmt(v.a, 2)} / ${fmt(v.b, 2)}`);
  if (r.mbit_per_cpu_s && Object.keys(r.mbit_per_cpu_s).length) {
    const keys = [['tcp', 'TCP 1 stream'], ['tcp_ipv6', 'TCP IPv6 inner 1 stream'], ...udpRates(r).map((n) => [`udp_${n}`, `UDP ${n}M`])];
    const present = keys.filter(([k]) => Object.values(r.mbit_per_cpu_s).some((v) => v?.[k] !== undefined));
    row(`received Mbit per daemon CPU-second (A + B): ${present.map(([, l]) => l).join(' / ')}`, r.mbit_per_cpu_s, (v) => present.map(([k]) => fmt(v[k])).join(' / '));
  }
  row('daemon RSS after the tests, A / B (MiB)', r.daemon_rss_mib, (v) => `${fmt(v.a, 1)} / ${fmt(v.b, 1)}`);
  L.push('');
  const rt = r.ratio ?? {};
  if (rt.against_fastest) {
    L.push(againstLine(r, rt.against_fastest), '');
  } else if (rt.fastest_wggo) {
    // Results written before the per-figure comparison: one reference build for every figure.
    L.push(
      `Against the fastest wireguard-go of the run (${labelOf(r, rt.fastest_wggo)}): TCP 1 stream **${fmt(rt.tcp_tsguard_vs_fastest, 2)}×**, ` +
        `TCP 4 streams ${fmt(rt.tcp4_tsguard_vs_fastest, 2)}×, UDP received ${fmt(rt.udp_tsguard_vs_fastest, 2)}×, ` +
        `ping under load p50 ${fmt(rt.ping_load_tsguard_vs_fastest, 2)}×, handshakes/s ${fmt(rt.handshakes_tsguard_vs_fastest, 2)}×.`,
      '',
    );
  }
  L.push(
    `Ratios (tsguard ↔ tsguard ÷ wireguard-go (PATH) ↔ wireguard-go (PATH)): TCP 1 stream **${fmt(rt.tcp_tsguard_vs_wggo, 2)}**, ` +
      `TCP 4 streams ${fmt(rt.tcp4_tsguard_vs_wggo, 2)}, ` +
      `${rt.tcp_ipv6_tsguard_vs_wggo !== undefined ? `TCP IPv6 inner 1 stream ${fmt(rt.tcp_ipv6_tsguard_vs_wggo, 2)}, ` : ''}` +
      `UDP received${rt.udp1g_tsguard_vs_wggo !== undefined ? ' at 1 Gbit/s offered' : ''} ${fmt(rt.udp1g_tsguard_vs_wggo ?? rt.udp_tsguard_vs_wggo, 2)}; ` +
      `mixed pair ÷ wireguard-go pair, TCP 1 stream: ${fmt(rt.tcp_mixed_vs_wggo, 2)}.`,
  );
  L.push('');
  const hs = r.handshakes ?? {};
  if (Object.keys(hs).length) {
    L.push('| Handshake responder | handshakes/s | cookie replies | timeouts | responder CPU (s) | handshakes per responder CPU-second | ping through it meanwhile, p50 / p99 (ms) |');
    L.push('|---|---:|---:|---:|---:|---:|---:|');
    for (const [k, v] of Object.entries(hs)) {
      if (v === null) continue;
      const ping = v.ping_during_flood_ms ? `${fmt(v.ping_during_flood_ms.p50, 2)} / ${fmt(v.ping_during_flood_ms.p99, 2)}` : '–';
      L.push(`| ${k} | ${fmt(v.handshakes_per_s)} | ${fmt(v.cookie_replies)} | ${fmt(v.timeouts)} | ${fmt(v.responder_cpu_s, 2)} | ${fmt(v.handshakes_per_responder_cpu_s)} | ${ping} |`);
    }
    const any = Object.values(hs).find(Boolean);
    const each = rounds > 1 && r.rounds?.some((x) => x.handshakes_per_s && Object.keys(x.handshakes_per_s).length) ? `, medians of ${rounds} rounds` : '';
    if (any) L.push('', `(${any.identities} initiator identities, ≤ ${any.window} initiations outstanding, ${any.seconds} s window${each}; see "Handshakes" in bench/README.md.)`);
    L.push('');
  }
  if (r.hub) {
    const h = r.hub;
    L.push(
      `Hub with ${fmt(h.peers)} devices: VmRSS **${fmt(h.vmrss_mib, 1)} MiB** (peak ${fmt(h.vmhwm_mib, 1)} MiB, ${fmt(h.kib_per_peer, 1)} KiB/peer); ` +
        `all peers configured ${fmt(h.seconds_to_all_peers, 1)} s after start.`,
    );
    L.push('');
  }
  if (r.join || r.registrations) {
    L.push('| Agent registration | |', '|---|---:|');
    const j = r.join;
    if (j) {
      L.push(`| \`tsguard join\` spawned → first ping reply from the hub (median of ${j.runs?.length ?? '?'}, ms) | **${fmt(j.join_to_first_reply_ms, 1)}** |`);
      L.push(`| \`tsguard join\` spawned → address printed (handshake done, ms) | ${fmt(j.join_printed_address_ms, 1)} |`);
      L.push(`| for comparison: Node start + CLI load (\`tsguard join --help\` until exit, ms) | ${fmt(j.cli_start_ms, 1)} |`);
      if (j.node_start_ms !== undefined) L.push(`| for comparison: bare Node start (\`node -e 0\` until exit, ms) | ${fmt(j.node_start_ms, 1)} |`);
      if (j.embedded_first_reply_ms !== undefined) {
        L.push(`| library \`join()\` in a running agent → first ping reply (median of ${j.embedded_runs?.length ?? '?'}, ms) | **${fmt(j.embedded_first_reply_ms, 1)}** |`);
        L.push(`| library \`join()\` → resolved (registered, interface up, handshake done, ms) | ${fmt(j.embedded_joined_ms, 1)} |`);
      }
    }
    const g = r.registrations;
    if (g) {
      L.push(`| registrations/s (${fmt(g.accepted)} of ${fmt(g.requests)} accepted, concurrency ${fmt(g.concurrency)}) | **${fmt(g.registrations_per_s)}** |`);
      L.push(`| registration request latency p50 / p99 (ms) | ${fmt(g.latency_ms?.p50, 1)} / ${fmt(g.latency_ms?.p99, 1)} |`);
    }
    L.push('');
  } else {
    L.push(`Join → first ping reply: ${r.join_to_first_reply_ms ?? r.join_to_first_ping_s ?? '—'}; registrations/s: ${r.registrations_per_s ?? '—'}${r.notes?.join_to_first_ping_s ? ` (${r.notes.join_to_first_ping_s})` : ''}.`);
    L.push('');
  }
  const m = r.machine ?? {};
  const v = r.versions ?? {};
  L.push(`Machine: ${m.cpu_model} × ${m.cores} cores, ${fmt(m.memory_mib / 1024, 1)} GiB, Linux ${m.kernel}.  `);
  const builds = Object.entries(v.wireguard_go_builds ?? {});
  const buildText = builds.length
    ? builds.map(([n, b]) => `${n === 'wggo' ? 'wireguard-go (PATH)' : n}: ${b.version ?? '?'}${b.commit ? ` @ ${b.commit}` : ''}, sha256 ${String(b.sha256).slice(0, 12)}…`).join('; ')
    : v.wireguard_go;
  L.push(
    `Versions: Node ${v.node}, ${buildText}, ${v.iperf3}, tsguard ${v.tsguard?.version} @ ${v.tsguard?.commit ?? '?'}` +
      `${v.tsguard?.dirty ? ' (uncommitted changes)' : ''}, crypto provider ${v.crypto_provider}.`,
  );
  if (r.errors?.length) {
    L.push('', `**${r.errors.length} scenario(s) failed:**`, '');
    for (const e of r.errors) L.push(`- ${e.scenario}: ${String(e.error).split('\n')[0]}`);
  }
  return L.join('\n') + '\n';
}

/** The wireguard-go build of a pair, short: "d0bc03c", "v0.0.20220316". */
const buildOf = (r, p) => String(r.pairs?.[p]?.a ?? p).replace(/^wireguard-go /, '');

/** "Against the best wireguard-go of the run on each figure: TCP 1 stream 0.53× (d0bc03c), …". */
function againstLine(r, a) {
  const parts = METRICS.map((m) => {
    const x = a[m.key];
    if (!x || x.wggo === null) return null;
    const who = buildOf(r, x.wggo);
    if (m.key === 'udp1g_loss') return `loss ${fmt(x.tsguard, 2)} % vs ${fmt(x.wggo_value, 2)} % (${who})`;
    const v = m.key === 'tcp' ? `**${fmt(x.ratio, 2)}×**` : `${fmt(x.ratio, 2)}×`;
    return `${m.key === 'udp1g' ? 'UDP at 1 Gbit/s offered: received' : m.label} ${v} (${who}${m.higher ? '' : '; lower is better'})`;
  }).filter(Boolean);
  return (
    'Against the best wireguard-go of the run on each figure (tsguard ↔ tsguard ÷ that wireguard-go ↔ wireguard-go, build in brackets): ' +
    `${parts.join(', ')}.`
  );
}

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Grouped bar chart of TCP throughput (1 and 4 streams, IPv4 and IPv6 inner when measured) per pair. */
export function renderSvg(r) {
  const pairs = pairsOf(r);
  const series = [
    { key: 'tcp_mbps', label: 'TCP, 1 stream', color: '#4e79a7' },
    { key: 'tcp4_mbps', label: 'TCP, 4 streams', color: '#f28e2b' },
    { key: 'tcp_ipv6_mbps', label: 'TCP IPv6 inner, 1 stream', color: '#59a14f' },
    { key: 'tcp4_ipv6_mbps', label: 'TCP IPv6 inner, 4 streams', color: '#e15759' },
  ].filter((s) => Object.keys(r[s.key] ?? {}).length > 0);
  const W = Math.max(680, (40 * series.length + 50) * pairs.length + 80);
  const H = 360;
  const m = { l: 60, r: 20, t: 40, b: 80 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const vals = pairs.flatMap((p) => series.map((s) => r[s.key]?.[p] ?? 0));
  const maxV = Math.max(1, ...vals);
  const step = [50, 100, 200, 250, 500, 1000, 2000, 5000].find((s) => maxV / s <= 6) ?? 10000;
  const top = Math.ceil(maxV / step) * step;
  const y = (v) => m.t + ph - (v / top) * ph;
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">TCP throughput through the tunnel (iperf3, Mbit/s, ${esc(r.mode)} run ${esc(String(r.date).slice(0, 10))})</text>`);
  for (let v = 0; v <= top; v += step) {
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${m.l - 6}" y="${y(v) + 4}" text-anchor="end" fill="#555">${v}</text>`);
  }
  const gw = pw / Math.max(1, pairs.length);
  const bw = Math.min(70, (gw * 0.7) / series.length);
  pairs.forEach((p, i) => {
    const gx = m.l + i * gw + (gw - bw * series.length) / 2;
    series.forEach((s, j) => {
      const v = r[s.key]?.[p];
      if (v === undefined || v === null) return;
      const x = gx + j * bw;
      out.push(`<rect x="${x.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(bw - 4).toFixed(1)}" height="${(m.t + ph - y(v)).toFixed(1)}" fill="${s.color}"/>`);
      out.push(`<text x="${(x + (bw - 4) / 2).toFixed(1)}" y="${(y(v) - 4).toFixed(1)}" text-anchor="middle" font-size="${bw < 40 ? 10 : 12}">${Math.round(v)}</text>`);
    });
    // Two lines per pair ("A" / "↔ B" or "→ B"), wireguard-go shortened, so that seven pairs fit.
    const [first, second = ''] = labelOf(r, p).replace(/wireguard-go /g, 'wg-go ').replace(/v0\.0\./g, '').replace(/ \((A|B)\)/g, '').split(/ (?=[↔→] )/);
    const cx = (m.l + i * gw + gw / 2).toFixed(1);
    out.push(`<text x="${cx}" y="${m.t + ph + 18}" text-anchor="middle">${esc(first)}</text>`);
    if (second) out.push(`<text x="${cx}" y="${m.t + ph + 32}" text-anchor="middle">${esc(second)}</text>`);
  });
  out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${m.t + ph}" y2="${m.t + ph}" stroke="#333"/>`);
  series.forEach((s, j) => {
    const lx = m.l + j * 190;
    out.push(`<rect x="${lx}" y="${H - 22}" width="12" height="12" fill="${s.color}"/>`);
    out.push(`<text x="${lx + 18}" y="${H - 12}">${esc(s.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Replace the text between `<!-- NAME:start -->` and `<!-- NAME:end -->` in a file. */
export function replaceSection(path, name, body) {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const text = readFileSync(path, 'utf8');
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i < 0 || j < i) throw new Error(`${path}: markers ${start} … ${end} not found`);
  writeFileSync(path, text.slice(0, i + start.length) + '\n' + body.trimEnd() + '\n' + text.slice(j));
}
