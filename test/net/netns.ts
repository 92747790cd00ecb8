/**
 * Helpers for tests that run real daemons (tsguard-wg, wireguard-go) in network namespaces: the
 * topology, daemon and traffic helpers of bench/lib/netns.mjs (one implementation for the tests
 * and the benchmark, typed by netns.d.mts, with the process helpers of proc.mjs), plus the
 * test-only prerequisites check, `wg show dump` parsing, ping summaries and state snapshots.
 * All traffic stays inside the namespaces these helpers create.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nsRun, run, sleep, which, genKeyPair, INNER, rand, startDaemon, waitListening, wg, type Daemon, type KeyPair, type Topology } from '../../bench/lib/netns.mjs';

export * from '../../bench/lib/netns.mjs';

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

// ─── wg ─────────────────────────────────────────────────────────────────────

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

// ─── traffic ────────────────────────────────────────────────────────────────

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
