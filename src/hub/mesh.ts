/**
 * Several hubs on one shared registry.
 *
 * - **Hubs list themselves.** Each hub has its own key and endpoint and keeps
 *   its row in the registry's `hubs` table fresh with a heartbeat
 *   (`Registry.announceHub` every {@link HUB_HEARTBEAT_MS}). Every hub makes
 *   every other listed hub that has an endpoint and a heartbeat younger than
 *   {@link HUB_STALE_MS} a WireGuard peer of kind `hub`.
 * - **One home hub per peer** (`peers.home_hub`). Every hub configures every
 *   fleet peer of the registry (so that any of them can take it over), but a
 *   peer's addresses (its AllowedIPs) sit on one hub only: its home. On the
 *   other hubs they are AllowedIPs of the hub peer of that home. A peer with
 *   no home, or whose home is not a live hub, is served locally everywhere.
 *   A handshake with a hub makes that hub the home: the addresses move to the
 *   local peer synchronously (before the packet that completed the handshake
 *   is checked against them) and the claim is written with
 *   `Registry.setHomeHub`; the registry's change log brings it to every other
 *   hub, which applies it as a move of that peer's prefixes
 *   ({@link Mesh.placed}). A registration through a hub's API makes it the
 *   home in the same transaction.
 * - **Relay across hubs** happens in-process in `./relay.ts`: a packet for an
 *   address homed elsewhere matches the hub peer of its home and is
 *   re-encrypted to it; the policy is applied to the kinds of the origin and
 *   final destination, which {@link Mesh} knows for every address of the
 *   fleet. No ip_forward.
 * - **Store outage.** Nothing here waits for the store: a failed heartbeat or
 *   home claim is retried on the next tick; the live peers stay as they are.
 * @module
 */

import { keyFromBase64 } from '../crypto/keys.js';
import type { Device } from '../device/device.js';
import { resolveEndpoint } from '../os/resolve.js';
import { parseEndpoint, type Endpoint } from '../device/types.js';
import { AllowedIps } from '../routing/allowed-ips.js';
import { formatPrefix, parsePrefix, type Prefix } from '../routing/ip.js';
import type { HubRecord, Registry } from './registry/index.js';
import type { AddressKinds, PeerKind, Relay } from './relay.js';

/** Heartbeat of this hub's row and re-read of the hub list. */
export const HUB_HEARTBEAT_MS = 2000;
/** A hub whose heartbeat is older than this is dropped as a peer and not listed to agents. */
export const HUB_STALE_MS = 60_000;
/** Persistent keepalive between hubs, seconds (keeps NAT mappings and sessions fresh). */
export const HUB_KEEPALIVE = 10;

/** What this hub advertises about itself. */
export interface MeshSelf {
  /** The hub's public key, base64. */
  publicKey: string;
  /** Public UDP endpoint `host:port`; without it the other hubs cannot peer with this one. */
  endpoint: string | null;
  /** Base URL of its registration API. */
  apiUrl: string | null;
  /** Pin of its API certificate. */
  certPin: string | null;
}

/** The part of the registry the mesh uses. */
export type MeshRegistry = Pick<Registry, 'announceHub' | 'listHubs' | 'setHomeHub'>;

/** Options of {@link Mesh}. */
export interface MeshOptions {
  registry: MeshRegistry;
  device: Device;
  relay: Relay;
  /** Run `fn` as one batch of device changes (the runtime flushes once). */
  batch: (fn: () => void) => void;
  /** This hub; `apiUrl` and `certPin` may be set later with {@link Mesh.advertise}. */
  self: MeshSelf;
  log: (level: 'error' | 'info' | 'debug', message: string) => void;
  /** Clock (ms); default Date.now. */
  now?: () => number;
}

interface FleetPeer {
  id: string;
  kind: PeerKind;
  /** Its prefixes as CIDR text, comma-separated (compact: parsed again only to move them between peers). */
  prefixes: string;
  /** Row id of its home hub (null: none). */
  home: number | null;
  /** Its prefixes are in {@link Mesh}'s address → owner table (exactly while they sit on a hub peer). */
  indexed: boolean;
}

/** The hub mesh of one hub process (see the module documentation). */
export class Mesh implements AddressKinds {
  readonly #o: MeshOptions;
  readonly #now: () => number;
  /** Every fleet peer this hub configures. */
  readonly #fleet = new Map<string, FleetPeer>();
  /**
   * Address → fleet peer, for the kinds behind hub peers: only the peers
   * homed at another live hub (the others' addresses are on their own
   * peers, whose kind the relay knows).
   */
  readonly #owners = new AllowedIps<FleetPeer>();
  /** The other hubs configured as peers, by row id. */
  readonly #hubs = new Map<number, HubRecord>();
  /** Claims not yet written to the registry (retried each heartbeat). */
  readonly #pending = new Set<string>();
  #selfId: number | null = null;
  #timer: NodeJS.Timeout | null = null;
  #beating: Promise<void> | null = null;
  #stopped = false;
  #storeDown = false;

  constructor(opts: MeshOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    opts.relay.setAddressKinds(this);
  }

  /** This hub's row id in the registry, once announced. */
  get selfId(): number | null {
    return this.#selfId;
  }

  /**
   * Peer with the live hubs of `hubs` (read from the registry before the
   * device takes traffic, so that restored peers homed elsewhere go to their
   * hub at once; hubs with a host-name endpoint follow after its lookup),
   * then list this hub and keep the heartbeat going. A store that is down is
   * retried by the heartbeat like any outage.
   */
  start(hubs: HubRecord[]): void {
    const endpoints = new Map<number, Endpoint>();
    const live = this.#live(hubs);
    for (const h of live) {
      try {
        endpoints.set(h.id, parseEndpoint(h.endpoint!));
      } catch {
        // a host name: resolved by the first heartbeat
      }
    }
    this.#o.batch(() => this.#setHubs(live, endpoints));
    this.#timer = setInterval(() => void this.#heartbeat(), HUB_HEARTBEAT_MS);
    void this.#heartbeat();
  }

  /** Set what this hub advertises about its API, and announce it now. */
  async advertise(apiUrl: string | null, certPin: string | null): Promise<void> {
    this.#o.self.apiUrl = apiUrl;
    this.#o.self.certPin = certPin;
    await this.#beating?.catch(() => undefined); // a heartbeat under way announced the old values
    return this.#heartbeat();
  }

  /** Stop the heartbeat (the row stays: a restarted hub keeps its id and its peers' homes). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#o.relay.setAddressKinds(null);
    await this.#beating?.catch(() => undefined);
  }

  // ─── fleet peers (called by the hub inside a batch) ───────────────────────

  /**
   * The hub has set fleet peer `id` with `prefixes` as its AllowedIPs (or
   * left it unchanged); `home` is its home hub's row id from the registry.
   * If that is another live hub, the prefixes move to that hub's peer.
   */
  placed(id: string, kind: PeerKind, prefixes: Prefix[], home: number | null): void {
    const old = this.#fleet.get(id);
    // An unwritten claim of ours wins over a record read before it was written.
    const h = this.#pending.has(id) ? this.#selfId : home;
    const text = prefixes.map(formatPrefix).join(',');
    if (old !== undefined && old.kind === kind && old.home === h && old.prefixes === text) return;
    let wasRemote = false;
    if (old !== undefined) {
      if (old.indexed) this.#owners.removeOwner(old);
      const remote = this.#remote(old.home);
      wasRemote = remote !== undefined;
      // Prefixes the peer no longer has leave the hub peer of its old home.
      if (remote !== undefined) for (const prefix of parsed(old)) this.#o.device.allowedIps.remove(prefix, remote);
    }
    const p: FleetPeer = { id, kind, prefixes: text, home: h, indexed: false };
    this.#fleet.set(id, p);
    // The hub has just put the prefixes on the peer itself: only a remote home (now or before) moves them.
    if (wasRemote || this.#remote(h) !== undefined) this.#route(p);
  }

  /**
   * Take fleet peer `id`'s prefixes off the hub peer of its home (before the
   * hub re-applies the peer with an overlap check); returns what puts them
   * back if that is refused. {@link Mesh.placed} routes them again after.
   */
  detach(id: string): () => void {
    const p = this.#fleet.get(id);
    const remote = p === undefined ? undefined : this.#remote(p.home);
    if (p === undefined || remote === undefined) return () => undefined;
    for (const prefix of parsed(p)) this.#o.device.allowedIps.remove(prefix, remote);
    return () => this.#route(p);
  }

  /** Fleet peer `id` is gone from this hub. */
  forget(id: string): void {
    const p = this.#fleet.get(id);
    if (p === undefined) return;
    if (p.indexed) this.#owners.removeOwner(p);
    const remote = this.#remote(p.home);
    if (remote !== undefined) for (const prefix of parsed(p)) this.#o.device.allowedIps.remove(prefix, remote);
    this.#fleet.delete(id);
    this.#pending.delete(id);
  }

  /**
   * Fleet peer `id` handshook with this hub: make this hub its home now and
   * record that in the registry.
   */
  claim(id: string): void {
    const p = this.#fleet.get(id);
    if (p === undefined || (this.#selfId !== null && p.home === this.#selfId)) return;
    // Without a home and with no other hub, the peer is served here already: nothing to write
    // (a single hub sees no write per handshake). Its next handshake claims it once a hub joins.
    if (p.home === null && this.#hubs.size === 0) return;
    const from = p.home;
    p.home = this.#selfId; // null until the first heartbeat has listed this hub: served here all the same
    this.#route(p);
    this.#o.log('info', `mesh: ${p.kind} ${id} is now homed here${from !== null ? ` (was hub #${from})` : ''}`);
    this.#pending.add(id);
    void this.#flushClaims();
  }

  /** Whether fleet peer `id` is homed at another live hub. */
  isRemote(id: string): boolean {
    const p = this.#fleet.get(id);
    return p !== undefined && this.#remote(p.home) !== undefined;
  }

  // ─── AddressKinds (for the relay) ─────────────────────────────────────────

  sourceKind(packet: Uint8Array): PeerKind | undefined {
    return this.#owners.lookupPacketSrc(packet)?.kind;
  }

  destinationKind(packet: Uint8Array): PeerKind | undefined {
    return this.#owners.lookupPacketDst(packet)?.kind;
  }

  // ─── what agents are told ─────────────────────────────────────────────────

  /** Every live hub with an endpoint, this one first. */
  listedHubs(): HubRecord[] {
    const s = this.#o.self;
    const me: HubRecord[] =
      s.endpoint !== null ? [{ id: this.#selfId ?? 0, publicKey: s.publicKey, endpoint: s.endpoint, apiUrl: s.apiUrl, certPin: s.certPin, lastSeen: this.#now() }] : [];
    return [...me, ...this.#hubs.values()];
  }

  // ─── internals ────────────────────────────────────────────────────────────

  /** The live device peer of hub row `home` when it is another live hub. */
  #remote(home: number | null) {
    if (home === null || home === this.#selfId) return undefined;
    const h = this.#hubs.get(home);
    return h === undefined ? undefined : this.#o.device.getPeer(h.publicKey);
  }

  /** Put the prefixes of `p` on the peer that should hold them (an insertion moves a prefix from its old owner). */
  #route(p: FleetPeer): void {
    const remote = this.#remote(p.home);
    const prefixes = parsed(p);
    this.#o.device.setPeer(remote?.publicKey ?? keyFromBase64(p.id), { allowedIps: prefixes });
    if (remote !== undefined && !p.indexed) for (const prefix of prefixes) this.#owners.insert(prefix, p);
    else if (remote === undefined && p.indexed) this.#owners.removeOwner(p);
    p.indexed = remote !== undefined;
  }

  #storeFailed(what: string, e: unknown): void {
    if (!this.#storeDown) this.#o.log('error', `mesh: ${what}: ${(e as Error).message}; live peers unchanged, retrying`);
    this.#storeDown = true;
  }

  #storeOk(): void {
    if (this.#storeDown) this.#o.log('info', 'mesh: registry reachable again');
    this.#storeDown = false;
  }

  async #flushClaims(): Promise<void> {
    const self = this.#selfId;
    if (self === null) return;
    for (const id of [...this.#pending]) {
      try {
        await this.#o.registry.setHomeHub(id, self);
        this.#pending.delete(id);
        this.#storeOk();
      } catch (e) {
        this.#storeFailed('recording a home hub', e);
        return;
      }
    }
  }

  #heartbeat(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    // One at a time: a slow store never piles up heartbeats.
    this.#beating ??= this.#beat().finally(() => (this.#beating = null));
    return this.#beating;
  }

  async #beat(): Promise<void> {
    const s = this.#o.self;
    try {
      const me = await this.#o.registry.announceHub({ publicKey: s.publicKey, endpoint: s.endpoint, apiUrl: s.apiUrl, certPin: s.certPin });
      this.#selfId = me.id;
      const hubs = await this.#o.registry.listHubs();
      this.#storeOk();
      await this.#applyHubs(this.#live(hubs));
    } catch (e) {
      this.#storeFailed('hub heartbeat', e);
    }
    if (this.#pending.size > 0) await this.#flushClaims();
  }

  /** The other hubs that have an endpoint and a fresh heartbeat. */
  #live(hubs: HubRecord[]): HubRecord[] {
    const now = this.#now();
    return hubs.filter((h) => h.publicKey !== this.#o.self.publicKey && h.endpoint !== null && now - h.lastSeen < HUB_STALE_MS);
  }

  async #applyHubs(hubs: HubRecord[]): Promise<void> {
    const endpoints = new Map<number, Endpoint>();
    for (const h of hubs) {
      const cur = this.#hubs.get(h.id);
      if (cur !== undefined && cur.endpoint === h.endpoint) continue;
      const ep = await resolve(h.endpoint!).catch((e: unknown) => {
        this.#o.log('error', `mesh: hub ${h.publicKey}: cannot resolve its endpoint ${h.endpoint}: ${(e as Error).message}`);
        return null;
      });
      if (ep !== null) endpoints.set(h.id, ep);
    }
    if (this.#stopped) return;
    this.#o.batch(() => this.#setHubs(hubs, endpoints));
  }

  /** Make the hub peers exactly `hubs` (new ones need their endpoint in `endpoints`). Call inside a batch. */
  #setHubs(hubs: HubRecord[], endpoints: Map<number, Endpoint>): void {
    const want = new Set(hubs.map((h) => h.id));
    for (const id of [...this.#hubs.keys()]) if (!want.has(id)) this.#removeHub(id);
    for (const h of hubs) {
      const ep = endpoints.get(h.id);
      if (this.#hubs.has(h.id)) {
        if (ep !== undefined) this.#o.device.setPeer(keyFromBase64(h.publicKey), { endpoint: ep });
        this.#hubs.set(h.id, h);
      } else if (ep !== undefined) {
        this.#addHub(h, ep);
      }
    }
  }

  #addHub(h: HubRecord, ep: Endpoint): void {
    this.#hubs.set(h.id, h);
    this.#o.relay.setKind(h.publicKey, 'hub');
    this.#o.device.setPeer(keyFromBase64(h.publicKey), { endpoint: ep, replaceAllowedIps: true, persistentKeepalive: HUB_KEEPALIVE });
    let n = 0;
    for (const p of this.#fleet.values()) {
      if (p.home !== h.id) continue;
      this.#route(p);
      n++;
    }
    this.#o.log('info', `mesh: hub #${h.id} ${h.publicKey} at ${h.endpoint} peered (${n} peers homed there)`);
  }

  #removeHub(id: number): void {
    const h = this.#hubs.get(id)!;
    this.#hubs.delete(id);
    // Its peers' addresses go back to their own peers here, ready for a failover to this hub.
    for (const p of this.#fleet.values()) if (p.home === id) this.#route(p);
    this.#o.device.removePeer(h.publicKey);
    this.#o.relay.setKind(h.publicKey, null);
    this.#o.log('info', `mesh: hub #${id} ${h.publicKey} dropped (no heartbeat for ${HUB_STALE_MS / 1000} s)`);
  }
}

/** The prefixes of a fleet peer, parsed from its text. */
function parsed(p: FleetPeer): Prefix[] {
  return p.prefixes === '' ? [] : p.prefixes.split(',').map((t) => parsePrefix(t));
}

/** A hub endpoint `host:port` or `[v6]:port`, its host resolved (IP literal or name). */
async function resolve(text: string): Promise<Endpoint> {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:]+):(\d{1,5})$/.exec(text);
  if (m === null || Number(m[2]) > 65535) throw new Error(`"${text}" is not HOST:PORT`);
  const r = await resolveEndpoint(m[1]!, Number(m[2]));
  return { host: r.host, port: r.port };
}
