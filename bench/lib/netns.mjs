// Namespace topology and daemon helpers for the benchmark (plain JS; all traffic stays in the namespaces).
//
//   ns A: vA 192.168.241.1/24  <── veth ──>  ns B: vB 192.168.241.2/24
//   tunnel: A 10.7.0.1/24, B 10.7.0.2/24 (MTU 1420)
import { existsSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cmdline, collect, nsPids, nsRun, nsSpawn, percentile, rand, run, terminate, waitFor } from './proc.mjs';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const TSGUARD_WG = join(ROOT, 'dist/cli/tsguard-wg.js');
export const TSGUARD = join(ROOT, 'dist/cli/tsguard.js');
export const SOCKET_DIR = '/var/run/wireguard';
/** Every namespace this harness creates starts with this (stale ones from a killed run are removed at start). */
export const NS_PREFIX = 'tsgbench-';

export const OUTER = { a: '192.168.241.1', b: '192.168.241.2' };
export const INNER = { a: '10.7.0.1', b: '10.7.0.2' };

export { nsPids, nsRun, nsSpawn, rand } from './proc.mjs';

const live = new Set();

/** A set of namespaces (1 or 2) with the veth pair; torn down by teardown() or teardownAll(). */
export class Topology {
  ifnames = new Set();
  cleanups = [];
  #down = false;
  constructor(namespaces) {
    this.namespaces = namespaces;
    this.a = namespaces[0];
    this.b = namespaces[1] ?? null;
    live.add(this);
  }

  static async create(two = true) {
    const id = rand(3);
    const t = new Topology(two ? [`${NS_PREFIX}a-${id}`, `${NS_PREFIX}b-${id}`] : [`${NS_PREFIX}h-${id}`]);
    try {
      for (const ns of t.namespaces) {
        await run('ip', ['netns', 'add', ns]);
        await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      }
      if (two) {
        await run('ip', ['link', 'add', 'vA', 'netns', t.a, 'type', 'veth', 'peer', 'name', 'vB', 'netns', t.b]);
        await run('ip', ['-n', t.a, 'addr', 'add', `${OUTER.a}/24`, 'dev', 'vA']);
        await run('ip', ['-n', t.b, 'addr', 'add', `${OUTER.b}/24`, 'dev', 'vB']);
        await run('ip', ['-n', t.a, 'link', 'set', 'vA', 'up']);
        await run('ip', ['-n', t.b, 'link', 'set', 'vB', 'up']);
        await nsRun(t.a, 'ping', ['-c', '1', '-W', '5', OUTER.b], { timeoutMs: 10_000 });
      }
    } catch (e) {
      await t.teardown();
      throw e;
    }
    return t;
  }

  tempDir() {
    const d = mkdtempSync(join(tmpdir(), 'tsguard-bench-'));
    this.cleanups.push(() => rmSync(d, { recursive: true, force: true }));
    return d;
  }

  /** Kill every process in the namespaces, remove sockets, delete namespaces, run cleanups. Idempotent. */
  async teardown() {
    if (this.#down) return;
    this.#down = true;
    live.delete(this);
    for (const ns of this.namespaces) await terminate(await nsPids(ns));
    for (const n of this.ifnames) {
      try {
        unlinkSync(`${SOCKET_DIR}/${n}.sock`);
      } catch {
        // gone
      }
    }
    for (const ns of this.namespaces) await run('ip', ['netns', 'del', ns], { allowFail: true });
    for (const c of this.cleanups.splice(0)) {
      try {
        c();
      } catch {
        // best effort
      }
    }
  }
}

export async function teardownAll() {
  for (const t of [...live]) await t.teardown();
}

/** Remove namespaces left by a previous, killed run of this harness (only ours, by prefix). */
export async function removeStale() {
  const r = await run('ip', ['netns', 'list'], { allowFail: true });
  for (const line of r.stdout.split('\n')) {
    const ns = line.split(/\s+/)[0];
    if (!ns || !ns.startsWith(NS_PREFIX)) continue;
    await terminate(await nsPids(ns));
    await run('ip', ['netns', 'del', ns], { allowFail: true });
  }
}

// ─── daemons ────────────────────────────────────────────────────────────────

export const ifname = (prefix) => `${prefix}${rand(3)}`.slice(0, 15);

async function daemonPid(ns, name, bin) {
  for (const pid of await nsPids(ns)) {
    const cl = cmdline(pid);
    if (cl === null || cl[cl.length - 1] !== name) continue;
    if (cl.some((a) => a.endsWith(bin))) return pid;
  }
  return null;
}

/**
 * Start `impl` detached in ns, the way users do: 'tsguard', 'wireguard-go' (the one in PATH) or a
 * wireguard-go build `{ path }` (bench/lib/wggo.mjs); returns { ns, impl, ifname, pid }.
 */
export async function startDaemon(t, ns, impl, name, env = {}, profileDir = null) {
  t.ifnames.add(name);
  const fullEnv = { ...process.env, ...env };
  if (impl === 'tsguard' && profileDir !== null) {
    // Foreground under the V8 CPU profiler; the profile is written when the daemon exits on SIGTERM.
    const child = nsSpawn(ns, process.execPath, ['--cpu-prof', '--cpu-prof-dir', profileDir, TSGUARD_WG, '-f', name], fullEnv);
    const out = collect(child, 3_600_000);
    out.catch(() => undefined);
    await waitFor(`${name} socket`, () => existsSync(`${SOCKET_DIR}/${name}.sock`) || child.exitCode !== null, 20_000);
    if (child.exitCode !== null) throw new Error(`tsguard-wg -f ${name} exited: ${(await out).stderr}`);
    return { ns, impl, ifname: name, pid: child.pid, done: out };
  }
  const bin = impl === 'tsguard' ? TSGUARD_WG : typeof impl === 'object' ? impl.path : 'wireguard-go';
  if (impl === 'tsguard') await nsRun(ns, process.execPath, [bin, name], { env: fullEnv, timeoutMs: 20_000 });
  else await nsRun(ns, bin, [name], { env: fullEnv, timeoutMs: 20_000 });
  if (!existsSync(`${SOCKET_DIR}/${name}.sock`)) throw new Error(`${bin} ${name}: no UAPI socket after start`);
  const pid = await waitFor(`pid of ${bin} ${name}`, () => daemonPid(ns, name, impl === 'tsguard' ? 'tsguard-wg.js' : bin), 5000);
  return { ns, impl, ifname: name, pid };
}

export const wg = async (ns, args, input) => (await nsRun(ns, 'wg', args, { input, timeoutMs: 30_000 })).stdout;

export async function genKeyPair() {
  const priv = (await run('wg', ['genkey'])).stdout.trim();
  const pub = (await run('wg', ['pubkey'], { input: priv + '\n' })).stdout.trim();
  return { priv, pub };
}

/**
 * Daemons implA in ns A and implB in ns B, mirror-configured with `wg set`
 * (listen ports 51820/51821), tunnel addresses, MTU 1420, up.
 */
export async function configurePair(t, implA, implB, { profileDir = null } = {}) {
  const dir = t.tempDir();
  const [ka, kb] = await Promise.all([genKeyPair(), genKeyPair()]);
  const da = await startDaemon(t, t.a, implA, ifname(implA === 'tsguard' ? 'tsa' : 'wga'), {}, profileDir && join(profileDir, 'A'));
  const db = await startDaemon(t, t.b, implB, ifname(implB === 'tsguard' ? 'tsb' : 'wgb'), {}, profileDir && join(profileDir, 'B'));
  const a = { ns: t.a, daemon: da, ifname: da.ifname, keys: ka, port: 51820, outer: OUTER.a, inner: INNER.a };
  const b = { ns: t.b, daemon: db, ifname: db.ifname, keys: kb, port: 51821, outer: OUTER.b, inner: INNER.b };
  for (const [self, other] of [
    [a, b],
    [b, a],
  ]) {
    const keyFile = join(dir, `${self.ifname}.key`);
    writeFileSync(keyFile, self.keys.priv + '\n', { mode: 0o600 });
    await wg(self.ns, ['set', self.ifname, 'private-key', keyFile, 'listen-port', String(self.port), 'peer', other.keys.pub,
      'endpoint', `${other.outer}:${other.port}`, 'allowed-ips', `${other.inner}/32`]);
    await run('ip', ['-n', self.ns, 'addr', 'add', `${self.inner}/24`, 'dev', self.ifname]);
    await run('ip', ['-n', self.ns, 'link', 'set', self.ifname, 'up', 'mtu', '1420']);
  }
  return { a, b, dir };
}

// ─── traffic ────────────────────────────────────────────────────────────────

/** Start a one-off iperf3 server in ns bound to addr; resolves once it listens. */
async function iperfServer(ns, addr, port) {
  const server = nsSpawn(ns, 'iperf3', ['-s', '-1', '--forceflush', '-B', addr, '-p', String(port)]);
  const done = collect(server, 120_000);
  let out = '';
  server.stdout.on('data', (d) => (out += d));
  await waitFor('iperf3 server to listen', () => out.includes('Server listening'), 10_000);
  return {
    async stop() {
      if (server.exitCode === null && server.signalCode === null) server.kill('SIGTERM');
      await done.catch(() => undefined);
    },
  };
}

/**
 * iperf3 client in clientNs → server in serverNs (serverAddr). Options: seconds, parallel, udpMbps, len.
 * TCP: { mbps (receiver), sentMbps, retransmits }. UDP: { mbps (receiver), sentMbps, lossPercent, jitterMs }.
 */
export async function iperf3(serverNs, serverAddr, clientNs, o = {}) {
  const port = o.port ?? 5201;
  const srv = await iperfServer(serverNs, serverAddr, port);
  try {
    const args = ['-c', serverAddr, '-p', String(port), '-t', String(o.seconds ?? 3), '-J', '--connect-timeout', '5000'];
    if (o.parallel) args.push('-P', String(o.parallel));
    if (o.udpMbps) args.push('-u', '-b', `${o.udpMbps}M`, '-l', String(o.len ?? 1392));
    const r = await nsRun(clientNs, 'iperf3', args, { allowFail: true, timeoutMs: (o.seconds ?? 3) * 1000 + 60_000 });
    let j;
    try {
      j = JSON.parse(r.stdout);
    } catch {
      throw new Error(`iperf3 printed no JSON (exit ${r.code}): ${r.stdout.slice(0, 300)} ${r.stderr}`);
    }
    if (j.error !== undefined || r.code !== 0) throw new Error(`iperf3 failed (exit ${r.code}): ${j.error ?? r.stderr}`);
    const end = j.end;
    if (o.udpMbps) {
      const s = end.sum;
      const recv = end.sum_received ?? s;
      return {
        offeredMbps: o.udpMbps,
        sentMbps: (end.sum_sent ?? s).bits_per_second / 1e6,
        mbps: recv.bits_per_second / 1e6,
        lossPercent: s.lost_percent,
        jitterMs: s.jitter_ms,
        packets: s.packets,
        lost: s.lost_packets,
      };
    }
    return {
      mbps: end.sum_received.bits_per_second / 1e6,
      sentMbps: end.sum_sent.bits_per_second / 1e6,
      retransmits: end.sum_sent.retransmits ?? null,
    };
  } finally {
    await srv.stop();
  }
}

/** Ping with per-reply RTTs: { sent, received, lossPercent, p50, p99, min, max, mean } (ms). */
export async function pingStats(ns, dst, { count = 200, interval = 0.01, deadline } = {}) {
  const dl = deadline ?? Math.ceil(count * interval + 5);
  const r = await nsRun(ns, 'ping', ['-n', '-c', String(count), '-i', String(interval), '-W', '1', '-w', String(dl), dst], {
    allowFail: true,
    timeoutMs: (dl + 10) * 1000,
  });
  const rtts = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  const sent = m ? Number(m[1]) : count;
  const received = rtts.length;
  const round = (x) => (x === null ? null : Math.round(x * 1000) / 1000);
  return {
    sent,
    received,
    lossPercent: sent ? Math.round(((sent - received) / sent) * 10000) / 100 : null,
    p50: round(percentile(rtts, 50)),
    p99: round(percentile(rtts, 99)),
    min: round(rtts.length ? Math.min(...rtts) : null),
    max: round(rtts.length ? Math.max(...rtts) : null),
    mean: round(rtts.length ? rtts.reduce((a, b) => a + b, 0) / rtts.length : null),
  };
}
