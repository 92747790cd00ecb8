/**
 * Several hubs on one shared registry.
 *
 * - **Hubs list themselves.** Each hub has its own key and endpoint and keeps
 *   a row in the registry's hub table, refreshed by a heartbeat
 *   ({@link MeshStore.upsertHub}). Every hub makes every other listed hub a
 *   WireGuard peer of kind `hub` (persistent keepalive), and drops it when its
 *   heartbeat is older than {@link HUB_STALE_MS} or its row is removed.
 * - **One home hub per peer.** Every hub configures every fleet peer of the
 *   registry (so that any of them can fail over to it), but a peer's
 *   addresses (its AllowedIPs) sit on one hub only: its home. Elsewhere they
 *   are AllowedIPs of the hub peer of that home. A handshake with a hub, or a
 *   registration through its API, makes that hub the home: the addresses move
 *   to the local peer synchronously (before the packet that completed the
 *   handshake is checked against them) and the claim is written to the
 *   registry, which every other hub reads through the change sequence of the
 *   home table and applies as a per-peer move.
 * - **Relay across hubs** happens in-process in `./relay.ts`: a packet for an
 *   address homed elsewhere matches the hub peer of its home and is
 *   re-encrypted to it; the policy is applied to the kinds of the origin and
 *   final destination, looked up in {@link Mesh} (which knows the kind of
 *   every address of the fleet). No ip_forward.
 * - **Store outage.** Nothing here waits for the store: a failed heartbeat or
 *   home claim is retried on the next tick; the live peers stay as they are.
 * @module
 */

import { lookup } from 'node:dns/promises';
import { keyFromBase64 } from '../crypto/keys.js';
import type { Device } from '../device/device.js';
import { parseEndpoint, type Endpoint } from '../device/types.js';
import { AllowedIps } from '../routing/allowed-ips.js';
import type { Prefix } from '../routing/ip.js';
import type { HubRecord, MeshStore } from './mesh-store.js';
import type { AddressKinds, PeerKind, Relay } from './relay.js';

/** Home-table poll interval (changes made by other hubs are live within this). */
export const HOMES_POLL_MS = 200;
/** Heartbeat of this hub's row and re-read of the hub list. */
export const HUB_HEARTBEAT_MS = 2000;
/** A hub whose heartbeat is older than this is dropped as a peer and not advertised to agents. */
export const HUB_STALE_MS = 60_000;
/** Persistent keepalive between hubs, seconds (keeps NAT mappings and liveness fresh). */
export const HUB_KEEPALIVE = 10;

/** What this hub advertises about itself. */
export interface MeshSelf {
  /** The hub's public key, base64. */
  id: string;
  /** Public UDP endpoint `host:port`; without it the hub does not list itself (it still peers with the others). */
  endpoint?: string;
  /** Base URL of its registration API. */
  apiUrl?: string;
  /** Pin of its API certificate. */
  certPin?: string;
}

/** Options of {@link Mesh}. */
export interface MeshOptions {
  store: MeshStore;
  device: Device;
  relay: Relay;
  /** Run `fn` as one batch of device changes (the runtime flushes once). */
  batch: (fn: () => void) => void;
  /** This hub; `apiUrl` and `certPin` may be filled in after the API is up ({@link Mesh.advertise}). */
  self: MeshSelf;
  log: (level: 'error' | 'info' | 'debug', message: string) => void;
  /** Clock (ms); default Date.now. */
  now?: () => number;
}

interface FleetPeer {
  id: string;
  kind: PeerKind;
  prefixes: Prefix[];
}

/** The hub mesh of one hub process (see the module documentation). */
export class Mesh implements AddressKinds {
  readonly #o: MeshOptions;
  readonly #now: () => number;
  /** Every fleet peer of the registry this hub configures. */
  readonly #fleet = new Map<string, FleetPeer>();
  /** Address → fleet peer, for the kinds behind hub peers. */
  readonly #owners = new AllowedIps<FleetPeer>();
  /** Peer key → home hub id, as last read or claimed. */
  readonly #homes = new Map<string, string>();
  /** The other hubs configured as peers. */
  readonly #hubs = new Map<string, HubRecord>();
  /** Claims not yet written to the store (retried each tick). */
  readonly #pending = new Set<string>();
  #seq = 0;
  #timers: NodeJS.Timeout[] = [];
  #polling = false;
  #stopped = false;
  #storeDown = false;

  constructor(opts: MeshOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    opts.relay.setAddressKinds(this);
  }

  /** Set what this hub advertises about its API (listed at the next heartbeat, which this starts). */
  advertise(apiUrl: string | undefined, certPin: string | undefined): void {
    if (apiUrl !== undefined) this.#o.self.apiUrl = apiUrl;
    if (certPin !== undefined) this.#o.self.certPin = certPin;
    void this.#heartbeat();
  }

  /** This hub's id (public key). */
  get selfId(): string {
    return this.#o.self.id;
  }

  /**
   * Read the hub list and the homes, list this hub, then keep polling. A
   * store that is down at start is retried by the poll like any outage.
   */
  async start(): Promise<void> {
    await this.#heartbeat();
    await this.#pollHomes();
    this.#timers.push(setInterval(() => void this.#pollHomes(), HOMES_POLL_MS));
    this.#timers.push(setInterval(() => void this.#heartbeat(), HUB_HEARTBEAT_MS));
  }

  /** Stop polling and, when `unlist`, remove this hub's row (a clean shutdown). */
  async stop(unlist: boolean): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    this.#o.relay.setAddressKinds(null);
    if (unlist && this.#o.self.endpoint !== undefined) {
      await this.#o.store.removeHub(this.selfId).catch((e: unknown) => this.#o.log('error', `mesh: cannot unlist this hub: ${(e as Error).message}`));
    }
  }

  // ─── fleet peers (called by the hub inside a batch) ───────────────────────

  /**
   * The hub has set fleet peer `id` with `prefixes` as its AllowedIPs; if its
   * home is another hub, move them to that hub's peer.
   */
  placed(id: string, kind: PeerKind, prefixes: Prefix[]): void {
    const old = this.#fleet.get(id);
    const home = this.#homes.get(id);
    const remote = home !== undefined && this.#hubs.has(home) ? this.#o.device.getPeer(home) : undefined;
    if (old !== undefined) {
      this.#owners.removeOwner(old);
      // Prefixes the peer no longer has leave the hub peer of its home too.
      if (remote !== undefined) for (const prefix of old.prefixes) this.#o.device.allowedIps.remove(prefix, remote);
    }
    const p: FleetPeer = { id, kind, prefixes };
    this.#fleet.set(id, p);
    for (const prefix of prefixes) this.#owners.insert(prefix, p);
    if (remote !== undefined) this.#o.device.setPeer(keyFromBase64(home!), { allowedIps: prefixes });
  }

  /** Fleet peer `id` is gone from this hub. */
  forget(id: string): void {
    const p = this.#fleet.get(id);
    if (p === undefined) return;
    this.#owners.removeOwner(p);
    const home = this.#homes.get(id);
    const remote = home !== undefined && this.#hubs.has(home) ? this.#o.device.getPeer(home) : undefined;
    if (remote !== undefined) for (const prefix of p.prefixes) this.#o.device.allowedIps.remove(prefix, remote);
    this.#fleet.delete(id);
    this.#pending.delete(id);
  }

  /**
   * Fleet peer `id` handshook with (or registered through) this hub: make it
   * its home now and record that in the registry.
   */
  claim(id: string): void {
    const p = this.#fleet.get(id);
    if (p === undefined || this.#homes.get(id) === this.selfId) return;
    const from = this.#homes.get(id);
    this.#homes.set(id, this.selfId);
    this.#o.device.setPeer(keyFromBase64(id), { allowedIps: p.prefixes });
    this.#o.log('info', `mesh: ${p.kind} ${id} is now homed here${from !== undefined ? ` (was ${from})` : ''}`);
    this.#pending.add(id);
    void this.#flushClaims();
  }

  /** The home hub id of a fleet peer, when known. */
  homeOf(id: string): string | undefined {
    return this.#homes.get(id);
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
    const me: HubRecord[] = s.endpoint !== undefined ? [{ id: s.id, endpoint: s.endpoint, apiUrl: s.apiUrl ?? null, certPin: s.certPin ?? null, lastSeen: this.#now() }] : [];
    return [...me, ...this.#hubs.values()];
  }

  /** Whether the last store access failed. */
  get storeDown(): boolean {
    return this.#storeDown;
  }

  // ─── polling ──────────────────────────────────────────────────────────────

  #storeFailed(what: string, e: unknown): void {
    if (!this.#storeDown) this.#o.log('error', `mesh: ${what}: ${(e as Error).message}; live peers unchanged, retrying`);
    this.#storeDown = true;
  }

  #storeOk(): void {
    if (this.#storeDown) this.#o.log('info', 'mesh: registry reachable again');
    this.#storeDown = false;
  }

  async #flushClaims(): Promise<void> {
    for (const id of [...this.#pending]) {
      try {
        await this.#o.store.setHome(id, this.selfId);
        this.#pending.delete(id);
        this.#storeOk();
      } catch (e) {
        this.#storeFailed('recording a home hub', e);
        return;
      }
    }
  }

  async #pollHomes(): Promise<void> {
    if (this.#polling || this.#stopped) return;
    this.#polling = true;
    try {
      const changes = await this.#o.store.homesSince(this.#seq);
      this.#storeOk();
      if (changes.length > 0 && !this.#stopped) {
        this.#o.batch(() => {
          for (const c of changes) {
            this.#seq = Math.max(this.#seq, c.seq);
            // A newer claim elsewhere wins over ours not yet written.
            if (c.hubId !== this.selfId) this.#pending.delete(c.publicKey);
            else if (this.#pending.has(c.publicKey)) continue;
            this.#setHome(c.publicKey, c.hubId);
          }
        });
      }
      if (this.#pending.size > 0) await this.#flushClaims();
    } catch (e) {
      this.#storeFailed('reading home hubs', e);
    } finally {
      this.#polling = false;
    }
  }

  /** Apply a home read from the store. Call inside a batch. */
  #setHome(id: string, hubId: string): void {
    if (this.#homes.get(id) === hubId) return;
    this.#homes.set(id, hubId);
    const p = this.#fleet.get(id);
    if (p === undefined) return;
    if (this.#hubs.has(hubId)) this.#o.device.setPeer(keyFromBase64(hubId), { allowedIps: p.prefixes });
    else this.#o.device.setPeer(keyFromBase64(id), { allowedIps: p.prefixes });
  }

  async #heartbeat(): Promise<void> {
    if (this.#stopped) return;
    const s = this.#o.self;
    try {
      if (s.endpoint !== undefined) {
        await this.#o.store.upsertHub({ id: s.id, endpoint: s.endpoint, apiUrl: s.apiUrl ?? null, certPin: s.certPin ?? null, lastSeen: this.#now() });
      }
      const hubs = await this.#o.store.listHubs();
      this.#storeOk();
      await this.#applyHubs(hubs.filter((h) => h.id !== s.id && this.#now() - h.lastSeen < HUB_STALE_MS));
    } catch (e) {
      this.#storeFailed('hub heartbeat', e);
    }
  }

  async #applyHubs(hubs: HubRecord[]): Promise<void> {
    const endpoints = new Map<string, Endpoint>();
    for (const h of hubs) {
      const cur = this.#hubs.get(h.id);
      if (cur !== undefined && cur.endpoint === h.endpoint) continue;
      const ep = await resolve(h.endpoint).catch((e: unknown) => {
        this.#o.log('error', `mesh: hub ${h.id}: cannot resolve its endpoint ${h.endpoint}: ${(e as Error).message}`);
        return null;
      });
      if (ep !== null) endpoints.set(h.id, ep);
    }
    if (this.#stopped) return;
    const want = new Set(hubs.map((h) => h.id));
    this.#o.batch(() => {
      for (const id of [...this.#hubs.keys()]) if (!want.has(id)) this.#removeHub(id);
      for (const h of hubs) {
        const ep = endpoints.get(h.id);
        const cur = this.#hubs.get(h.id);
        if (cur !== undefined) {
          if (ep !== undefined) this.#o.device.setPeer(keyFromBase64(h.id), { endpoint: ep });
          this.#hubs.set(h.id, h);
        } else if (ep !== undefined) {
          this.#addHub(h, ep);
        }
      }
    });
  }

  #prefixesHomedAt(hubId: string): Prefix[] {
    const out: Prefix[] = [];
    for (const [id, home] of this.#homes) {
      if (home !== hubId) continue;
      const p = this.#fleet.get(id);
      if (p !== undefined) out.push(...p.prefixes);
    }
    return out;
  }

  #addHub(h: HubRecord, ep: Endpoint): void {
    this.#hubs.set(h.id, h);
    this.#o.relay.setKind(h.id, 'hub');
    const prefixes = this.#prefixesHomedAt(h.id);
    this.#o.device.setPeer(keyFromBase64(h.id), { endpoint: ep, replaceAllowedIps: true, allowedIps: prefixes, persistentKeepalive: HUB_KEEPALIVE });
    this.#o.log('info', `mesh: hub ${h.id} at ${h.endpoint} peered (${prefixes.length} prefixes homed there)`);
  }

  #removeHub(id: string): void {
    this.#hubs.delete(id);
    // Its peers' addresses go back to their own peers here, ready for a failover to this hub.
    for (const [peer, home] of this.#homes) {
      if (home !== id) continue;
      const p = this.#fleet.get(peer);
      if (p !== undefined) this.#o.device.setPeer(keyFromBase64(peer), { allowedIps: p.prefixes });
    }
    this.#o.device.removePeer(id);
    this.#o.relay.setKind(id, null);
    this.#o.log('info', `mesh: hub ${id} dropped (unlisted or no heartbeat for ${HUB_STALE_MS / 1000} s)`);
  }
}

async function resolve(text: string): Promise<Endpoint> {
  try {
    return parseEndpoint(text);
  } catch {
    // a host name
  }
  const m = /^(.+):(\d{1,5})$/.exec(text);
  if (m === null) throw new Error(`"${text}" is not HOST:PORT`);
  const a = await lookup(m[1]!.replace(/^\[|\]$/g, ''));
  return { host: a.address, port: Number(m[2]) };
}
