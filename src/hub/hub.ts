/**
 * The fleet hub: one WireGuard interface whose peers come from the registry
 * (SQLite or PostgreSQL), the clients file and the fleet API, applied to the
 * live device as per-peer diffs — never down/up — with an in-process relay
 * between peers. Registry calls are asynchronous (the store runs off this
 * thread or over the network): packets never wait for them. Changes arrive
 * through the registry's change log, read when the CLI asks over the control
 * socket, on a PostgreSQL NOTIFY, and by a slow poll.
 * @module
 */

import { existsSync, unlinkSync, unwatchFile, watchFile, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { keyFromBase64, keyToBase64 } from '../crypto/keys.js';
import { getCrypto } from '../crypto/index.js';
import { writeFileAtomic0600 } from '../os/fsutil.js';
import { serveUapi, type DaemonLog } from '../daemon/daemon.js';
import { formatEndpoint, parseEndpoint, type Endpoint } from '../device/types.js';
import type { PeerInfo } from '../device/device.js';
import type { Peer } from '../device/peer.js';
import { Runtime } from '../io/runtime.js';
import { logEnabled, RateLimitedLog, runtimeLog } from '../log/logger.js';
import { logPeerEvents } from '../log/peer-events.js';
import type { LivePeer } from '../metrics/hub-metrics.js';
import { ifnameProblem } from '../os/ifname.js';
import { configureLink } from '../os/link.js';
import { AllowedIpsOverlapError } from '../routing/allowed-ips.js';
import { formatPrefix, parsePrefix } from '../routing/ip.js';
import { parseListenAddress } from '../util/listen-address.js';
import type { UapiServer } from '../uapi/server.js';
import { isLoopback, RegistrationApi } from './api.js';
import { parseClientsFile } from './clients-file.js';
import { FleetApiSource } from './fleet-api.js';
import { Mesh } from './mesh.js';
import { loadOrCreateHubKey, Registry, type HubRecord, type PeerRecord, type RegisterAgentResult } from './registry/index.js';
import { Relay, type PeerKind, type RelayCounters } from './relay.js';
import { loadOrCreateApiTls } from './tls.js';

/** Options of {@link Hub.start} (the flags of `tsguard hub up`). */
export interface HubOptions {
  /** Data directory (SQLite registry, hub key, control socket). */
  dataDir: string;
  /** A `postgresql://` registry shared with other hubs (default: the SQLite file in the data directory). */
  registry?: string;
  /** File holding the PostgreSQL password. */
  registryPasswordFile?: string;
  /** Interface name. */
  ifname: string;
  /** Mesh IPv4 subnet, e.g. 10.100.0.0/24; the hub takes its first host address. */
  subnet: string;
  /** Optional IPv6 mesh prefix. */
  ipv6?: string;
  /** UDP listen port. */
  listenPort: number;
  /** Public `host:port` of the hub, printed into client configurations. */
  endpoint?: string;
  /** Relay device ↔ device traffic. */
  allowDeviceToDevice: boolean;
  /** Clients peers file to watch (`<public_key> <ip> [comment]` lines). */
  clientsFile?: string;
  /** Fleet API source. */
  fleet?: { factory: string; apiUrl: string; tokenFile: string; intervalMs?: number };
  /** Log sink (never receives secrets). */
  log: DaemonLog;
  /**
   * Serve the registration API (`POST /v1/register`) on `listen`
   * (`ADDR:PORT`): HTTPS with the certificate kept in the data directory, or
   * plain HTTP with `insecureHttp` (loopback addresses only).
   */
  api?: { listen: string; insecureHttp?: boolean };
  /** Quarantine of removed peers' addresses, seconds (stored in the registry; omitted = keep the stored value). */
  quarantineSeconds?: number;
  /**
   * Base URL of the registration API listed for agents and other hubs
   * (`--advertise-api`); default: the API's own URL unless it listens on an
   * unspecified address, then the `--endpoint` host with the API port.
   */
  advertiseApi?: string;
  /** Serve `/metrics`, `/healthz` and the status page on `ADDR:PORT` (`--metrics`). */
  metrics?: string;
}

/** What `hub.json` in the data dir records for the CLI (no secrets). */
export interface HubInfo {
  /** Interface name. */
  ifname: string;
  /** Listen port. */
  listenPort: number;
  /** Public endpoint for clients, if given. */
  endpoint?: string;
  /** Mesh subnet. */
  subnet: string;
  /** IPv6 mesh prefix. */
  ipv6?: string;
  /** Base URL of the registration API, when served (`https://ADDR:PORT`). */
  api?: string;
  /** Pin of the API certificate (`sha256:HEX`), when served over HTTPS. */
  apiPin?: string;
}

/** The stored last endpoint of a peer, or undefined when there is none (or it no longer parses). */
function lastEndpoint(r: PeerRecord): Endpoint | undefined {
  if (r.lastEndpoint === null) return undefined;
  try {
    return parseEndpoint(r.lastEndpoint);
  } catch {
    return undefined;
  }
}

/** Path of the control socket of a running hub. */
export function hubControlPath(dataDir: string): string {
  return join(dataDir, 'hub.sock');
}

/** Read `hub.json`, or null before the first `hub up`. */
export function readHubInfo(dataDir: string): HubInfo | null {
  try {
    return JSON.parse(readFileSync(join(dataDir, 'hub.json'), 'utf8')) as HubInfo;
  } catch {
    return null;
  }
}

/** Fallback poll of the change log (the CLI and PostgreSQL NOTIFY trigger a read at once). */
const REGISTRY_POLL_MS = 1000;
/** Peers seen this recently get a handshake from a restarted hub (3 × REJECT_AFTER_TIME: older sessions are dead anyway). */
const RECONNECT_IF_SEEN_WITHIN = 540_000;
const CLIENTS_POLL_MS = 500;
/** One string per kind for the per-peer tables (a record's own `kind` is a fresh copy per row). */
const KINDS: Readonly<Record<PeerKind, PeerKind>> = { device: 'device', client: 'client', agent: 'agent' };

/** A running hub. */
export class Hub {
  readonly runtime: Runtime;
  readonly registry: Registry;
  readonly relay: Relay;
  /** The other hubs of the registry and the home of every peer (see ./mesh.ts). */
  readonly mesh: Mesh;
  /**
   * The managed peers by public key (the device peer's own id string):
   * `sig` is their prefixes as text, IPv4 host address first.
   */
  #managed = new Map<string, { sig: string; kind: PeerKind; name: string }>();
  /** Public key of the managed peers by kind, then name. */
  #byName = new Map<PeerKind, Map<string, string>>();
  /** Change sequence number applied so far. */
  #cursor = 0;
  #syncing: Promise<void> | null = null;
  #syncAgain = false;
  #unlisten: (() => Promise<void>) | null = null;
  /** Registration API requests by result (for the metrics). */
  readonly registrations = new Map<string, number>();
  #metrics: { close(): Promise<void> } | null = null;
  #uapi: UapiServer | null = null;
  #control: net.Server | null = null;
  #api: RegistrationApi | null = null;
  #timers: NodeJS.Timeout[] = [];
  #fleet: FleetApiSource | null = null;
  #apiPin: string | undefined;
  #stopped = false;
  #done: Promise<void>;
  #resolveDone!: () => void;

  private constructor(
    readonly opts: HubOptions,
    registry: Registry,
    runtime: Runtime,
    relay: Relay,
  ) {
    this.registry = registry;
    this.runtime = runtime;
    this.relay = relay;
    this.mesh = new Mesh({
      registry,
      device: runtime.device,
      relay,
      batch: (fn) => runtime.batch(fn),
      self: { publicKey: keyToBase64(runtime.device.publicKey!), endpoint: opts.endpoint ?? null, apiUrl: null, certPin: null },
      log: opts.log,
    });
    this.#done = new Promise((r) => (this.#resolveDone = r));
  }

  /** Open the registry, create the interface, restore every peer, then start serving. */
  static async start(opts: HubOptions): Promise<Hub> {
    // Flags are checked before anything is created.
    const badName = ifnameProblem(opts.ifname);
    if (badName !== null) throw new Error(badName);
    const apiListen = opts.api ? parseListenAddress(opts.api.listen) : null;
    const metricsListen = opts.metrics !== undefined ? parseListenAddress(opts.metrics, '--metrics') : null;
    if (opts.api?.insecureHttp && apiListen && !isLoopback(apiListen.host)) {
      throw new Error(`--api-insecure-http is refused on ${apiListen.host}: enrollment tokens would cross the network in clear text; use a loopback address (127.0.0.1, ::1) or drop it to serve HTTPS`);
    }
    const registry = await Registry.open(opts.dataDir, {
      create: { subnet: opts.subnet, ipv6: opts.ipv6 },
      ...(opts.registry !== undefined ? { url: opts.registry } : {}),
      ...(opts.registryPasswordFile !== undefined ? { passwordFile: opts.registryPasswordFile } : {}),
    });
    let records: PeerRecord[];
    let hubs: HubRecord[];
    let cursor: number;
    try {
      if (opts.quarantineSeconds !== undefined) await registry.setQuarantineSeconds(opts.quarantineSeconds);
      // The cursor is read first: whatever changes while the peers are read is applied again afterwards.
      cursor = await registry.changeSeq();
      records = await registry.listPeers();
      hubs = await registry.listHubs();
    } catch (e) {
      await registry.close();
      throw e;
    }
    let key: Uint8Array;
    try {
      key = loadOrCreateHubKey(opts.dataDir);
    } catch (e) {
      await registry.close();
      throw e;
    }
    let relay: Relay | null = null;
    let hub: Hub | null = null;
    const runtime = Runtime.start({
      ifname: opts.ifname,
      listenPort: opts.listenPort,
      onPacket: (packet, from) => relay!.handle(packet, from),
      onFatal: (err) => hub?.stop(err.code === 'ELINKGONE' ? `interface ${opts.ifname} was deleted` : err.message),
      log: runtimeLog(opts.log),
    });
    // Refused relays are logged at most once per 10 s and source peer.
    const refusals = logEnabled(opts.log, 'verbose') ? new RateLimitedLog(opts.log, 10_000) : null;
    relay = new Relay(runtime.device, { allowDeviceToDevice: opts.allowDeviceToDevice }, (from, to) =>
      refusals?.log(from, 'verbose', () => `relay refused by policy: ${hub?.describePeer(from) ?? from} → ${hub?.describePeer(to) ?? to}`),
    );
    runtime.device.setPrivateKey(key);
    key.fill(0);
    hub = new Hub(opts, registry, runtime, relay);
    hub.#cursor = cursor;
    try {
      // The other hubs first, so that restored peers homed elsewhere go to their hub.
      hub.mesh.start(hubs);
      // Every peer is restored synchronously, before the event loop delivers the first datagram.
      hub.#reconcileWith(records, true);
      hub.#reconnectRecentPeers(records);
      await hub.#configureLink();
      hub.#uapi = await serveUapi(opts.ifname, runtime, opts.log);
      hub.#uapi.onRemoved(() => hub!.stop('UAPI socket removed'));
      hub.#control = await hub.#serveControl();
      if (opts.api && apiListen) {
        const tls = opts.api.insecureHttp ? null : loadOrCreateApiTls(opts.dataDir, [apiListen.host]);
        hub.#api = await RegistrationApi.start({
          registry,
          listen: apiListen,
          tls,
          hubPublicKey: keyToBase64(runtime.device.publicKey!),
          listenPort: runtime.listenPort,
          ...(opts.endpoint !== undefined ? { endpoint: opts.endpoint } : {}),
          // The new peer is live before the agent gets its answer (and sends its first handshake).
          onRegistered: (r) => hub!.#applyRegistered(r),
          hubId: () => hub!.mesh.selfId ?? undefined,
          hubs: () => hub!.mesh.listedHubs(),
          onResult: (result) => hub!.registrations.set(result, (hub!.registrations.get(result) ?? 0) + 1),
          log: opts.log,
        });
        hub.#apiPin = tls?.pin;
      }
      if (hub.#api !== null && apiListen !== null) await hub.mesh.advertise(advertisedApi(opts, hub.#api.url, apiListen), hub.#apiPin ?? null);
      hub.#unlisten = await registry.listen(() => hub!.sync());
      if (metricsListen !== null) {
        const { serveHubMetrics } = await import('../metrics/hub-metrics.js');
        hub.#metrics = await serveHubMetrics(hub, metricsListen, opts.log);
      }
      await writeFileAtomic0600(join(opts.dataDir, 'hub.json'), JSON.stringify(hub.info(), null, 2) + '\n');
      hub.#watch();
    } catch (e) {
      await hub.stop(`start failed: ${(e as Error).message}`);
      throw e;
    }
    runtime.device.events.on('handshake', (e) => {
      // Synchronous: the peer's addresses are here before the packet that completed the handshake is checked.
      hub!.mesh.claim(e.publicKey);
      registry.touchLastSeen(e.publicKey, Date.now(), e.endpoint ? formatEndpoint(e.endpoint) : null).catch((err: Error) => {
        if (!hub!.#stopped) opts.log('error', `registry: cannot record last_seen: ${err.message}`);
      });
    });
    logPeerEvents(runtime.device, opts.log, (pk) => hub.describePeer(pk));
    opts.log('info', `hub ${opts.ifname} up: ${registry.hubAddress} on UDP ${runtime.listenPort}, ${hub.#managed.size} peers restored`);
    return hub;
  }

  /** Static facts for `hub.json`. */
  info(): HubInfo {
    return {
      ifname: this.opts.ifname,
      listenPort: this.runtime.listenPort,
      endpoint: this.opts.endpoint,
      subnet: this.registry.subnet,
      ipv6: this.registry.ipv6Subnet ?? undefined,
      api: this.#api?.url,
      apiPin: this.#apiPin,
    };
  }

  /** The hub's interface name. */
  get ifname(): string {
    return this.opts.ifname;
  }

  /** True once {@link Hub.stop} was called. */
  get stopping(): boolean {
    return this.#stopped;
  }

  /** Every peer configured on the device, from the hub's own view (no registry read). */
  livePeers(): LivePeer[] {
    return [...this.#managed].map(([publicKey, m]) => ({ publicKey, kind: m.kind, name: m.name, address: m.sig.slice(0, m.sig.indexOf('/')) }));
  }

  /** `kind name` of a live peer, for log lines. */
  describePeer(publicKey: string): string | undefined {
    const m = this.#managed.get(publicKey);
    return m === undefined ? undefined : `${m.kind} ${m.name}`;
  }

  /** Resolves when the hub has stopped. */
  get done(): Promise<void> {
    return this.#done;
  }

  /** The hub's addresses, then up (the MTU is the one the runtime gave the new interface). */
  async #configureLink(): Promise<void> {
    const r = this.registry;
    const addresses = [parsePrefix(`${r.hubAddress}/${parsePrefix(r.subnet).bits}`, 'keep')];
    if (r.ipv6Subnet && r.hubAddress6) addresses.push(parsePrefix(`${r.hubAddress6}/${parsePrefix(r.ipv6Subnet).bits}`, 'keep'));
    await configureLink(this.opts.ifname, { addresses });
  }

  /**
   * Make the live device exactly the enabled peers of `records` (every peer of the registry), as a
   * per-peer diff. `quiet`: the restore at start-up (see {@link Hub.#applyPeer}).
   */
  #reconcileWith(records: PeerRecord[], quiet = false): void {
    const enabled = records.filter((r) => r.enabled);
    this.runtime.batch(() => {
      const want = new Set(enabled.map((r) => r.publicKey));
      for (const id of [...this.#managed.keys()]) if (!want.has(id)) this.#removePeer(id);
      // A prefix that moved between two peers is free once its old owner is updated: retry refusals once.
      const refused = enabled.filter((r) => !this.#tryApplyPeer(r, false, quiet));
      for (const r of refused) this.#tryApplyPeer(r, true, quiet);
    });
  }

  /**
   * Apply what changed in the registry since the last call: the peers named
   * by the change log are read one by one (all of them only after a reset of
   * the log). Concurrent calls share one run (and a call during a run causes
   * one more). On a store failure the live peers stay as they are and the
   * next call retries. Resolves when the registry's state at the time of the
   * call is live.
   */
  sync(): Promise<void> {
    if (this.#syncing) {
      this.#syncAgain = true;
      return this.#syncing;
    }
    const run = async () => {
      do {
        this.#syncAgain = false;
        await this.#syncOnce();
      } while (this.#syncAgain && !this.#stopped);
    };
    this.#syncing = run().finally(() => (this.#syncing = null));
    return this.#syncing;
  }

  async #syncOnce(): Promise<void> {
    if (this.#stopped) return;
    try {
      const batch = await this.registry.changesSince(this.#cursor);
      if (batch.reset) {
        const records = await this.registry.listPeers();
        if (this.#stopped) return;
        this.#reconcileWith(records);
      } else {
        const recs: Array<{ kind: PeerKind; name: string; rec: PeerRecord | null }> = [];
        for (const p of batch.peers) recs.push({ kind: p.kind, name: p.name, rec: await this.registry.getPeer(p.kind, p.name) });
        if (this.#stopped) return;
        this.runtime.batch(() => {
          for (const { kind, name, rec } of recs) {
            const old = this.#byName.get(kind)?.get(name);
            if (rec !== null && rec.enabled) {
              if (old !== undefined && old !== rec.publicKey) this.#removePeer(old);
              this.#tryApplyPeer(rec, true);
            } else if (old !== undefined) {
              this.#removePeer(old);
            }
          }
        });
      }
      this.#cursor = batch.seq;
    } catch (e) {
      if (!this.#stopped) this.opts.log('error', `registry unavailable, live peers unchanged: ${(e as Error).message}`);
    }
  }

  /**
   * Make the result of a registration this process answered live, without
   * waiting for the change log (which names it again; applying it then is a
   * no-op).
   */
  #applyRegistered(r: RegisterAgentResult): void {
    this.runtime.batch(() => {
      if (r.previousPublicKey !== undefined && r.previousPublicKey !== r.publicKey) this.#removePeer(r.previousPublicKey);
      if (r.enabled) this.#tryApplyPeer(r, true);
      else this.#removePeer(r.publicKey);
    });
  }

  #removePeer(id: string): void {
    const m = this.#managed.get(id);
    if (m === undefined) return;
    this.runtime.device.removePeer(id);
    this.relay.setKind(id, null);
    this.mesh.forget(id);
    this.#managed.delete(id);
    this.#unname(m.kind, m.name, id);
    this.opts.log('info', `peer removed: ${m.kind} ${m.name} (${id})`);
  }

  /** Forget `kind/name` → `id` (when it still points there). */
  #unname(kind: PeerKind, name: string, id: string): void {
    const names = this.#byName.get(kind);
    if (names?.get(name) === id) names.delete(name);
  }

  /**
   * {@link Hub.#applyPeer}, refusing a prefix another live peer holds (the registry never stores
   * overlaps; this keeps a bad row from silently moving a route). Returns false when refused; the
   * refusal, naming the owner, is logged when `log` is set.
   */
  #tryApplyPeer(r: PeerRecord, log: boolean, quiet = false): boolean {
    try {
      this.#applyPeer(r, quiet);
      return true;
    } catch (e) {
      if (!(e instanceof AllowedIpsOverlapError)) throw e;
      if (log) {
        const id = (e as AllowedIpsOverlapError<Peer>).owner.id;
        const owner = this.#managed.get(id);
        const ownerName = owner ? `${owner.kind}/${owner.name}` : `peer ${id}`;
        this.opts.log(
          'error',
          `peer ${r.kind}/${r.name} not applied: ${formatPrefix(e.attempted)} overlaps ${formatPrefix(e.prefix)} of ${ownerName}; the live peer is unchanged (fix the registry entry)`,
        );
      }
      return false;
    }
  }

  /**
   * Add or update one live peer from its registry record (no-op when nothing changed). Call inside a
   * batch. `quiet` (the restore at start-up) logs each peer at debug level only: the start line counts them.
   */
  #applyPeer(r: PeerRecord, quiet = false): void {
    const device = this.runtime.device;
    const kind = KINDS[r.kind];
    const prefixes = [`${r.ipv4}/32`, ...(r.ipv6 ? [`${r.ipv6}/128`] : []), ...r.routes];
    const sig = prefixes.join(',');
    const cur = this.#managed.get(r.publicKey);
    const parsed = prefixes.map((t) => parsePrefix(t));
    if (cur !== undefined && cur.sig === sig && cur.kind === kind && cur.name === r.name) return this.mesh.placed(r.publicKey, kind, parsed, r.homeHub);
    // Replacing and adding happen in one synchronous step: no packet sees a peer without its addresses.
    // A peer new to this process starts from its last known endpoint, so a restarted hub can
    // initiate towards it at once instead of waiting for the peer to re-handshake.
    // Its prefixes leave the hub peer of its home first, so that the overlap check sees only other peers.
    const reattach = this.mesh.detach(r.publicKey);
    let peer: Peer | undefined;
    try {
      peer = device.setPeer(keyFromBase64(r.publicKey), {
        replaceAllowedIps: true,
        checkOverlap: true,
        allowedIps: parsed,
        ...(cur === undefined && device.getPeer(r.publicKey)?.endpoint == null ? { endpoint: lastEndpoint(r) } : {}),
      });
    } catch (e) {
      reattach();
      throw e;
    }
    // One string per key for every table: the device peer's own id.
    const id = peer?.id ?? r.publicKey;
    this.relay.setKind(id, kind);
    this.mesh.placed(id, kind, parsed, r.homeHub);
    if (cur !== undefined) this.#unname(cur.kind, cur.name, id);
    this.#managed.set(id, { sig, kind, name: r.name });
    let names = this.#byName.get(kind);
    if (names === undefined) this.#byName.set(kind, (names = new Map()));
    names.set(r.name, id);
    if (!quiet || logEnabled(this.opts.log, 'debug')) this.opts.log(quiet ? 'debug' : 'info', `peer ${cur === undefined ? 'added' : 'updated'}: ${kind} ${r.name} ${sig}`);
  }

  /**
   * After a restart, peers that were active recently still hold sessions this
   * process forgot; they would only re-handshake after their own timeouts
   * (≈ 15 s). Start a handshake with each of them at their last endpoint.
   */
  #reconnectRecentPeers(records: PeerRecord[]): void {
    const since = Date.now() - RECONNECT_IF_SEEN_WITHIN;
    let n = 0;
    this.runtime.batch(() => {
      for (const r of records) {
        if (this.mesh.isRemote(r.publicKey)) continue; // it is at another hub now
        if (r.enabled && r.lastEndpoint !== null && (r.lastSeen ?? 0) >= since && this.runtime.device.initiate(r.publicKey)) n++;
      }
    });
    if (n > 0) this.opts.log('info', `re-handshaking with ${n} recently active peer(s) at their last endpoints`);
  }

  #watch(): void {
    const poll = setInterval(() => void this.sync(), REGISTRY_POLL_MS);
    this.#timers.push(poll);

    const file = this.opts.clientsFile;
    if (file !== undefined) {
      const load = () => {
        let text: string;
        try {
          if (!existsSync(file)) {
            // A missing file (deleted, moved, not created yet) never removes peers: empty it to do that.
            this.opts.log('error', `${file} does not exist; client peers from it unchanged (an empty file removes them)`);
            return;
          }
          text = readFileSync(file, 'utf8');
        } catch (e) {
          this.opts.log('error', `${file}: ${(e as Error).message}; client peers unchanged`);
          return;
        }
        const parsed = parseClientsFile(text, file);
        for (const err of parsed.errors) this.opts.log('error', err.message.endsWith('(line skipped)') ? err.message : `${err.message} (line skipped)`);
        void this.#applySource('clients-file', parsed.entries.map((e) => ({ kind: 'client' as const, name: e.name, publicKey: e.publicKey, ip: e.ip, comment: e.comment })));
      };
      load();
      watchFile(file, { interval: CLIENTS_POLL_MS }, load);
    }

    const fleet = this.opts.fleet;
    if (fleet !== undefined) {
      this.#fleet = new FleetApiSource({ ...fleet, log: (m: string) => this.opts.log('error', m) });
      this.#fleet.start((devices) =>
        void this.#applySource(
          'fleet-api',
          devices.map((d) => ({ kind: 'device' as const, name: d.name, publicKey: d.pubkey, ip: d.ip, enabled: d.enabled })),
        ),
      );
    }
  }

  async #applySource(source: 'clients-file' | 'fleet-api', desired: Parameters<Registry['replaceSource']>[1]): Promise<void> {
    try {
      const r = await this.registry.replaceSource(source, desired);
      for (const e of r.errors) this.opts.log('error', `${source}: ${e.name}: ${e.message} (entry skipped)`);
    } catch (e) {
      if (!this.#stopped) this.opts.log('error', `${source}: registry unavailable, live peers unchanged: ${(e as Error).message}`);
      return;
    }
    await this.sync();
  }

  /** Live status of every registered peer, for `hub show`. */
  async status(): Promise<HubStatus> {
    const device = this.runtime.device;
    const records = await this.registry.listPeers();
    return {
      interface: this.opts.ifname,
      publicKey: keyToBase64(device.publicKey!),
      address: this.registry.hubAddress,
      listenPort: this.runtime.listenPort,
      allowDeviceToDevice: this.relay.policy.allowDeviceToDevice,
      hubs: this.mesh.listedHubs().map((h) => {
        const peer = device.getPeer(h.publicKey);
        const live = peer ? device.peerInfo(peer) : null;
        return { ...h, self: h.publicKey === keyToBase64(device.publicKey!), latestHandshake: live?.lastHandshake ? Math.floor(live.lastHandshake / 1000) : 0 };
      }),
      peers: records.map((r) => {
        const peer = device.getPeer(r.publicKey);
        return peerStatus(r, peer ? device.peerInfo(peer) : null, this.relay.counters(r.publicKey));
      }),
    };
  }

  #serveControl(): Promise<net.Server> {
    const path = hubControlPath(this.opts.dataDir);
    if (existsSync(path)) unlinkSync(path);
    // One request line per connection: `sync` (apply the registry's changes, then answer {"ok":true}) or `status`.
    const server = net.createServer((sock) => {
      sock.on('error', () => undefined);
      sock.setEncoding('utf8');
      let buf = '';
      sock.on('data', (d: string) => {
        buf += d;
        const nl = buf.indexOf('\n');
        if (nl < 0) {
          if (buf.length > 64) sock.destroy();
          return;
        }
        const cmd = buf.slice(0, nl).trim();
        sock.removeAllListeners('data');
        const answer = cmd === 'sync' ? this.sync().then(() => ({ ok: true })) : this.status();
        answer.then(
          (v) => sock.end(JSON.stringify(v) + '\n'),
          (e: Error) => sock.end(JSON.stringify({ error: e.message }) + '\n'),
        );
      });
    });
    const old = process.umask(0o077);
    return new Promise<net.Server>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve(server));
    }).finally(() => process.umask(old));
  }

  /** Stop: remove sockets and the interface, close the registry. */
  async stop(reason = 'stopped'): Promise<void> {
    if (this.#stopped) return this.#done;
    this.#stopped = true;
    this.opts.log('info', `hub shutting down: ${reason}`);
    for (const t of this.#timers) clearInterval(t);
    await this.mesh.stop();
    await this.#unlisten?.().catch(() => undefined);
    if (this.opts.clientsFile) unwatchFile(this.opts.clientsFile);
    this.#fleet?.stop();
    await this.#metrics?.close().catch(() => undefined);
    await this.#api?.close().catch(() => undefined);
    await this.#uapi?.close().catch(() => undefined);
    if (this.#control) {
      await new Promise<void>((r) => this.#control!.close(() => r()));
      try {
        unlinkSync(hubControlPath(this.opts.dataDir));
      } catch {
        // gone
      }
    }
    this.runtime.close();
    await this.#syncing?.catch(() => undefined);
    await this.registry.close().catch(() => undefined);
    this.#resolveDone();
  }
}

/** One peer in {@link HubStatus}. */
export interface HubPeerStatus {
  kind: PeerKind;
  name: string;
  address: string;
  address6: string | null;
  routes: string[];
  publicKey: string;
  enabled: boolean;
  source: string;
  endpoint: string | null;
  /** Unix seconds (0 = never). */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  relayed: number;
  refused: number;
  lastSeen: number | null;
  labels: Record<string, string>;
}

/**
 * The status of one registered peer; `live` and `counters` are absent when
 * the hub is not running (then the transfer figures are zero).
 */
export function peerStatus(r: PeerRecord, live: PeerInfo | null = null, counters: RelayCounters = { relayed: 0, refused: 0 }): HubPeerStatus {
  return {
    kind: r.kind,
    name: r.name,
    address: r.ipv4,
    address6: r.ipv6 ?? null,
    routes: r.routes,
    publicKey: r.publicKey,
    enabled: r.enabled,
    source: r.source,
    endpoint: live?.endpoint ? formatEndpoint(live.endpoint) : null,
    latestHandshake: live?.lastHandshake ? Math.floor(live.lastHandshake / 1000) : 0,
    rxBytes: live?.rxBytes ?? 0,
    txBytes: live?.txBytes ?? 0,
    relayed: counters.relayed,
    refused: counters.refused,
    lastSeen: r.lastSeen ?? null,
    labels: r.labels ?? {},
  };
}

/** What `tsguard hub show --json` prints. */
export interface HubStatus {
  interface: string;
  publicKey: string;
  address: string;
  listenPort: number;
  allowDeviceToDevice: boolean;
  /** The live hubs of the registry this hub lists (itself first when it has an endpoint). */
  hubs?: Array<HubRecord & { self: boolean; latestHandshake: number }>;
  peers: HubPeerStatus[];
}

/** The API URL a hub lists (see {@link HubOptions.advertiseApi}). */
function advertisedApi(opts: HubOptions, url: string, listen: { host: string; port: number }): string | null {
  if (opts.advertiseApi !== undefined) return opts.advertiseApi;
  if (listen.host !== '0.0.0.0' && listen.host !== '::') return url;
  if (opts.endpoint === undefined) return null;
  const host = opts.endpoint.replace(/:\d+$/, '');
  return `${url.startsWith('https') ? 'https' : 'http'}://${host}:${new URL(url).port}`;
}

/** The hub's public key from its key file (for `hub pubkey` and client configs). */
export function hubPublicKey(dataDir: string): string {
  const key = loadOrCreateHubKey(dataDir);
  const pub = keyToBase64(getCrypto().publicKey(key));
  key.fill(0);
  return pub;
}
