/**
 * Helpers for tests that run real daemons (tsguard-wg, wireguard-go) in
 * network namespaces joined by a veth pair. All traffic stays inside the
 * namespaces these helpers create.
 *
 * Topology (`Topology.create`):
 *
 *   ns A: veth vA 192.168.241.1/24, fd00:241::1/64  <──veth──>  ns B: vB 192.168.241.2/24, fd00:241::2/64
 *
 * Tunnel addresses used by `configurePair`: A 10.7.0.1/24 + fd07::1/64, B 10.7.0.2/24 + fd07::2/64.
 *
 * Teardown order matters: deleting a namespace does not stop a daemon running in it,
 * so `Topology.teardown` first SIGTERMs every process in each namespace (`ip netns pids`),
 * waits for them to exit (SIGKILL after a grace period), removes leftover UAPI sockets and
 * only then deletes the namespaces.
 */
import { existsSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
// The process and namespace helpers: one implementation for the tests and the benchmark (plain JS, typed by proc.d.mts).
import { cmdline, collect, nsPids, nsRun, nsSpawn, rand, run, sleep, terminate, waitFor, which } from '../../bench/lib/proc.mjs';

/** Repository root. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The compiled daemon. */
export const TSGUARD_WG = join(ROOT, 'dist/cli/tsguard-wg.js');
/** Directory of UAPI sockets (shared by all namespaces). */
export const SOCKET_DIR = '/var/run/wireguard';

// ─── prerequisites ──────────────────────────────────────────────────────────

/** Why the namespace tests cannot run here, or null when they can. */
export function missingPrerequisite(tools: string[] = ['ip', 'wg', 'wireguard-go', 'iperf3', 'ping']): string | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'not running as root (network namespaces, TUN and veth need root)';
  const missing = tools.filter((t) => which(t) === null);
  if (missing.length > 0) return `missing tool(s): ${missing.join(', ')}`;
  return null;
}

/**
 * Whether a namespace test file should be skipped: only when a prerequisite is missing
 * and we are not under CI (CI=true must run them, and fail loudly if it cannot).
 */
export function shouldSkip(file: string, tools?: string[]): boolean {
  const reason = missingPrerequisite(tools);
  if (reason === null) return false;
  if (process.env.CI === 'true') return false;
  console.warn(`[${file}] SKIPPED: ${reason}`);
  return true;
}

/** Throw a clear error if dist/ or the native addon have not been built. */
export function assertBuilt(): void {
  if (!existsSync(TSGUARD_WG)) throw new Error(`${TSGUARD_WG} is missing: run "npm run build" first`);
  if (!existsSync(join(ROOT, 'build/Release/tsguard_native.node'))) {
    throw new Error('native addon build/Release/tsguard_native.node is missing: run "npm run build" first');
  }
}

// ─── processes ──────────────────────────────────────────────────────────────
// Re-exported from bench/lib/proc.mjs (imported above).
export * from '../../bench/lib/proc.mjs';

// ─── topology ───────────────────────────────────────────────────────────────

/** Outer (veth) addresses. */
export const OUTER = {
  a4: '192.168.241.1',
  b4: '192.168.241.2',
  a6: 'fd00:241::1',
  b6: 'fd00:241::2',
} as const;

/** Tunnel addresses. */
export const INNER = {
  a4: '10.7.0.1',
  b4: '10.7.0.2',
  a6: 'fd07::1',
  b6: 'fd07::2',
} as const;

const liveTopologies = new Set<Topology>();

/** Two namespaces joined by a veth pair (or a single namespace). */
export class Topology {
  /** Interface names created by daemons in these namespaces (their sockets are removed at teardown). */
  readonly ifnames = new Set<string>();
  /** Extra cleanup steps (temp dirs...), run at teardown after the processes are gone. */
  readonly cleanups: (() => void)[] = [];
  #down = false;

  private constructor(
    readonly a: string,
    readonly b: string | null,
  ) {}

  /** Namespaces of this topology. */
  get namespaces(): string[] {
    return this.b === null ? [this.a] : [this.a, this.b];
  }

  /**
   * Create namespaces `tsgA-<tag>` and `tsgB-<tag>` joined by veth vA/vB with IPv4 and
   * IPv6 (nodad) addresses, lo up. With `single: true` only A (with lo up) is created.
   */
  static async create(opts: { single?: boolean } = {}): Promise<Topology> {
    assertBuilt();
    const tag = rand(3);
    const t = new Topology(`tsgA-${tag}`, opts.single ? null : `tsgB-${tag}`);
    liveTopologies.add(t);
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
        ] as const) {
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

  /** Kill every process in the namespaces, remove leftover sockets, delete the namespaces. Idempotent. */
  async teardown(): Promise<void> {
    if (this.#down) return;
    this.#down = true;
    liveTopologies.delete(this);
    for (const ns of this.namespaces) await terminate(await nsPids(ns));
    for (const ifname of this.ifnames) {
      try {
        unlinkSync(`${SOCKET_DIR}/${ifname}.sock`);
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

  /** A temp directory removed at teardown. */
  tempDir(): string {
    const d = mkdtempSync(join(tmpdir(), 'tsguard-test-'));
    this.cleanups.push(() => rmSync(d, { recursive: true, force: true }));
    return d;
  }
}

/** Tear down every topology still alive (use in afterAll as a safety net). */
export async function teardownAll(): Promise<void> {
  for (const t of [...liveTopologies]) await t.teardown();
}

// ─── daemons ────────────────────────────────────────────────────────────────

/** Which userspace implementation. */
export type Impl = 'tsguard' | 'wireguard-go';

/** A running daemon. */
export interface Daemon {
  ns: string;
  impl: Impl;
  ifname: string;
  pid: number;
  socket: string;
}

/** A fresh interface name (≤ 15 bytes, unique across namespaces because sockets are shared). */
export function ifname(prefix: string): string {
  return `${prefix}${rand(3)}`.slice(0, 15);
}

/** PID of the daemon serving `ifname` in `ns`, or null. */
export async function daemonPid(ns: string, name: string): Promise<number | null> {
  for (const pid of await nsPids(ns)) {
    const cl = cmdline(pid);
    if (cl === null || cl[cl.length - 1] !== name) continue;
    if (cl.some((a) => a.endsWith('tsguard-wg.js') || a.endsWith('wireguard-go'))) return pid;
  }
  return null;
}

/**
 * Start a daemon the way users do (detached: the command returns once the TUN and the
 * socket exist) and find its PID in the namespace.
 */
export async function startDaemon(t: Topology, ns: string, impl: Impl, name: string, env: NodeJS.ProcessEnv = {}): Promise<Daemon> {
  t.ifnames.add(name);
  const fullEnv = { ...process.env, ...env };
  if (impl === 'tsguard') await nsRun(ns, process.execPath, [TSGUARD_WG, name], { env: fullEnv, timeoutMs: 20_000 });
  else await nsRun(ns, 'wireguard-go', [name], { env: fullEnv, timeoutMs: 20_000 });
  const socket = `${SOCKET_DIR}/${name}.sock`;
  if (!existsSync(socket)) throw new Error(`${impl} ${name}: socket ${socket} missing after the start command returned`);
  const link = await run('ip', ['-n', ns, 'link', 'show', 'dev', name], { allowFail: true });
  if (link.code !== 0) throw new Error(`${impl} ${name}: interface missing after the start command returned: ${link.stderr}`);
  const pid = await waitFor(`pid of ${impl} ${name}`, () => daemonPid(ns, name), 5000);
  return { ns, impl, ifname: name, pid, socket };
}

/** SIGTERM a daemon and wait until it has exited. */
export async function stopDaemon(d: Daemon): Promise<void> {
  await terminate([d.pid]);
}

// ─── wg ─────────────────────────────────────────────────────────────────────

/** `wg ARGS` inside a namespace; returns stdout. */
export async function wg(ns: string, args: string[], input?: string): Promise<string> {
  return (await nsRun(ns, 'wg', args, { input, timeoutMs: 15_000 })).stdout;
}

/** A key pair in base64. */
export interface KeyPair {
  priv: string;
  pub: string;
}

/** Generate a key pair with `wg genkey`/`wg pubkey`. */
export async function genKeyPair(): Promise<KeyPair> {
  const priv = (await run('wg', ['genkey'])).stdout.trim();
  const pub = (await run('wg', ['pubkey'], { input: priv + '\n' })).stdout.trim();
  return { priv, pub };
}

/** `wg genpsk`. */
export async function genPsk(): Promise<string> {
  return (await run('wg', ['genpsk'])).stdout.trim();
}

/** Interface line of `wg show IF dump`. */
export interface DumpInterface {
  privateKey: string;
  publicKey: string;
  listenPort: string;
  fwmark: string;
}

/** Peer line of `wg show IF dump`. */
export interface DumpPeer {
  publicKey: string;
  presharedKey: string;
  endpoint: string;
  allowedIps: string;
  latestHandshake: number;
  rx: number;
  tx: number;
  keepalive: string;
}

/** Parsed `wg show IF dump`. */
export interface Dump {
  iface: DumpInterface;
  peers: DumpPeer[];
}

/** `wg show IF dump`, parsed. */
export async function dump(ns: string, name: string): Promise<Dump> {
  const text = await wg(ns, ['show', name, 'dump']);
  const lines = text.split('\n').filter((l) => l !== '');
  const [priv, pub, port, fwmark] = lines[0]!.split('\t');
  const peers = lines.slice(1).map((l) => {
    const f = l.split('\t');
    if (f.length !== 8) throw new Error(`unexpected dump peer line: ${JSON.stringify(l)}`);
    return {
      publicKey: f[0]!,
      presharedKey: f[1]!,
      endpoint: f[2]!,
      allowedIps: f[3]!,
      latestHandshake: Number(f[4]),
      rx: Number(f[5]),
      tx: Number(f[6]),
      keepalive: f[7]!,
    };
  });
  return { iface: { privateKey: priv!, publicKey: pub!, listenPort: port!, fwmark: fwmark! }, peers };
}

/** Write a private key / PSK to a 0600 temp file (wg reads keys from files). */
function keyFile(dir: string, name: string, key: string): string {
  const p = join(dir, name);
  writeFileSync(p, key + '\n', { mode: 0o600 });
  return p;
}

/** One side of a configured pair. */
export interface End {
  ns: string;
  daemon: Daemon;
  ifname: string;
  keys: KeyPair;
  port: number;
  outer4: string;
  outer6: string;
  inner4: string;
  inner6: string;
}

/** Two daemons configured as each other's peer. */
export interface Pair {
  a: End;
  b: End;
  psk: string | null;
}

/** Options of {@link configurePair}. */
export interface PairOptions {
  /** Outer address family of the endpoints (default 4). */
  outer?: 4 | 6;
  /** Persistent keepalive on both sides (default none). */
  keepalive?: number;
  /** Use a preshared key (default false). */
  psk?: boolean;
  /** Listen ports (defaults 51820 / 51821). */
  portA?: number;
  portB?: number;
  /** Set the endpoint on A's peer (default true). */
  endpointOnA?: boolean;
  /** Set the endpoint on B's peer (default true). */
  endpointOnB?: boolean;
}

/**
 * Start daemons `implA` in ns A and `implB` in ns B, configure them as each other's peer
 * (mirror configuration) with `wg set`, add tunnel addresses and bring the TUNs up (MTU 1420).
 */
export async function configurePair(t: Topology, implA: Impl, implB: Impl, opts: PairOptions = {}): Promise<Pair> {
  if (t.b === null) throw new Error('configurePair needs a two-namespace topology');
  const outer = opts.outer ?? 4;
  const dir = t.tempDir();
  const [ka, kb] = await Promise.all([genKeyPair(), genKeyPair()]);
  const psk = opts.psk ? await genPsk() : null;
  const da = await startDaemon(t, t.a, implA, ifname(implA === 'tsguard' ? 'tsa' : 'wga'));
  const db = await startDaemon(t, t.b, implB, ifname(implB === 'tsguard' ? 'tsb' : 'wgb'));
  const a: End = { ns: t.a, daemon: da, ifname: da.ifname, keys: ka, port: opts.portA ?? 51820, outer4: OUTER.a4, outer6: OUTER.a6, inner4: INNER.a4, inner6: INNER.a6 };
  const b: End = { ns: t.b, daemon: db, ifname: db.ifname, keys: kb, port: opts.portB ?? 51821, outer4: OUTER.b4, outer6: OUTER.b6, inner4: INNER.b4, inner6: INNER.b6 };
  const pskFile = psk === null ? null : keyFile(dir, 'psk', psk);
  for (const [self, other, withEndpoint] of [
    [a, b, opts.endpointOnA ?? true],
    [b, a, opts.endpointOnB ?? true],
  ] as const) {
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
    ] as const) {
      await wg(self.ns, ['set', self.ifname, 'peer', other.keys.pub, 'persistent-keepalive', String(opts.keepalive)]);
    }
  }
  return { a, b, psk };
}

// ─── traffic ────────────────────────────────────────────────────────────────

/**
 * Wait until something in `ns` listens on UDP `port`. wireguard-go opens its socket only when it
 * processes the link-up event (asynchronously): a first handshake message sent before that hits a
 * closed port, and only the retransmission 5 s later gets through.
 */
export async function waitListening(ns: string, port: number, what: string): Promise<void> {
  await waitFor(`${what} listening on UDP ${port}`, async () => {
    const r = await nsRun(ns, 'ss', ['-Hulnp'], { allowFail: true });
    return new RegExp(`:${port}\\s`).test(r.stdout);
  }, 10_000);
}

/** Parsed ping summary. */
export interface PingResult {
  transmitted: number;
  received: number;
  loss: string;
  output: string;
  code: number | null;
}

/** Parse the summary line of iputils ping. */
export function parsePing(output: string, code: number | null): PingResult {
  const m = /(\d+) packets transmitted, (\d+) received,.*?([\d.]+)% packet loss/.exec(output);
  if (m === null) throw new Error(`no ping summary in output:\n${output}`);
  return { transmitted: Number(m[1]), received: Number(m[2]), loss: m[3]!, output, code };
}

/** Options of {@link ping}. */
export interface PingOptions {
  count?: number;
  /** Seconds between packets. */
  interval?: number;
  /** Overall deadline in seconds (-w). */
  deadline?: number;
  /** Per-reply wait in seconds (-W). */
  wait?: number;
  /** Flood (-f). */
  flood?: boolean;
  /** Payload size (-s). */
  size?: number;
}

/** Ping argument list (without the destination). */
export function pingArgs(dst: string, o: PingOptions = {}): string[] {
  const args = [dst.includes(':') ? '-6' : '-4', '-n', '-q', '-c', String(o.count ?? 3)];
  if (o.flood) args.push('-f');
  else args.push('-i', String(o.interval ?? 0.2));
  if (o.deadline !== undefined) args.push('-w', String(o.deadline));
  if (o.wait !== undefined) args.push('-W', String(o.wait));
  if (o.size !== undefined) args.push('-s', String(o.size));
  args.push(dst);
  return args;
}

/** Ping `dst` from namespace `ns`; never throws on loss (inspect the result). */
export async function ping(ns: string, dst: string, o: PingOptions = {}): Promise<PingResult> {
  const r = await nsRun(ns, 'ping', pingArgs(dst, { deadline: 10, ...o }), { allowFail: true, timeoutMs: 60_000 });
  return parsePing(r.stdout, r.code);
}

/** Result of {@link iperf3}. */
export interface IperfResult {
  bytesSent: number;
  bytesReceived: number;
  seconds: number;
  mbps: number;
}

/**
 * Run an iperf3 TCP test: server (one-off) in `serverNs` bound to `serverAddr`, client in
 * `clientNs`. `reverse` makes the server send.
 */
export async function iperf3(serverNs: string, serverAddr: string, clientNs: string, o: { seconds?: number; reverse?: boolean; port?: number } = {}): Promise<IperfResult> {
  const port = String(o.port ?? 5201);
  const server = nsSpawn(serverNs, 'iperf3', ['-s', '-1', '--forceflush', '-B', serverAddr, '-p', port]);
  const serverDone = collect(server, 60_000);
  try {
    let out = '';
    server.stdout!.on('data', (d: string) => (out += d));
    await waitFor('iperf3 server to listen', () => out.includes('Server listening'), 10_000);
    const args = ['-c', serverAddr, '-p', port, '-t', String(o.seconds ?? 2), '-J', '--connect-timeout', '5000'];
    if (o.reverse) args.push('-R');
    const r = await nsRun(clientNs, 'iperf3', args, { allowFail: true, timeoutMs: 60_000 });
    let j: { error?: string; end?: { sum_sent?: { bytes: number; seconds: number }; sum_received?: { bytes: number; seconds: number; bits_per_second: number } } };
    try {
      j = JSON.parse(r.stdout);
    } catch {
      throw new Error(`iperf3 client printed no JSON (exit ${r.code}): ${r.stdout} ${r.stderr}`);
    }
    if (j.error !== undefined || r.code !== 0) throw new Error(`iperf3 client failed (exit ${r.code}): ${j.error ?? r.stderr}`);
    const sent = j.end?.sum_sent;
    const recv = j.end?.sum_received;
    if (!sent || !recv) throw new Error(`iperf3 JSON without end sums: ${r.stdout.slice(0, 500)}`);
    return { bytesSent: sent.bytes, bytesReceived: recv.bytes, seconds: recv.seconds, mbps: recv.bits_per_second / 1e6 };
  } finally {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGTERM');
    await serverDone.catch(() => undefined);
  }
}

/**
 * Read both dumps until the peer counters are stable over `quietMs` (no datagram in flight),
 * then return them.
 */
export async function stableDumps(x: { ns: string; ifname: string }, y: { ns: string; ifname: string }, quietMs = 300, tries = 20): Promise<[Dump, Dump]> {
  const sig = (d: Dump) => d.peers.map((p) => `${p.publicKey}:${p.rx}:${p.tx}`).join(',');
  let prev: [Dump, Dump] = [await dump(x.ns, x.ifname), await dump(y.ns, y.ifname)];
  for (let i = 0; i < tries; i++) {
    await sleep(quietMs);
    const cur: [Dump, Dump] = [await dump(x.ns, x.ifname), await dump(y.ns, y.ifname)];
    if (sig(cur[0]) === sig(prev[0]) && sig(cur[1]) === sig(prev[1])) return cur;
    prev = cur;
  }
  throw new Error('transfer counters never became stable');
}

// ─── wg-quick style tests ───────────────────────────────────────────────────

/**
 * Everything a wg-quick-like tool may add in namespace `ns`: rules, routes of all tables
 * and (when `withNft`) nft tables — compare before `up` and after `down`.
 */
export async function netState(ns: string, withNft = false): Promise<string> {
  const parts: string[] = [];
  for (const args of [['rule'], ['-6', 'rule'], ['route', 'show', 'table', 'all'], ['-6', 'route', 'show', 'table', 'all']]) {
    parts.push(`# ip ${args.join(' ')}\n${(await run('ip', ['-n', ns, ...args])).stdout}`);
  }
  if (withNft && which('nft') !== null) parts.push(`# nft list tables\n${(await nsRun(ns, 'nft', ['list', 'tables'])).stdout}`);
  return parts.join('\n');
}

/**
 * A wireguard-go peer in namespace B (listen port 51821, tunnel addresses INNER.b4/b6)
 * that accepts `aPub` with A's tunnel addresses.
 */
export async function wireguardGoPeerB(t: Topology, aPub: string): Promise<{ daemon: Daemon; keys: KeyPair }> {
  const keys = await genKeyPair();
  const dir = t.tempDir();
  writeFileSync(join(dir, 'k'), keys.priv + '\n', { mode: 0o600 });
  const daemon = await startDaemon(t, t.b!, 'wireguard-go', `wgq${rand(3)}`);
  await wg(t.b!, ['set', daemon.ifname, 'private-key', join(dir, 'k'), 'listen-port', '51821', 'peer', aPub, 'allowed-ips', `${INNER.a4}/32,${INNER.a6}/128`]);
  await run('ip', ['-n', t.b!, 'addr', 'add', `${INNER.b4}/24`, 'dev', daemon.ifname]);
  await run('ip', ['-n', t.b!, '-6', 'addr', 'add', `${INNER.b6}/64`, 'dev', daemon.ifname, 'nodad']);
  await run('ip', ['-n', t.b!, 'link', 'set', daemon.ifname, 'up', 'mtu', '1420']);
  await waitListening(t.b!, 51821, `wireguard-go ${daemon.ifname}`);
  return { daemon, keys };
}
