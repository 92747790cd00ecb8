/**
 * An agent's hub failover. The agent has one hub peer at a time (its home
 * hub); the registration answer lists every hub of the fleet. When nothing
 * authenticated has come from the home hub for {@link FailoverOptions.deadAfterMs}
 * (default {@link DEAD_AFTER_MS}: REKEY_TIMEOUT × 3), the agent replaces its
 * hub peer by the next listed hub — same key, same address, since the hubs
 * share the registry — whose handshake makes that hub its home; the other
 * hubs then route the agent's address to it. An idle tunnel is probed with an
 * ICMP echo to the hub's mesh address (`./probe.ts`) so that silence means
 * a dead hub, not a quiet one.
 * @module
 */

import { keyFromBase64 } from '../crypto/keys.js';
import type { Device } from '../device/device.js';
import type { Endpoint } from '../device/types.js';
import type { RegisterHub } from '../hub/protocol.js';
import type { Prefix } from '../routing/ip.js';
import { icmpEchoRequest } from './probe.js';

/** REKEY_TIMEOUT of the WireGuard protocol, ms. */
const REKEY_TIMEOUT_MS = 5000;
/** Silence from the home hub after which the agent moves to another hub. */
export const DEAD_AFTER_MS = 3 * REKEY_TIMEOUT_MS;
/** Silence after which the agent probes its hub. */
export const PROBE_AFTER_MS = REKEY_TIMEOUT_MS;
const TICK_MS = 1000;

/** Options of {@link Failover}. */
export interface FailoverOptions {
  device: Device;
  /** Run `fn` as one batch of device changes. */
  batch: (fn: () => void) => void;
  /** The fleet's hubs (from the registration answer). */
  hubs: RegisterHub[];
  /** Public key of the hub peer configured now. */
  current: string;
  /** AllowedIPs of the hub peer (the mesh prefixes). */
  allowedIps: Prefix[];
  /** Persistent keepalive of the hub peer, seconds. */
  keepalive: number;
  /** The agent's mesh address and the hubs' (probe source and destination). */
  address: string;
  hubAddress: string;
  /** Resolve a hub's `host:port` endpoint. */
  resolve: (endpoint: string) => Promise<Endpoint>;
  /** Called after the hub peer was replaced (e.g. to register through the new hub). */
  onSwitch?: (hub: RegisterHub, from: string) => void;
  log: (level: 'error' | 'info' | 'debug', message: string) => void;
  deadAfterMs?: number;
  /** Clock, ms (default Date.now). */
  now?: () => number;
}

/** Watches the home hub and moves to another one when it stops answering. */
export class Failover {
  readonly #o: FailoverOptions;
  readonly #now: () => number;
  #hubs: RegisterHub[];
  #current: string;
  #lastRx = 0;
  #lastRxBytes = -1;
  #lastProbe = 0;
  #seq = 0;
  #timer: NodeJS.Timeout | null = null;
  #switching = false;
  readonly #probeId = Math.floor(Math.random() * 0xffff);

  constructor(opts: FailoverOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#hubs = opts.hubs;
    this.#current = opts.current;
  }

  /** Public key of the hub in use. */
  get current(): string {
    return this.#current;
  }

  /** The hub list in use. */
  get hubs(): readonly RegisterHub[] {
    return this.#hubs;
  }

  /** Replace the hub list (a newer registration answer). */
  setHubs(hubs: RegisterHub[]): void {
    if (hubs.length > 0) this.#hubs = hubs;
  }

  start(): void {
    this.#lastRx = this.#now();
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  #tick(): void {
    const d = this.#o.device;
    const peer = d.getPeer(this.#current);
    if (peer === undefined) return;
    const now = this.#now();
    const rx = d.peerInfo(peer).rxBytes;
    if (rx !== this.#lastRxBytes) {
      this.#lastRxBytes = rx;
      this.#lastRx = now;
      return;
    }
    // With no other hub to move to, there is nothing to detect: no probes (a single-hub fleet sees no extra traffic).
    if (!this.#hubs.some((h) => h.public_key !== this.#current)) {
      this.#lastRx = now;
      return;
    }
    const silent = now - this.#lastRx;
    if (silent >= (this.#o.deadAfterMs ?? DEAD_AFTER_MS)) {
      void this.#switch(Math.round(silent / 1000));
      return;
    }
    if (silent >= PROBE_AFTER_MS && now - this.#lastProbe >= PROBE_AFTER_MS) {
      this.#lastProbe = now;
      d.sendPacket(icmpEchoRequest(this.#o.address, this.#o.hubAddress, this.#probeId, this.#seq++));
    }
  }

  /** The hub after the current one in the list (wrapping), or null when there is no other. */
  #next(): RegisterHub | null {
    const i = this.#hubs.findIndex((h) => h.public_key === this.#current);
    for (let k = 1; k <= this.#hubs.length; k++) {
      const h = this.#hubs[(i + k) % this.#hubs.length]!;
      if (h.public_key !== this.#current) return h;
    }
    return null;
  }

  async #switch(silentS: number): Promise<void> {
    if (this.#switching) return;
    const next = this.#next();
    if (next === null) return;
    this.#switching = true;
    try {
      const ep = await this.#o.resolve(next.endpoint);
      const from = this.#current;
      this.#o.batch(() => {
        this.#o.device.removePeer(from);
        // Keepalive on a new peer sends at once: the handshake with the new hub starts now.
        this.#o.device.setPeer(keyFromBase64(next.public_key), { endpoint: ep, replaceAllowedIps: true, allowedIps: this.#o.allowedIps, persistentKeepalive: this.#o.keepalive });
      });
      this.#current = next.public_key;
      this.#lastRx = this.#now();
      this.#lastRxBytes = -1;
      this.#o.log('info', `hub ${from} silent for ${silentS} s: moved to hub ${next.public_key} at ${next.endpoint}`);
      this.#o.onSwitch?.(next, from);
    } catch (e) {
      this.#lastRx = this.#now() - (this.#o.deadAfterMs ?? DEAD_AFTER_MS) + REKEY_TIMEOUT_MS; // retry soon
      this.#o.log('error', `cannot move to hub ${next.public_key} (${next.endpoint}): ${(e as Error).message}`);
    } finally {
      this.#switching = false;
    }
  }
}
