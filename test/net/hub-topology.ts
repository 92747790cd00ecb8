/**
 * Star topology for the fleet-hub tests: a tsguard hub in namespace H and
 * wireguard-go peers, each in a namespace of its own joined to H by its own veth pair.
 *
 *   ns H  (hub)  h<i> 192.168.(60+i).1/24  <──veth──>  ns P<i>: v 192.168.(60+i).2/24
 *
 * Each peer namespace routes the whole mesh subnet to its wireguard-go interface (its
 * assigned address with the subnet's prefix length), so everything goes through the hub.
 *
 * Teardown: SIGTERM every process in every namespace (hub, wireguard-go, fake API),
 * remove leftover UAPI sockets, delete the namespaces, remove the temp directory.
 */
import { type ChildProcess } from 'node:child_process';
import { expect } from 'vitest';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HubStatus } from '../../src/hub/hub.js';
import { postgresBin, TestPostgres } from '../helpers/postgres.js';
import {
  ROOT,
  SOCKET_DIR,
  dump,
  genKeyPair,
  nsPids,
  nsRun,
  nsSpawn,
  ping,
  rand,
  run,
  sleep,
  terminate,
  waitFor,
  wg,
  type Dump,
  type KeyPair,
  type RunResult,
} from './netns.js';

/** The compiled CLI. */
export const TSGUARD = join(ROOT, 'dist/cli/tsguard.js');

/** A wireguard-go peer of the hub. */
export interface HubPeer {
  /** Registry name. */
  name: string;
  /** Namespace. */
  ns: string;
  /** Its wireguard-go interface. */
  ifname: string;
  /** Its keys. */
  keys: KeyPair;
  /** Mesh address assigned by the hub. */
  ip: string;
}

/** A running `tsguard hub up`. */
export interface HubProcess {
  child: ChildProcess;
  pid: number;
  /** Everything the hub wrote to stderr so far (live). */
  log: () => string;
  /** Resolves with the exit status. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const live = new Set<HubTopology>();

/** `tsguard hub ARGS` from the test process (never throws on a non-zero exit). */
export function hubCli(args: string[]): Promise<RunResult> {
  return run(process.execPath, [TSGUARD, 'hub', ...args], { allowFail: true, timeoutMs: 20_000 });
}

/** Like {@link hubCli} but throws unless the command succeeds; resolves with its stdout. */
export async function hubCliOk(args: string[]): Promise<string> {
  const r = await hubCli(args);
  if (r.code !== 0) throw new Error(`tsguard hub ${args.join(' ')}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

/**
 * Spawn `tsguard hub up ARGS` in `ns` (output collected) and wait until it says it is up and
 * `wg show IFNAME` answers.
 */
export async function spawnHub(ns: string, ifname: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<HubProcess> {
  const child = nsSpawn(ns, process.execPath, [TSGUARD, 'hub', 'up', ...args], { ...process.env, ...env });
  let log = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (log += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  let gone = false;
  void exited.then(() => (gone = true));
  const hub: HubProcess = { child, pid: child.pid!, log: () => log, exited };
  await waitFor(
    `the hub ${ifname} to come up`,
    async () => {
      if (gone) throw new Error(`hub exited during start:\n${log}`);
      if (!/hub \S+ up:/.test(log)) return false;
      const r = await nsRun(ns, 'wg', ['show', ifname, 'public-key'], { allowFail: true, timeoutMs: 5000 });
      return r.code === 0;
    },
    20_000,
    100,
  );
  return hub;
}

/** Send `signal` to a hub and wait (10 s) for it to exit. */
export async function stopHubProcess(h: HubProcess, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (h.child.exitCode === null && h.child.signalCode === null) h.child.kill(signal);
  const res = await Promise.race([h.exited, sleep(10_000).then(() => null)]);
  if (res === null) {
    h.child.kill('SIGKILL');
    throw new Error(`hub ignored ${signal} for 10 s; log:\n${h.log()}`);
  }
  return res;
}

/** Public key → allowed IPs (sorted, comma-joined) of the live interface `ifname` in `ns`. */
export async function liveAllowedIps(ns: string, ifname: string): Promise<Map<string, string>> {
  const d = await dump(ns, ifname);
  return new Map(d.peers.map((p) => [p.publicKey, p.allowedIps.split(',').filter((s) => s !== '(none)' && s !== '').sort().join(',')]));
}

/**
 * wireguard-go `ifname` in `ns` with `keys` and mesh address `ip/prefixLen`, one peer: the hub
 * (allowed-ips: the whole subnet, keepalive 25 s). Call only after the hub lists the key, or the
 * first initiation is dropped.
 */
async function startWireguardGo(
  ns: string,
  ifname: string,
  keyFile: string,
  keys: KeyPair,
  hub: { publicKey: string; endpoint: string; subnet: string },
  ip: string,
): Promise<void> {
  await nsRun(ns, 'wireguard-go', [ifname], { timeoutMs: 20_000 });
  if (!existsSync(`${SOCKET_DIR}/${ifname}.sock`)) throw new Error(`wireguard-go ${ifname}: no UAPI socket`);
  writeFileSync(keyFile, keys.priv + '\n', { mode: 0o600 });
  await wg(ns, ['set', ifname, 'private-key', keyFile, 'peer', hub.publicKey, 'allowed-ips', hub.subnet, 'endpoint', hub.endpoint, 'persistent-keepalive', '25']);
  await run('ip', ['-n', ns, 'addr', 'add', `${ip}/${hub.subnet.split('/')[1]}`, 'dev', ifname]);
  await run('ip', ['-n', ns, 'link', 'set', ifname, 'up', 'mtu', '1420']);
}

/** Ping once a second until one is answered; returns the ms it took. */
export async function pingUntil(ns: string, dst: string, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const r = await nsRun(ns, 'ping', ['-n', '-q', '-c', '1', '-W', '1', dst], { allowFail: true, timeoutMs: 10_000 });
    if (r.code === 0) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`no reply from ${dst} in ${ns} within ${timeoutMs} ms:\n${r.stdout}`);
  }
}

/** Three pings from `ns` to `dst` must be answered. */
export async function expectPings(ns: string, dst: string, what: string): Promise<void> {
  const r = await ping(ns, dst, { count: 3, interval: 0.1, deadline: 10 });
  expect(r.received, `${what}:\n${r.output}`).toBeGreaterThanOrEqual(3);
}

/** Three pings from `ns` to `dst` must all go unanswered. */
export async function expectNoPings(ns: string, dst: string, what: string): Promise<void> {
  const r = await ping(ns, dst, { count: 3, interval: 0.2, deadline: 3, wait: 1 });
  expect(r.received, `${what}:\n${r.output}`).toBe(0);
}

/** Hub namespace plus `n` peer namespaces, each joined to the hub by a veth pair. */
export class HubTopology {
  readonly tag = rand(3);
  readonly hubNs = `tsgH-${this.tag}`;
  readonly peerNs: string[] = [];
  /** Temp directory (data dir, clients file, keys...), removed at teardown. */
  readonly tmp = mkdtempSync(join(tmpdir(), 'tsguard-hub-test-'));
  readonly dataDir = join(this.tmp, 'data');
  readonly hubIf = `hub${this.tag}`;
  readonly port = 51820;
  /** UAPI interface names to clean up. */
  readonly ifnames = new Set<string>([this.hubIf]);
  hub: HubProcess | null = null;
  #hubPub: string | null = null;
  #down = false;

  private constructor(
    readonly subnet: string,
    peers: number,
  ) {
    for (let i = 1; i <= peers; i++) this.peerNs.push(`tsgP${i}-${this.tag}`);
  }

  /** The hub's mesh address (first host of the subnet). */
  get hubIp(): string {
    const [a, b, c, d] = this.subnet.split('/')[0]!.split('.').map(Number);
    return `${a}.${b}.${c}.${d! + 1}`;
  }

  get prefixLen(): string {
    return this.subnet.split('/')[1]!;
  }

  get namespaces(): string[] {
    return [this.hubNs, ...this.peerNs];
  }

  /** Outer address of the hub as seen from peer namespace `i` (1-based). */
  hubOuter(i: number): string {
    return `192.168.${60 + i}.1`;
  }

  static async create(opts: { peers: number; subnet: string }): Promise<HubTopology> {
    if (!existsSync(TSGUARD)) throw new Error(`${TSGUARD} is missing: run "npx tsc -p tsconfig.json" first`);
    const t = new HubTopology(opts.subnet, opts.peers);
    live.add(t);
    try {
      for (const ns of t.namespaces) {
        await run('ip', ['netns', 'add', ns]);
        await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      }
      for (let i = 1; i <= opts.peers; i++) {
        const ns = t.peerNs[i - 1]!;
        const h = `h${i}`;
        await run('ip', ['link', 'add', h, 'netns', t.hubNs, 'type', 'veth', 'peer', 'name', 'v', 'netns', ns]);
        await run('ip', ['-n', t.hubNs, 'addr', 'add', `${t.hubOuter(i)}/24`, 'dev', h]);
        await run('ip', ['-n', ns, 'addr', 'add', `192.168.${60 + i}.2/24`, 'dev', 'v']);
        await run('ip', ['-n', t.hubNs, 'link', 'set', h, 'up']);
        await run('ip', ['-n', ns, 'link', 'set', 'v', 'up']);
      }
      await Promise.all(
        t.peerNs.map((ns, k) => nsRun(ns, 'ping', ['-c', '1', '-W', '5', t.hubOuter(k + 1)], { timeoutMs: 10_000 })),
      );
    } catch (e) {
      await t.teardown();
      throw e;
    }
    return t;
  }

  /** A path in the temp directory. */
  path(name: string): string {
    return join(this.tmp, name);
  }

  /** Write a file atomically (temp file + rename), as an editor or config tool would. */
  writeAtomic(path: string, text: string, mode = 0o644): void {
    const tmp = `${path}.tmp-${rand(3)}`;
    writeFileSync(tmp, text, { mode });
    renameSync(tmp, path);
  }

  // ─── the hub ──────────────────────────────────────────────────────────────

  /** `tsguard hub ARGS --data-dir DIR` (from the test process; never throws on a non-zero exit). */
  cli(args: string[]): Promise<RunResult> {
    return hubCli([...args, '--data-dir', this.dataDir]);
  }

  /** Like {@link cli} but throws unless the command succeeds. */
  cliOk(args: string[]): Promise<string> {
    return hubCliOk([...args, '--data-dir', this.dataDir]);
  }

  /** `hub pubkey` (cached). */
  async hubPublicKey(): Promise<string> {
    this.#hubPub ??= (await this.cliOk(['pubkey'])).trim();
    return this.#hubPub;
  }

  /** `hub show --json`, parsed. */
  async show(): Promise<HubStatus> {
    return JSON.parse(await this.cliOk(['show', '--json'])) as HubStatus;
  }

  /** The configuration part of `hub show --json` (no live counters), sorted. */
  async peersConfig(): Promise<Array<Pick<HubStatus['peers'][number], 'kind' | 'name' | 'address' | 'address6' | 'routes' | 'publicKey' | 'enabled' | 'source'>>> {
    const s = await this.show();
    return s.peers
      .map(({ kind, name, address, address6, routes, publicKey, enabled, source }) => ({ kind, name, address, address6, routes, publicKey, enabled, source }))
      .sort((a, b) => `${a.kind}/${a.name}`.localeCompare(`${b.kind}/${b.name}`));
  }

  /**
   * Start `tsguard hub up` in H (foreground; logs collected) and wait until its UAPI and
   * control sockets answer.
   */
  async startHub(extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<HubProcess> {
    if (this.hub !== null && this.hub.child.exitCode === null && this.hub.child.signalCode === null) throw new Error('hub already running');
    const args = [
      '--data-dir', this.dataDir, '--interface', this.hubIf, '--subnet', this.subnet,
      '--listen-port', String(this.port), '--endpoint', `${this.hubOuter(1)}:${this.port}`, ...extra,
    ];
    this.hub = await spawnHub(this.hubNs, this.hubIf, args, env);
    return this.hub;
  }

  /** SIGTERM the hub and wait for it to exit. */
  stopHub(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.hub === null) throw new Error('no hub');
    return stopHubProcess(this.hub);
  }

  /** `wg show HUBIF dump`, parsed. */
  hubDump(): Promise<Dump> {
    return dump(this.hubNs, this.hubIf);
  }

  /** Public key → allowed IPs (sorted, comma-joined) of the live hub interface. */
  hubAllowedIps(): Promise<Map<string, string>> {
    return liveAllowedIps(this.hubNs, this.hubIf);
  }

  /** Wait until `check(allowedIps)` holds; returns the elapsed ms. */
  async waitHub(what: string, check: (m: Map<string, string>) => boolean, timeoutMs = 3000): Promise<number> {
    const t0 = Date.now();
    await waitFor(what, async () => check(await this.hubAllowedIps()), timeoutMs, 25);
    return Date.now() - t0;
  }

  // ─── wireguard-go peers ───────────────────────────────────────────────────

  /**
   * Start wireguard-go in peer namespace `i` (1-based) with `keys` and mesh address `ip`,
   * peer = the hub (allowed-ips: the whole subnet, keepalive 25 s). Call only after the hub
   * lists the key (`wg show HUBIF`), or the first initiation is dropped.
   */
  async startPeer(i: number, name: string, keys: KeyPair, ip: string, opts: { endpoint?: string } = {}): Promise<HubPeer> {
    const ns = this.peerNs[i - 1]!;
    const ifname = `wg${i}${this.tag}`;
    this.ifnames.add(ifname);
    const hub = { publicKey: await this.hubPublicKey(), endpoint: opts.endpoint ?? `${this.hubOuter(i)}:${this.port}`, subnet: this.subnet };
    await startWireguardGo(ns, ifname, this.path(`${ifname}.key`), keys, hub, ip);
    return { name, ns, ifname, keys, ip };
  }

  /** Stop the wireguard-go of a peer (its interface goes away). */
  async stopPeer(p: HubPeer): Promise<void> {
    const pids = await nsPids(p.ns);
    await terminate(pids);
    try {
      unlinkSync(`${SOCKET_DIR}/${p.ifname}.sock`);
    } catch {
      // gone
    }
  }

  /** Wait until the hub has a handshake with `pub`. */
  async waitHandshake(pub: string, timeoutMs = 10_000): Promise<void> {
    await waitFor(
      `a handshake between the hub and ${pub}`,
      async () => (await this.hubDump()).peers.some((p) => p.publicKey === pub && p.latestHandshake > 0),
      timeoutMs,
      50,
    );
  }

  /** Generate a key pair. */
  keys(): Promise<KeyPair> {
    return genKeyPair();
  }

  // ─── teardown ─────────────────────────────────────────────────────────────

  async teardown(): Promise<void> {
    if (this.#down) return;
    this.#down = true;
    live.delete(this);
    for (const ns of this.namespaces) await terminate(await nsPids(ns));
    if (this.hub !== null && this.hub.child.exitCode === null && this.hub.child.signalCode === null) this.hub.child.kill('SIGKILL');
    for (const n of this.ifnames) {
      try {
        unlinkSync(`${SOCKET_DIR}/${n}.sock`);
      } catch {
        // gone (normal)
      }
    }
    for (const ns of this.namespaces) await run('ip', ['netns', 'del', ns], { allowFail: true });
    rmSync(this.tmp, { recursive: true, force: true });
  }
}

/** Tear down every hub topology still alive (afterAll safety net). */
export async function teardownHubTopologies(): Promise<void> {
  for (const t of [...live]) await t.teardown();
}

/** Parse `device NAME: IP` / `client NAME: IP`. */
export function parseAdded(stdout: string): string {
  const m = /^(?:device|client) \S+: (\d+\.\d+\.\d+\.\d+)/m.exec(stdout);
  if (m === null) throw new Error(`no "NAME: IP" line in ${JSON.stringify(stdout)}`);
  return m[1]!;
}

/**
 * The fake fleet API (run in the hub's namespace with
 * `node fake-api.mjs PORT DATA_FILE MODE_FILE LOG_FILE`): answers every GET with DATA_FILE
 * (re-read each time), or 500 / a request that never gets an answer / invalid JSON when
 * MODE_FILE says `500` / `hang` / `badjson`. Leaving `hang` mode destroys the hanging
 * connections. Every request is appended to LOG_FILE as one JSON line.
 */
export const FAKE_API_SCRIPT = `
import http from 'node:http';
import fs from 'node:fs';
const [port, dataFile, modeFile, logFile] = process.argv.slice(2);
const mode = () => { try { return fs.readFileSync(modeFile, 'utf8').trim() || 'ok'; } catch { return 'ok'; } };
const hanging = new Set();
const server = http.createServer((req, res) => {
  const m = mode();
  fs.appendFileSync(logFile, JSON.stringify({ t: Date.now(), method: req.method, url: req.url, token: req.headers['osf-token'] ?? null, mode: m }) + '\\n');
  if (m === '500') { res.writeHead(500, { 'content-type': 'text/plain' }); res.end('fake internal error'); return; }
  if (m === 'hang') { hanging.add(req.socket); req.socket.on('close', () => hanging.delete(req.socket)); return; }
  if (m === 'badjson') { res.writeHead(200, { 'content-type': 'application/json' }); res.end('[{"name": '); return; }
  const body = fs.readFileSync(dataFile, 'utf8');
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(body);
});
setInterval(() => { if (mode() !== 'hang') for (const s of hanging) s.destroy(); }, 100);
process.on('SIGTERM', () => process.exit(0));
server.listen(Number(port), '127.0.0.1', () => console.log('listening on ' + port));
`;

// ─── several hubs on one registry ───────────────────────────────────────────

/** One hub of a {@link MeshTopology}. */
export interface MeshHub {
  /** 1-based index. */
  k: number;
  ns: string;
  ifname: string;
  dataDir: string;
  /** Outer (LAN) address. */
  outer: string;
  /** UDP endpoint `outer:port`. */
  endpoint: string;
  /** Base URL of its registration API. */
  apiUrl: string;
  proc: HubProcess | null;
}

/**
 * Hubs and peers on one LAN: a bridge in namespace L, every hub and every peer
 * in a namespace of its own with a veth into the bridge (192.168.90.k for hub
 * k, 192.168.90.(100+i) for peer i). Every hub has its own data directory
 * (key, certificate, sockets); they share one registry: the PostgreSQL
 * database `registry` when given (every hub and CLI command gets
 * `--registry URL`), else the first hub's SQLite file (a link to it in the
 * other data directories).
 */
export class MeshTopology {
  readonly tag = rand(3);
  readonly lanNs = `tsgL-${this.tag}`;
  readonly tmp = mkdtempSync(join(tmpdir(), 'tsguard-mesh-test-'));
  readonly hubs: MeshHub[] = [];
  readonly peerNs: string[] = [];
  readonly ifnames = new Set<string>();
  readonly port = 51820;
  readonly apiPort = 8443;
  #down = false;

  private constructor(
    readonly subnet: string,
    hubs: number,
    peers: number,
    readonly registry: string | null,
  ) {
    for (let k = 1; k <= hubs; k++) {
      const ifname = `mh${k}${this.tag}`;
      this.ifnames.add(ifname);
      const outer = `192.168.90.${k}`;
      this.hubs.push({ k, ns: `tsgH${k}-${this.tag}`, ifname, dataDir: join(this.tmp, `hub${k}`), outer, endpoint: `${outer}:${this.port}`, apiUrl: `https://${outer}:${this.apiPort}`, proc: null });
    }
    for (let i = 1; i <= peers; i++) this.peerNs.push(`tsgP${i}-${this.tag}`);
  }

  get namespaces(): string[] {
    return [this.lanNs, ...this.hubs.map((h) => h.ns), ...this.peerNs];
  }

  get prefixLen(): string {
    return this.subnet.split('/')[1]!;
  }

  /** Outer address of peer `i` (1-based). */
  peerOuter(i: number): string {
    return `192.168.90.${100 + i}`;
  }

  static async create(opts: { hubs: number; peers: number; subnet: string; registry?: string | null }): Promise<MeshTopology> {
    if (!existsSync(TSGUARD)) throw new Error(`${TSGUARD} is missing: run "npx tsc -p tsconfig.json" first`);
    const t = new MeshTopology(opts.subnet, opts.hubs, opts.peers, opts.registry ?? null);
    liveMeshes.add(t);
    try {
      for (const ns of t.namespaces) {
        await run('ip', ['netns', 'add', ns]);
        await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      }
      await run('ip', ['-n', t.lanNs, 'link', 'add', 'br0', 'type', 'bridge']);
      await run('ip', ['-n', t.lanNs, 'link', 'set', 'br0', 'up']);
      const attach = async (ns: string, port: string, addr: string) => {
        await run('ip', ['link', 'add', 'e', 'netns', ns, 'type', 'veth', 'peer', 'name', port, 'netns', t.lanNs]);
        await run('ip', ['-n', t.lanNs, 'link', 'set', port, 'master', 'br0', 'up']);
        await run('ip', ['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'e']);
        await run('ip', ['-n', ns, 'link', 'set', 'e', 'up']);
      };
      for (const h of t.hubs) await attach(h.ns, `h${h.k}`, h.outer);
      for (let i = 1; i <= opts.peers; i++) await attach(t.peerNs[i - 1]!, `p${i}`, t.peerOuter(i));
      await Promise.all(t.peerNs.map((ns) => nsRun(ns, 'ping', ['-c', '1', '-W', '5', t.hubs[0]!.outer], { timeoutMs: 10_000 })));
    } catch (e) {
      await t.teardown();
      throw e;
    }
    return t;
  }

  /** A path in the temp directory. */
  path(name: string): string {
    return join(this.tmp, name);
  }

  /** `tsguard hub ARGS --data-dir DIR-of-hub-k` (never throws on a non-zero exit). */
  cli(k: number, args: string[]): Promise<RunResult> {
    return hubCli([...args, '--data-dir', this.hubs[k - 1]!.dataDir, ...this.#registryArgs()]);
  }

  /** Like {@link cli} but throws unless the command succeeds. */
  cliOk(k: number, args: string[]): Promise<string> {
    return hubCliOk([...args, '--data-dir', this.hubs[k - 1]!.dataDir, ...this.#registryArgs()]);
  }

  /** `hub show --json` of hub k. */
  async show(k: number): Promise<HubStatus> {
    return JSON.parse(await this.cliOk(k, ['show', '--json'])) as HubStatus;
  }

  /** `hub pubkey` of hub k. */
  async hubPublicKey(k: number): Promise<string> {
    return (await this.cliOk(k, ['pubkey'])).trim();
  }

  #registryArgs(): string[] {
    return this.registry !== null ? ['--registry', this.registry] : [];
  }

  /**
   * Start hub k (`--endpoint`, `--api` on its LAN address). On SQLite, hubs after
   * the first share the first hub's file (a link to it), so start hub 1 first.
   */
  async startHub(k: number, extra: string[] = []): Promise<HubProcess> {
    const h = this.hubs[k - 1]!;
    if (k > 1 && this.registry === null) {
      mkdirSync(h.dataDir, { recursive: true, mode: 0o700 });
      const link = join(h.dataDir, 'registry.sqlite');
      if (!existsSync(link)) symlinkSync(join(this.hubs[0]!.dataDir, 'registry.sqlite'), link);
    }
    const args = [
      '--data-dir', h.dataDir, '--interface', h.ifname, '--subnet', this.subnet, '--listen-port', String(this.port),
      '--endpoint', h.endpoint, '--api', `${h.outer}:${this.apiPort}`, ...this.#registryArgs(), ...extra,
    ];
    h.proc = await spawnHub(h.ns, h.ifname, args);
    return h.proc;
  }

  /** Stop hub k: SIGTERM (clean) or SIGKILL (a crash). */
  async stopHub(k: number, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const p = this.hubs[k - 1]!.proc;
    if (p !== null) await stopHubProcess(p, signal);
  }

  /** Wait until every running hub lists every other running hub with a handshake. */
  async waitMeshed(ks: number[], timeoutMs = 15_000): Promise<void> {
    const keys = await Promise.all(ks.map((k) => this.hubPublicKey(k)));
    let last = '';
    await waitFor(
      `hubs ${ks.join(', ')} to peer with each other`,
      async () => {
        for (const k of ks) {
          const hubs = (await this.show(k)).hubs ?? [];
          last = `hub ${k}: ${JSON.stringify(hubs)}`;
          for (const key of keys) {
            const h = hubs.find((x) => x.publicKey === key);
            if (h === undefined || (!h.self && h.latestHandshake === 0)) return false;
          }
        }
        return true;
      },
      timeoutMs,
      200,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; last seen: ${last}`);
    });
  }

  /** Enrollment token created through hub k; returns the token and the pin of hub k's API. */
  async token(k: number, uses = 10): Promise<{ token: string; pin: string }> {
    const j = JSON.parse(await this.cliOk(k, ['token', 'create', '--uses', String(uses), '--json'])) as { token: string; caHash?: string; ca_hash?: string; pin?: string };
    const pin = j.caHash ?? j.ca_hash ?? j.pin;
    if (pin === undefined) throw new Error(`token create --json: no pin in ${JSON.stringify(j)}`);
    return { token: j.token, pin };
  }

  /** wireguard-go in peer namespace i with its hub peer = hub k. */
  async startWgPeer(i: number, k: number, keys: KeyPair, ip: string): Promise<HubPeer> {
    const ns = this.peerNs[i - 1]!;
    const ifname = `mw${i}${this.tag}`;
    this.ifnames.add(ifname);
    const hub = { publicKey: await this.hubPublicKey(k), endpoint: this.hubs[k - 1]!.endpoint, subnet: this.subnet };
    await startWireguardGo(ns, ifname, this.path(`${ifname}.key`), keys, hub, ip);
    return { name: ifname, ns, ifname, keys, ip };
  }

  /** Public key → allowed IPs of hub k's live interface. */
  hubAllowedIps(k: number): Promise<Map<string, string>> {
    const h = this.hubs[k - 1]!;
    return liveAllowedIps(h.ns, h.ifname);
  }

  async teardown(): Promise<void> {
    if (this.#down) return;
    this.#down = true;
    liveMeshes.delete(this);
    for (const ns of this.namespaces) await terminate(await nsPids(ns));
    for (const h of this.hubs) if (h.proc !== null && h.proc.child.exitCode === null && h.proc.child.signalCode === null) h.proc.child.kill('SIGKILL');
    for (const n of this.ifnames) {
      try {
        unlinkSync(`${SOCKET_DIR}/${n}.sock`);
      } catch {
        // gone (normal)
      }
    }
    for (const ns of this.namespaces) await run('ip', ['netns', 'del', ns], { allowFail: true });
    rmSync(this.tmp, { recursive: true, force: true });
  }
}

const liveMeshes = new Set<MeshTopology>();

/**
 * Tear down every mesh topology still alive and the PostgreSQL server, if any (afterAll);
 * with HUB_TEST_LOG set, print every hub's output first.
 */
export async function teardownMeshTopologies(pg: TestPostgres | null = null): Promise<void> {
  for (const t of [...liveMeshes]) {
    if (process.env.HUB_TEST_LOG) for (const h of t.hubs) console.log(`--- hub ${h.k}\n${h.proc?.log() ?? '(not started)'}`);
    await t.teardown();
  }
  await pg?.destroy();
}

/**
 * The shared registry of a mesh test: a new database on a real PostgreSQL server the test
 * starts (test/helpers/postgres.ts; call `server.destroy()` in afterAll), or, without the
 * server binaries and outside CI, the first hub's SQLite file (said in a message).
 */
export async function meshRegistry(file: string): Promise<{ url: string | null; server: TestPostgres | null }> {
  if (postgresBin() === null) {
    if (process.env.CI === 'true') throw new Error(`[${file}] PostgreSQL server binaries not found (install Debian's "postgresql"); CI must run the multi-hub tests on PostgreSQL`);
    console.warn(`[${file}] PostgreSQL not installed: the hubs share an SQLite registry instead`);
    return { url: null, server: null };
  }
  const server = await TestPostgres.start();
  return { url: await server.newDatabase('mesh'), server };
}
