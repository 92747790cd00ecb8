#!/usr/bin/env node
// End-to-end benchmark of tsguard against wireguard-go (see bench/README.md).
//
//   npm run bench                 full run (10 s per iperf3 test, UDP offered at 1000 Mbit/s)
//   npm run bench -- --quick      quick run (3 s per test, UDP offered at 300 and 1000 Mbit/s)
//   npm run bench -- --wggo d0bc03c=/path/to/wireguard-go@d0bc03c   also compare that build (repeatable)
// Options: --wggo NAME=PATH[@COMMIT] (adds pairs NAME_NAME and tsguard_NAME; tsguard is held against the best
//          wireguard-go of the run on each figure), --rounds N (alternate the pairs N times, medians), --seconds N,
//          --only wggo_wggo,tsguard_tsguard,tsguard_wggo,NAME_NAME,tsguard_NAME, --skip-traffic (no iperf3/ping),
//          --skip-udp, --skip-ipv6 (no TCP over the IPv6 inner addresses), --skip-ping, --skip-hub, --skip-handshakes,
//          --variant NAME:KEY=VALUE[,KEY=VALUE] (adds pair NAME: tsguard ↔ tsguard with that environment, repeatable),
//          --hub-peers N (10000), --hs-identities N (256), --hs-window N (120), --udp-mbps N[,N] (offered rates; full 1000, quick 300,1000),
//          --registrations N (2000; quick 500), --reg-concurrency N (32), --skip-registration,
//          --skip-multihub (two hubs on PostgreSQL: CLI change through hub B → live on hub A),
//          --no-readme (do not rewrite the README section),
//          --render (only re-render latest.md, latest.svg and the README section from latest.json).
// Needs root (namespaces, veth, TUN), wireguard-go, wg, iperf3, ping, and a built dist/.
// Creates its own namespaces (tsgbench-*) and removes them, also on failure and SIGINT/SIGTERM.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { collect, cpuSeconds, memKiB, sleep, waitFor, which } from './lib/proc.mjs';
import { NS_PREFIX, ROOT, TSGUARD_WG, Topology, configurePair, iperf3, nsRun, nsSpawn, pingStats, removeStale, teardownAll, wg } from './lib/netns.mjs';
import { handshakeLoadArgs, prepareResponder } from './lib/handshake-load.mjs';
import { hubRss } from './lib/hub-rss.mjs';
import { cliChangeAcrossHubs } from './lib/multihub.mjs';
import { joinLatency, registrationRate } from './lib/registration.mjs';
import { againstFastest, udpAt } from './lib/ratio.mjs';
import { pairLabel, renderMarkdown, renderSvg, replaceSection } from './lib/render.mjs';
import { defaultBuild, parseWggoArgs } from './lib/wggo.mjs';

// ─── options ────────────────────────────────────────────────────────────────

const argv = process.argv.slice(2);
const has = (f) => argv.includes(f);
if (has('--help') || has('-h')) {
  // The usage is the comment at the top of this file.
  const head = readFileSync(new URL(import.meta.url), 'utf8').split('\n').slice(1);
  process.stdout.write(head.slice(0, head.findIndex((l) => !l.startsWith('//'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
  process.exit(0);
}
const val = (f, def) => {
  const i = argv.indexOf(f);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : def;
};
const quick = has('--quick');
const SECONDS = Number(val('--seconds', quick ? 3 : 10));
// Offered UDP rates, one iperf3 run each; the 1 Gbit/s one is what tsguard is held against wireguard-go on.
const UDP_RATES = String(val('--udp-mbps', quick ? '300,1000' : '1000')).split(',').map(Number);
if (UDP_RATES.some((n) => !Number.isFinite(n) || n <= 0)) {
  process.stderr.write(`bench: --udp-mbps ${val('--udp-mbps', '')}: expected positive Mbit/s, comma-separated, e.g. --udp-mbps 300,1000\n`);
  process.exit(2);
}
const SKIP_IPV6 = has('--skip-ipv6');
const HUB_PEERS = Number(val('--hub-peers', 10_000));
const HS_IDENTITIES = Number(val('--hs-identities', 256));
const HS_WINDOW = Number(val('--hs-window', 120));
const HS_SECONDS = quick ? 3 : 10;
const PING_COUNT = 200;
const PING_INTERVAL = 0.01;
const REG_N = Number(val('--registrations', quick ? 500 : 2000));
const REG_CONCURRENCY = Number(val('--reg-concurrency', 32));
const JOIN_RUNS = quick ? 7 : 11; // join latency swings by ±30 ms between runs on this VM: a median of several
const ONLY = val('--only', null)?.split(',') ?? null;

const WGGO_DEFAULT = defaultBuild();
let WGGO_EXTRA;
try {
  WGGO_EXTRA = parseWggoArgs(argv);
} catch (e) {
  process.stderr.write(`bench: ${e.message}\n`);
  process.exit(2);
}
const ROUNDS = Math.max(1, Number(val('--rounds', 1)));
// --variant NAME:KEY=VALUE[,KEY=VALUE]: pair NAME, tsguard ↔ tsguard with that environment (A/B of a switch in the same rounds).
const VARIANTS = argv.flatMap((a, i) => (a === '--variant' ? [argv[i + 1] ?? ''] : [])).map((spec) => {
  const m = /^([A-Za-z0-9][A-Za-z0-9.-]{0,31}):([A-Z0-9_]+=[^,]*(?:,[A-Z0-9_]+=[^,]*)*)$/.exec(spec);
  if (m === null) {
    process.stderr.write(`bench: --variant ${spec}: expected NAME:KEY=VALUE[,KEY=VALUE], e.g. --variant nobatch:TSGUARD_CRYPTO_BATCH=0\n`);
    process.exit(2);
  }
  return { id: m[1], env: Object.fromEntries(m[2].split(',').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])) };
});

// wggo_wggo: the wireguard-go in PATH (Debian's); NAME_NAME for every --wggo NAME=PATH; tsguard_X: the mixed pairs.
const PAIRS = [
  { id: 'wggo_wggo', a: 'wireguard-go', b: 'wireguard-go', handshakes: 'wireguard_go', wggo: WGGO_DEFAULT },
  ...WGGO_EXTRA.map((w) => ({ id: `${w.name}_${w.name}`, a: w, b: w, handshakes: w.name, wggo: w })),
  { id: 'tsguard_tsguard', a: 'tsguard', b: 'tsguard', handshakes: 'tsguard' },
  { id: 'tsguard_wggo', a: 'tsguard', b: 'wireguard-go', handshakes: null }, // the responder (wireguard-go) is measured above
  ...WGGO_EXTRA.map((w) => ({ id: `tsguard_${w.name}`, a: 'tsguard', b: w, handshakes: null })),
  ...VARIANTS.map((v) => ({ id: v.id, a: 'tsguard', b: 'tsguard', handshakes: v.id, env: v.env })),
].filter((p) => ONLY === null || ONLY.includes(p.id));
/** How an implementation is named in labels: "tsguard", "wireguard-go v0.0.20220316" (PATH), "wireguard-go NAME". */
const implName = (impl) =>
  typeof impl === 'object' ? `wireguard-go ${impl.name}` : impl === 'wireguard-go' ? `wireguard-go ${WGGO_DEFAULT?.version?.split(' ').pop() ?? ''}`.trim() : impl;

const log = (msg) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

// ─── cleanup on signals ─────────────────────────────────────────────────────

let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    log(`${sig}: removing namespaces and stopping daemons`);
    teardownAll().finally(() => process.exit(130));
  });
}

// ─── environment ────────────────────────────────────────────────────────────

function prerequisites() {
  const problems = [];
  if (process.getuid?.() !== 0) problems.push('must run as root (network namespaces, veth, TUN)');
  for (const t of ['ip', 'wg', 'iperf3', 'ping']) if (!which(t)) problems.push(`missing tool: ${t}`);
  if (PAIRS.some((p) => p.a === 'wireguard-go' || p.b === 'wireguard-go') && WGGO_DEFAULT === null) problems.push('missing tool: wireguard-go (or leave out its pairs with --only)');
  if (!existsSync(TSGUARD_WG)) problems.push(`${TSGUARD_WG} missing: run "npx tsc -p tsconfig.json" (or npm run build)`);
  if (!existsSync(join(ROOT, 'build/Release/tsguard_native.node'))) problems.push('native addon missing: run "npm run build"');
  return problems;
}

const firstLine = (cmd, args) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0].trim();
  } catch {
    return null;
  }
};

async function environment() {
  const cpus = os.cpus();
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  let provider = null;
  try {
    const { loadNativeCrypto } = await import(pathToFileURL(join(ROOT, 'dist/io/native.js')).href);
    provider = (await (await import(pathToFileURL(join(ROOT, 'dist/crypto/index.js')).href)).loadCrypto(loadNativeCrypto)).name;
  } catch {
    // reported as null
  }
  const gitDirty = (() => {
    try {
      return execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim() !== '';
    } catch {
      return null;
    }
  })();
  return {
    machine: {
      cpu_model: cpus[0]?.model ?? null,
      cores: cpus.length,
      kernel: os.release(),
      memory_mib: Math.round(os.totalmem() / 2 ** 20),
      arch: process.arch,
    },
    versions: {
      node: process.version,
      wireguard_go: WGGO_DEFAULT?.version ?? null,
      // Every wireguard-go build of the run by pair-name prefix: version, sha256, commit (when known), file name.
      wireguard_go_builds: Object.fromEntries(
        [WGGO_DEFAULT, ...WGGO_EXTRA].filter(Boolean).map((w) => [w.name, { version: w.version, sha256: w.sha256, commit: w.commit, file: w.file }]),
      ),
      wg_tools: firstLine('wg', ['--version']),
      iperf3: firstLine('iperf3', ['--version']),
      tsguard: { version: pkg.version, commit: firstLine('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']), dirty: gitDirty },
      crypto_provider: provider,
    },
  };
}

// ─── scenarios ──────────────────────────────────────────────────────────────

/** Result keys measured per pair in every round (medians over the rounds when --rounds > 1). */
const TRAFFIC_KEYS = ['tcp_mbps', 'tcp4_mbps', 'tcp_ipv6_mbps', 'tcp4_ipv6_mbps', 'tcp_detail', 'udp_at_mbps', 'ping_idle_ms', 'ping_load_ms', 'cpu_cores_tcp1', 'mbit_per_cpu_s', 'daemon_rss_mib', 'handshakes_per_s', 'handshakes'];

/** Element-wise median of same-shaped values (numbers, or objects of them); null/undefined entries skipped. */
function medianOf(values) {
  const present = values.filter((v) => v !== null && v !== undefined);
  if (present.length === 0) return null;
  if (typeof present[0] === 'number') {
    const s = present.filter((v) => typeof v === 'number').sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : round((s[m - 1] + s[m]) / 2, 3);
  }
  if (typeof present[0] !== 'object') return present[present.length - 1];
  const keys = [...new Set(present.flatMap((v) => Object.keys(v)))];
  return Object.fromEntries(keys.map((k) => [k, medianOf(present.map((v) => v[k]))]));
}

const round = (x, d = 1) => (x === null || x === undefined ? null : Math.round(x * 10 ** d) / 10 ** d);

/** Wait until a ping gets through the tunnel, to the IPv4 inner address and (unless --skip-ipv6) the IPv6 one. */
async function tunnelUp(p) {
  for (const dst of SKIP_IPV6 ? [p.b.inner4] : [p.b.inner4, p.b.inner6]) {
    await waitFor(
      `tunnel (ping ${dst} through it)`,
      async () => (await nsRun(p.a.ns, 'ping', ['-n', '-c', '1', '-W', '1', dst], { allowFail: true, timeoutMs: 5000 })).code === 0,
      20_000,
      200,
    );
  }
}

/** Run `fn` (an iperf3 run) and add the CPU seconds each daemon used meanwhile (`cpu.a`, `cpu.b`) and the wall time. */
async function withDaemonCpu(p, fn) {
  const c0 = [cpuSeconds(p.a.daemon.pid), cpuSeconds(p.b.daemon.pid)];
  const w0 = performance.now();
  const r = await fn();
  const wall = (performance.now() - w0) / 1000;
  const c1 = [cpuSeconds(p.a.daemon.pid), cpuSeconds(p.b.daemon.pid)];
  return { ...r, cpu: { a: c1[0] - c0[0], b: c1[1] - c0[1] }, wall };
}

/** Run `fn`, record its error (and continue) if it fails. */
async function scenario(results, name, fn) {
  if (stopping) return undefined;
  const t0 = Date.now();
  try {
    const v = await fn();
    log(`  ${name}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return v;
  } catch (e) {
    log(`  ${name}: FAILED: ${String(e?.message ?? e).split('\n')[0]}`);
    results.errors.push({ scenario: name, error: String(e?.message ?? e).slice(0, 2000) });
    return undefined;
  }
}

async function benchPair(pair, R) {
  log(`pair ${pair.id}: A (iperf3 client, sender) = ${implName(pair.a)}, B (server, receiver) = ${implName(pair.b)}`);
  const t = await Topology.create({ prefix: NS_PREFIX });
  try {
    const p = await configurePair(t, pair.a, pair.b, { env: pair.env });
    await tunnelUp(p);
    await pingStats(p.a.ns, p.b.inner4, { count: 20, interval: 0.01 }); // warm-up
    R.pairs[pair.id] = {
      a: implName(pair.a),
      b: implName(pair.b),
      label: pair.env ? `tsguard ↔ tsguard (${Object.entries(pair.env).map(([k, v]) => `${k}=${v}`).join(' ')})` : pairLabel(pair.id, implName(pair.a), implName(pair.b)),
      note: 'A runs the iperf3 client (sends, TCP/UDP) and the pings; B runs the iperf3 server (receives)',
    };

    if (!has('--skip-traffic')) {
      const idle = has('--skip-ping') ? undefined : await scenario(R, `${pair.id} ping idle`, () => pingStats(p.a.ns, p.b.inner4, { count: PING_COUNT, interval: PING_INTERVAL }));
      if (idle) R.ping_idle_ms[pair.id] = idle;

      // Received Mbit per CPU-second of both daemons: less sensitive to the other load on the host than Mbit/s.
      const perCpu = (key, r) => {
        const cpu = r.cpu.a + r.cpu.b;
        if (cpu > 0) (R.mbit_per_cpu_s[pair.id] ??= {})[key] = round((r.mbps * r.seconds) / cpu);
      };
      const tcp1 = await scenario(R, `${pair.id} TCP 1 stream`, () => withDaemonCpu(p, () => iperf3(p.b.ns, p.b.inner4, p.a.ns, { seconds: SECONDS })));
      if (tcp1) {
        // The wall time includes iperf3's connect/teardown (~0.3 s): a slight underestimate of cores used.
        R.cpu_cores_tcp1[pair.id] = { a: round(tcp1.cpu.a / tcp1.wall, 2), b: round(tcp1.cpu.b / tcp1.wall, 2) };
        perCpu('tcp', tcp1);
        R.tcp_mbps[pair.id] = round(tcp1.mbps);
        R.tcp_detail[pair.id] = { sender_mbps: round(tcp1.sentMbps), retransmits: tcp1.retransmits };
      }

      const tcp4 = await scenario(R, `${pair.id} TCP 4 streams`, () => iperf3(p.b.ns, p.b.inner4, p.a.ns, { seconds: SECONDS, parallel: 4 }));
      if (tcp4) R.tcp4_mbps[pair.id] = round(tcp4.mbps);

      if (!SKIP_IPV6) {
        const v6 = { seconds: SECONDS, ipv6: true };
        const tcp6 = await scenario(R, `${pair.id} TCP IPv6 inner, 1 stream`, () => withDaemonCpu(p, () => iperf3(p.b.ns, p.b.inner6, p.a.ns, v6)));
        if (tcp6) {
          R.tcp_ipv6_mbps[pair.id] = round(tcp6.mbps);
          perCpu('tcp_ipv6', tcp6);
        }
        const tcp6x4 = await scenario(R, `${pair.id} TCP IPv6 inner, 4 streams`, () => iperf3(p.b.ns, p.b.inner6, p.a.ns, { ...v6, parallel: 4 }));
        if (tcp6x4) R.tcp4_ipv6_mbps[pair.id] = round(tcp6x4.mbps);
      }

      for (const rate of has('--skip-udp') ? [] : UDP_RATES) {
        const udp = await scenario(R, `${pair.id} UDP ${rate}M`, () => withDaemonCpu(p, () => iperf3(p.b.ns, p.b.inner4, p.a.ns, { seconds: SECONDS, udpMbps: rate, len: 1392 })));
        if (!udp) continue;
        perCpu(`udp_${rate}`, udp);
        R.udp_at_mbps[rate] ??= {};
        R.udp_at_mbps[rate][pair.id] = {
          offered_mbps: rate,
          sender_mbps: round(udp.sentMbps),
          receiver_mbps: round(udp.mbps),
          loss_percent: round(udp.lossPercent, 2),
          jitter_ms: round(udp.jitterMs, 3),
          packets: udp.packets,
          lost: udp.lost,
          daemon_cpu_s: { a: round(udp.cpu.a, 2), b: round(udp.cpu.b, 2) },
        };
      }

      const loaded = has('--skip-ping') ? undefined : await scenario(R, `${pair.id} ping under TCP load`, async () => {
        const count = Math.max(100, Math.round((SECONDS - 1) / PING_INTERVAL));
        const tcpP = iperf3(p.b.ns, p.b.inner4, p.a.ns, { seconds: SECONDS, port: 5202 });
        await sleep(600);
        const pingP = pingStats(p.a.ns, p.b.inner4, { count, interval: PING_INTERVAL, deadline: SECONDS + 10 });
        const [tcp, ping] = await Promise.all([tcpP, pingP]);
        return { ...ping, tcp_mbps_meanwhile: round(tcp.mbps) };
      });
      if (loaded) R.ping_load_ms[pair.id] = loaded;
    }

    const rss = (pid) => round(memKiB(pid).rss / 1024, 1);
    R.daemon_rss_mib[pair.id] = { a: rss(p.a.daemon.pid), b: rss(p.b.daemon.pid) };

    if (pair.handshakes && !has('--skip-handshakes')) {
      const hs = await scenario(R, `${pair.id} handshakes/s (responder ${implName(pair.b)} in B)`, async () => {
        const keys = await prepareResponder((args) => wg(p.b.ns, args), p.b.ifname, HS_IDENTITIES, p.dir);
        const child = nsSpawn(p.a.ns, process.execPath, handshakeLoadArgs(p, keys, { seconds: HS_SECONDS, window: HS_WINDOW }));
        // Data-packet latency through the responder while it is flooded (reported, not asserted):
        // pings A → B every PING_INTERVAL over the warm-up and the counted window.
        let pingP = Promise.resolve(null);
        let started = '';
        child.stderr.on('data', (d) => {
          if (pingP !== null && !started.includes('flood started') && (started += d).includes('flood started')) {
            const count = Math.round((HS_SECONDS + 0.5) / PING_INTERVAL);
            pingP = pingStats(p.a.ns, p.b.inner4, { count, interval: PING_INTERVAL, deadline: HS_SECONDS + 5 }).catch(() => null);
          }
        });
        const r = await collect(child, 300_000);
        const ping = await pingP;
        if (r.code !== 0) throw new Error(`handshake-load exited ${r.code}: ${r.stderr.slice(-1500)}`);
        return { responder: implName(pair.b), ...JSON.parse(r.stdout.trim().split('\n').pop()), ping_during_flood_ms: ping };
      });
      if (hs) {
        R.handshakes[pair.handshakes] = hs;
        R.handshakes_per_s[pair.handshakes] = hs.handshakes_per_s;
      }
    }
  } finally {
    await t.teardown();
  }
}

// ─── main ───────────────────────────────────────────────────────────────────

async function main() {
  if (has('--render')) {
    process.stdout.write(render(JSON.parse(readFileSync(join(RESULTS_DIR, 'latest.json'), 'utf8'))));
    return;
  }
  const problems = prerequisites();
  if (problems.length) {
    for (const p of problems) log(`cannot run: ${p}`);
    process.exit(2);
  }
  const started = new Date();
  const t0 = performance.now();
  await removeStale();
  const R = {
    schema: 1,
    date: started.toISOString(),
    mode: quick ? 'quick' : 'full',
    seconds_per_test: SECONDS,
    ...(await environment()),
    config: {
      topology: 'two network namespaces joined by a veth pair: A 192.168.241.1 (port 51820), B 192.168.241.2 (port 51821); tunnel 10.7.0.1 ↔ 10.7.0.2 and fd07::1 ↔ fd07::2, MTU 1420',
      udp_offered_mbps: has('--skip-udp') ? [] : UDP_RATES,
      ipv6_inner: !SKIP_IPV6,
      udp_datagram_bytes: 1392,
      ping: `${PING_COUNT} pings at ${PING_INTERVAL} s (idle); every ${PING_INTERVAL} s during a ${SECONDS} s TCP run (under load)`,
      handshakes: { identities: HS_IDENTITIES, window: HS_WINDOW, seconds: HS_SECONDS },
      hub_peers: HUB_PEERS,
      join: { runs: JOIN_RUNS, hub_api: 'https (self-signed, --ca-hash pinned) on the veth, hub in A, agent in B', subnet: '10.90.0.0/16' },
      registrations: { requests: REG_N, concurrency: REG_CONCURRENCY, hub_api: 'http://127.0.0.1 (--api-insecure-http), client in the hub namespace', subnet: '10.96.0.0/16' },
    },
    pairs: {},
    tcp_mbps: {},
    tcp4_mbps: {},
    tcp_ipv6_mbps: {},
    tcp4_ipv6_mbps: {},
    tcp_detail: {},
    udp_at_mbps: {},
    ping_idle_ms: {},
    ping_load_ms: {},
    cpu_cores_tcp1: {},
    mbit_per_cpu_s: {},
    daemon_rss_mib: {},
    handshakes_per_s: {},
    handshakes: {},
    hub: null,
    multihub: null,
    join_to_first_reply_ms: null,
    registrations_per_s: null,
    join: null,
    registrations: null,
    ratio: {},
    errors: [],
  };
  log(`mode ${R.mode}: ${SECONDS} s per iperf3 test; tsguard ${R.versions.tsguard.commit ?? '?'}, ${R.versions.wireguard_go}`);

  try {
    // Rounds alternate the pairs (this host's speed drifts within minutes); traffic figures are the
    // medians over the rounds (each round's own figures in `rounds`), handshakes too: a 3 s flood swings
    // as much as a TCP run with the host's speed.
    const rounds = [];
    for (let round = 0; round < ROUNDS && !stopping; round++) {
      if (ROUNDS > 1) log(`round ${round + 1} of ${ROUNDS}`);
      const RR = ROUNDS === 1 ? R : { ...R, ...Object.fromEntries(TRAFFIC_KEYS.map((k) => [k, {}])) };
      for (const pair of PAIRS) {
        if (stopping) break;
        try {
          await benchPair(pair, RR);
        } catch (e) {
          log(`pair ${pair.id} FAILED: ${String(e?.message ?? e).split('\n')[0]}`);
          R.errors.push({ scenario: pair.id, error: String(e?.message ?? e).slice(0, 2000) });
        }
      }
      rounds.push(Object.fromEntries(TRAFFIC_KEYS.map((k) => [k, RR[k]])));
    }
    if (ROUNDS > 1) {
      for (const k of TRAFFIC_KEYS) R[k] = medianOf(rounds.map((x) => x[k]));
      R.rounds = rounds;
    }
    if (!has('--skip-hub') && !stopping) {
      // A /16 above what a /18 holds (e.g. --hub-peers 50000).
      const subnet = HUB_PEERS > 16_000 ? '10.100.0.0/16' : '10.100.0.0/18';
      R.hub = (await scenario(R, `hub RSS with ${HUB_PEERS} peers`, () => hubRss({ peers: HUB_PEERS, subnet, log: (m) => log(`  ${m}`) }))) ?? null;
    }
    if (!has('--skip-multihub') && !stopping) {
      R.multihub = (await scenario(R, 'CLI change through hub B → live on hub A (PostgreSQL)', () => cliChangeAcrossHubs({ runs: quick ? 5 : 20, log: (m) => log(`  ${m}`) }))) ?? null;
    }
    if (!has('--skip-registration') && !stopping) {
      R.join = (await scenario(R, `join → first ping reply (median of ${JOIN_RUNS})`, () => joinLatency({ runs: JOIN_RUNS, log: (m) => log(`  ${m}`) }))) ?? null;
      R.join_to_first_reply_ms = R.join?.join_to_first_reply_ms ?? null;
      R.registrations = (await scenario(R, `${REG_N} registrations, concurrency ${REG_CONCURRENCY}`, () =>
        registrationRate({ n: REG_N, concurrency: REG_CONCURRENCY, log: (m) => log(`  ${m}`) }))) ?? null;
      R.registrations_per_s = R.registrations?.registrations_per_s ?? null;
    }
  } finally {
    await teardownAll();
  }
  if (stopping) return;

  const ratio = (x, y) => (x && y ? Math.round((x / y) * 1000) / 1000 : null);
  // Each figure against the best wireguard-go pair of the run on that figure (named per figure).
  const against = againstFastest(R, PAIRS.filter((p) => p.wggo).map((p) => ({ id: p.id, handshakes: p.handshakes })));
  const udp1g = udpAt(R, 1000) ?? {};
  R.ratio = {
    // The fastest wireguard-go by TCP 1 stream (the headline comparison).
    fastest_wggo: against.tcp.wggo,
    against_fastest: against,
    ...Object.fromEntries(['tcp', 'tcp4', 'tcp_ipv6', 'tcp4_ipv6', 'udp1g', 'ping_load', 'handshakes'].map((k) => [`${k}_tsguard_vs_fastest`, against[k].ratio])),
    tcp_tsguard_vs_wggo: ratio(R.tcp_mbps.tsguard_tsguard, R.tcp_mbps.wggo_wggo),
    tcp4_tsguard_vs_wggo: ratio(R.tcp4_mbps.tsguard_tsguard, R.tcp4_mbps.wggo_wggo),
    tcp_ipv6_tsguard_vs_wggo: ratio(R.tcp_ipv6_mbps.tsguard_tsguard, R.tcp_ipv6_mbps.wggo_wggo),
    tcp_mixed_vs_wggo: ratio(R.tcp_mbps.tsguard_wggo, R.tcp_mbps.wggo_wggo),
    udp1g_tsguard_vs_wggo: ratio(udp1g.tsguard_tsguard?.receiver_mbps, udp1g.wggo_wggo?.receiver_mbps),
    handshakes_tsguard_vs_wggo: ratio(R.handshakes_per_s.tsguard, R.handshakes_per_s.wireguard_go),
  };
  R.duration_s = Math.round((performance.now() - t0) / 100) / 10;

  writeResults(R);
  if (R.errors.length) process.exitCode = 1;
}

const RESULTS_DIR = join(ROOT, 'bench/results');

function writeAtomic(name, text) {
  const p = join(RESULTS_DIR, name);
  writeFileSync(p + '.tmp', text);
  renameSync(p + '.tmp', p);
}

/** latest.md, latest.svg and the README section, from a results object. */
function render(R) {
  const md = renderMarkdown(R);
  writeAtomic('latest.md', md);
  writeAtomic('latest.svg', renderSvg(R));
  if (!has('--no-readme')) {
    try {
      replaceSection(join(ROOT, 'bench/README.md'), 'results', `![TCP throughput per pair](results/latest.svg)\n\n${md}`);
    } catch (e) {
      log(`README not updated: ${e.message}`);
    }
  }
  return md;
}

function writeResults(R) {
  const dir = RESULTS_DIR;
  mkdirSync(dir, { recursive: true });
  const stamp = R.date.replace(/\.\d+Z$/, 'Z').replace(/:/g, '-'); // ISO 8601 basic-safe file name (no ':')
  const json = JSON.stringify(R, null, 2) + '\n';
  writeAtomic(`${stamp}.json`, json);
  writeAtomic('latest.json', json);
  process.stdout.write(render(R));
  log(`wrote bench/results/${stamp}.json, latest.{json,md,svg} in ${R.duration_s} s total`);
}

main().catch(async (e) => {
  log(`fatal: ${e?.stack ?? e}`);
  await teardownAll();
  process.exit(1);
});
