// Namespace topology and daemon helpers: one implementation for the tests (test/net/netns.ts
// re-exports it, typed by netns.d.mts) and the benchmark. All traffic stays in the namespaces.
//
//   ns A: vA 192.168.241.1/24, fd00:241::1/64  <── veth ──>  ns B: vB 192.168.241.2/24, fd00:241::2/64
//   tunnel (configurePair): A 10.7.0.1/24 + fd07::1/64, B 10.7.0.2/24 + fd07::2/64 (MTU 1420)
//
// Teardown order matters: deleting a namespace does not stop a daemon running in it, so
// Topology.teardown first SIGTERMs every process in each namespace (`ip netns pids`), waits for
// them to exit (SIGKILL after a grace period), removes leftover UAPI sockets and only then deletes
// the namespaces.
import { existsSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cmdline, collect, nsPids, nsRun, nsSpawn, percentile, rand, run, terminate, waitFor } from './proc.mjs';

// The process and namespace helpers, for callers of this module.
export * from './proc.mjs';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const TSGUARD_WG = join(ROOT, 'dist/cli/tsguard-wg.js');
export const TSGUARD = join(ROOT, 'dist/cli/tsguard.js');
export const SOCKET_DIR = '/var/run/wireguard';
/** Namespaces of the benchmark start with this (stale ones from a killed run are removed at start). */
export const NS_PREFIX = 'tsgbench-';

export const OUTER = { a4: '192.168.241.1', b4: '192.168.241.2', a6: 'fd00:241::1', b6: 'fd00:241::2' };
export const INNER = { a4: '10.7.0.1', b4: '10.7.0.2', a6: 'fd07::1', b6: 'fd07::2' };

/** Throw a clear error if dist/ or the native addon have not been built. */
export function assertBuilt() {
  if (!existsSync(TSGUARD_WG)) throw new Error(`${TSGUARD_WG} is missing: run "npm run build" first`);
  if (!existsSync(join(ROOT, 'build/Release/tsguard_native.node'))) {
    throw new Error('native addon build/Release/tsguard_native.node is missing: run "npm run build" first');
  }
}

const live = new Set();

/** Two namespaces joined by a veth pair (or a single namespace); torn down by teardown() or teardownAll(). */
export class Topology {
  ifnames = new Set();
  cleanups = [];
  #down = false;

  constructor(a, b) {
    this.a = a;
    this.b = b;
  }

  get namespaces() {
    return this.b === null ? [this.a] : [this.a, this.b];
  }

  /**
   * Create namespaces `<prefix>A-<tag>` and `<prefix>B-<tag>` joined by veth vA/vB with IPv4 and
   * IPv6 (nodad) addresses, lo up. With `single: true` only A (with lo up) is created. The tag
   * starts with this process's pid (`<pid>p<random>`), so that {@link removeStale} leaves the
   * namespaces of a run still going (another benchmark on the same host) alone.
   */
  static async create({ single = false, prefix = 'tsg' } = {}) {
    assertBuilt();
    const tag = `${process.pid}p${rand(3)}`;
    const t = new Topology(`${prefix}A-${tag}`, single ? null : `${prefix}B-${tag}`);
    live.add(t);
    try {
      for (const ns of t.namespaces) {
        await run('ip', ['netns', 'add', ns]);
        // No IPv6 duplicate address detection: addresses (also the automatic link-local
        // ones) are usable at once and do not appear seconds later in the middle of a test.
        await nsRun(ns, 'sysctl', ['-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
        await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      }
      if (t.b !== null) {
        await run('ip', ['link', 'add', 'vA', 'netns', t.a, 'type', 'veth', 'peer', 'name', 'vB', 'netns', t.b]);
        await run('ip', ['-n', t.a, 'addr', 'add', `${OUTER.a4}/24`, 'dev', 'vA']);
        await run('ip', ['-n', t.b, 'addr', 'add', `${OUTER.b4}/24`, 'dev', 'vB']);
        await run('ip', ['-n', t.a, '-6', 'addr', 'add', `${OUTER.a6}/64`, 'dev', 'vA', 'nodad']);
        await run('ip', ['-n', t.b, '-6', 'addr', 'add', `${OUTER.b6}/64`, 'dev', 'vB', 'nodad']);
        await run('ip', ['-n', t.a, 'link', 'set', 'vA', 'up']);
        await run('ip', ['-n', t.b, 'link', 'set', 'vB', 'up']);
        // The outer path works in both families before any daemon starts.
        await nsRun(t.a, 'ping', ['-c', '1', '-W', '5', OUTER.b4], { timeoutMs: 10_000 });
        await nsRun(t.a, 'ping', ['-6', '-c', '1', '-W', '5', OUTER.b6], { timeoutMs: 10_000 });
        // The link-local addresses are in place (tests compare address/route snapshots).
        for (const [ns, dev] of [
          [t.a, 'vA'],
          [t.b, 'vB'],
        ]) {
          await waitFor(`link-local address on ${dev}`, async () => {
            const out = (await run('ip', ['-n', ns, '-6', 'addr', 'show', 'dev', dev, 'scope', 'link'])).stdout;
            return out.includes('inet6 fe80:') && !out.includes('tentative');
          }, 10_000);
        }
      }
    } catch (e) {
      await t.teardown();
      throw e;
    }
    return t;
  }

  /** A temp directory removed at teardown. */
  tempDir() {
    const d = mkdtempSync(join(tmpdir(), 'tsguard-ns-'));
    this.cleanups.push(() => rmSync(d, { recursive: true, force: true }));
    return d;
  }

  /** Kill every process in the namespaces, remove leftover sockets, delete the namespaces, run cleanups. Idempotent. */
  async teardown() {
    if (this.#down) return;
    this.#down = true;
    live.delete(this);
    for (const ns of this.namespaces) await terminate(await nsPids(ns));
    for (const n of this.ifnames) {
      try {
        unlinkSync(`${SOCKET_DIR}/${n}.sock`);
      } catch {
        // gone (normal)
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

/** Tear down every topology still alive (afterAll / signal handlers). */
export async function teardownAll() {
  for (const t of [...live]) await t.teardown();
}

/** True when process `pid` exists. */
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

/**
 * Remove namespaces left by a previous, killed run: those starting with `prefix` whose creating
 * process (the pid in the tag, see {@link Topology.create}) is gone. Namespaces without a pid in
 * the name may belong to a run still going and are left alone.
 */
export async function removeStale(prefix = NS_PREFIX) {
  const r = await run('ip', ['netns', 'list'], { allowFail: true });
  for (const line of r.stdout.split('\n')) {
    const ns = line.split(/\s+/)[0];
    if (!ns || !ns.startsWith(prefix)) continue;
    const owner = /^[AB]-(\d+)p[0-9a-f]+$/.exec(ns.slice(prefix.length));
    if (owner === null || alive(Number(owner[1]))) continue;
    await terminate(await nsPids(ns));
    await run('ip', ['netns', 'del', ns], { allowFail: true });
  }
}

// ─── daemons ────────────────────────────────────────────────────────────────

/** A fresh interface name (≤ 15 bytes, unique across namespaces because sockets are shared). */
export const ifname = (prefix) => `${prefix}${rand(3)}`.slice(0, 15);

/** PID of the daemon serving `name` in `ns` (a tsguard-wg or a wireguard-go, or the binary `bin`), or null. */
export async function daemonPid(ns, name, bin = null) {
  for (const pid of await nsPids(ns)) {
    const cl = cmdline(pid);
    if (cl === null || cl[cl.length - 1] !== name) continue;
    if (cl.some((a) => (bin === null ? a.endsWith('tsguard-wg.js') || a.endsWith('wireguard-go') : a.endsWith(bin)))) return pid;
  }
  return null;
}

/**
 * Start `impl` in `ns` the way users do (detached: the command returns once the TUN and the socket
 * exist): 'tsguard', 'wireguard-go' (the one in PATH) or a wireguard-go build `{ name, path }`
 * (bench/lib/wggo.mjs); returns { ns, impl, ifname, pid, socket }. With `profileDir`, tsguard runs in
 * the foreground under the V8 CPU profiler (the profile is written when it exits on SIGTERM) and the
 * result also has `done`.
 */
export async function startDaemon(t, ns, impl, name, env = {}, profileDir = null) {
  t.ifnames.add(name);
  const fullEnv = { ...process.env, ...env };
  const socket = `${SOCKET_DIR}/${name}.sock`;
  if (impl === 'tsguard' && profileDir !== null) {
    const child = nsSpawn(ns, process.execPath, ['--cpu-prof', '--cpu-prof-dir', profileDir, TSGUARD_WG, '-f', name], fullEnv);
    const out = collect(child, 3_600_000);
    out.catch(() => undefined);
    await waitFor(`${name} socket`, () => existsSync(socket) || child.exitCode !== null, 20_000);
    if (child.exitCode !== null) throw new Error(`tsguard-wg -f ${name} exited: ${(await out).stderr}`);
    return { ns, impl, ifname: name, pid: child.pid, socket, done: out };
  }
  const bin = typeof impl === 'object' ? impl.path : 'wireguard-go';
  const what = typeof impl === 'object' ? `wireguard-go ${impl.name}` : impl;
  if (impl === 'tsguard') await nsRun(ns, process.execPath, [TSGUARD_WG, name], { env: fullEnv, timeoutMs: 20_000 });
  else await nsRun(ns, bin, [name], { env: fullEnv, timeoutMs: 20_000 });
  if (!existsSync(socket)) throw new Error(`${what} ${name}: socket ${socket} missing after the start command returned`);
  const link = await run('ip', ['-n', ns, 'link', 'show', 'dev', name], { allowFail: true });
  if (link.code !== 0) throw new Error(`${what} ${name}: interface missing after the start command returned: ${link.stderr}`);
  const pid = await waitFor(`pid of ${what} ${name}`, () => daemonPid(ns, name, typeof impl === 'object' ? bin : null), 5000);
  return { ns, impl, ifname: name, pid, socket };
}

/** SIGTERM a daemon and wait until it has exited. */
export async function stopDaemon(d) {
  await terminate([d.pid]);
}

/** `wg ARGS` inside a namespace; returns stdout. */
export const wg = async (ns, args, input) => (await nsRun(ns, 'wg', args, { input, timeoutMs: 30_000 })).stdout;

/** A key pair in base64 from `wg genkey`/`wg pubkey`. */
export async function genKeyPair() {
  const priv = (await run('wg', ['genkey'])).stdout.trim();
  const pub = (await run('wg', ['pubkey'], { input: priv + '\n' })).stdout.trim();
  return { priv, pub };
}

/** `wg genpsk`. */
export async function genPsk() {
  return (await run('wg', ['genpsk'])).stdout.trim();
}

/** Write a private key / PSK to a 0600 file (wg reads keys from files). */
function keyFile(dir, name, key) {
  const p = join(dir, name);
  writeFileSync(p, key + '\n', { mode: 0o600 });
  return p;
}

/**
 * Wait until something in `ns` listens on UDP `port`. wireguard-go opens its socket only when it
 * processes the link-up event (asynchronously): a first handshake message sent before that hits a
 * closed port, and only the retransmission 5 s later gets through.
 */
export async function waitListening(ns, port, what) {
  await waitFor(`${what} listening on UDP ${port}`, async () => {
    const r = await nsRun(ns, 'ss', ['-Hulnp'], { allowFail: true });
    return new RegExp(`:${port}\\s`).test(r.stdout);
  }, 10_000);
}

/**
 * Start daemons `implA` in ns A and `implB` in ns B, configure them as each other's peer (mirror
 * configuration) with `wg set`, add the tunnel addresses and bring the TUNs up (MTU 1420).
 * Options: outer (4 | 6, endpoint family), keepalive, psk, portA/portB (51820/51821),
 * endpointOnA/endpointOnB (default true), profileDir (see startDaemon; A and B subdirectories).
 */
export async function configurePair(t, implA, implB, opts = {}) {
  if (t.b === null) throw new Error('configurePair needs a two-namespace topology');
  const outer = opts.outer ?? 4;
  const dir = t.tempDir();
  const [ka, kb] = await Promise.all([genKeyPair(), genKeyPair()]);
  const psk = opts.psk ? await genPsk() : null;
  const prof = (side) => (opts.profileDir ? join(opts.profileDir, side) : null);
  const env = opts.env ?? {};
  const da = await startDaemon(t, t.a, implA, ifname(implA === 'tsguard' ? 'tsa' : 'wga'), env, prof('A'));
  const db = await startDaemon(t, t.b, implB, ifname(implB === 'tsguard' ? 'tsb' : 'wgb'), env, prof('B'));
  const a = { ns: t.a, daemon: da, ifname: da.ifname, keys: ka, port: opts.portA ?? 51820, outer4: OUTER.a4, outer6: OUTER.a6, inner4: INNER.a4, inner6: INNER.a6 };
  const b = { ns: t.b, daemon: db, ifname: db.ifname, keys: kb, port: opts.portB ?? 51821, outer4: OUTER.b4, outer6: OUTER.b6, inner4: INNER.b4, inner6: INNER.b6 };
  const pskFile = psk === null ? null : keyFile(dir, 'psk', psk);
  for (const [self, other, withEndpoint] of [
    [a, b, opts.endpointOnA ?? true],
    [b, a, opts.endpointOnB ?? true],
  ]) {
    const args = ['set', self.ifname, 'private-key', keyFile(dir, `${self.ifname}.key`, self.keys.priv), 'listen-port', String(self.port), 'peer', other.keys.pub];
    if (pskFile !== null) args.push('preshared-key', pskFile);
    if (withEndpoint) args.push('endpoint', outer === 4 ? `${other.outer4}:${other.port}` : `[${other.outer6}]:${other.port}`);
    args.push('allowed-ips', `${other.inner4}/32,${other.inner6}/128`);
    await wg(self.ns, args);
    await run('ip', ['-n', self.ns, 'addr', 'add', `${self.inner4}/24`, 'dev', self.ifname]);
    await run('ip', ['-n', self.ns, '-6', 'addr', 'add', `${self.inner6}/64`, 'dev', self.ifname, 'nodad']);
    await run('ip', ['-n', self.ns, 'link', 'set', self.ifname, 'up', 'mtu', '1420']);
  }
  for (const self of [a, b]) await waitListening(self.ns, self.port, `${self.daemon.impl} ${self.ifname}`);
  // Keepalive last: turning it on sends a packet at once (a handshake), which must not go to a
  // peer that is not configured yet (that datagram would count as sent but never as received).
  if (opts.keepalive !== undefined) {
    for (const [self, other] of [
      [a, b],
      [b, a],
    ]) {
      await wg(self.ns, ['set', self.ifname, 'peer', other.keys.pub, 'persistent-keepalive', String(opts.keepalive)]);
    }
  }
  return { a, b, psk, dir };
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
 * iperf3 client in clientNs → server in serverNs (serverAddr). Options: seconds, parallel, udpMbps,
 * len, reverse (the server sends), port, ipv6 (`-6`: serverAddr is an IPv6 address). TCP: { mbps (receiver), sentMbps, retransmits, bytesSent,
 * bytesReceived, seconds }. UDP: { mbps (receiver), sentMbps, lossPercent, jitterMs, packets, lost }.
 */
export async function iperf3(serverNs, serverAddr, clientNs, o = {}) {
  const port = o.port ?? 5201;
  const srv = await iperfServer(serverNs, serverAddr, port);
  try {
    const args = [...(o.ipv6 ? ['-6'] : []), '-c', serverAddr, '-p', String(port), '-t', String(o.seconds ?? 3), '-J', '--connect-timeout', '5000'];
    if (o.parallel) args.push('-P', String(o.parallel));
    if (o.reverse) args.push('-R');
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
        bytesSent: (end.sum_sent ?? s).bytes,
        bytesReceived: recv.bytes,
        seconds: recv.seconds,
        lossPercent: s.lost_percent,
        jitterMs: s.jitter_ms,
        packets: s.packets,
        lost: s.lost_packets,
      };
    }
    const sent = end?.sum_sent;
    const recv = end?.sum_received;
    if (!sent || !recv) throw new Error(`iperf3 JSON without end sums: ${r.stdout.slice(0, 500)}`);
    return {
      mbps: recv.bits_per_second / 1e6,
      sentMbps: sent.bits_per_second / 1e6,
      retransmits: sent.retransmits ?? null,
      bytesSent: sent.bytes,
      bytesReceived: recv.bytes,
      seconds: recv.seconds,
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
