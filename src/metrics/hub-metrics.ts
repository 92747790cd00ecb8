/**
 * `hub up --metrics`: the device metrics of the hub's interface plus the
 * hub's own (relayed/refused per peer, registrations by result, free
 * addresses, registry latency), `/healthz` (device up and registry
 * answering) and the read-only status page with its `/status.json`.
 * Everything is read at scrape or page-load time.
 * @module
 */

import promClient from 'prom-client';
import { keyToBase64 } from '../crypto/keys.js';
import { formatEndpoint } from '../device/types.js';
import type { Relay } from '../hub/relay.js';
import type { Runtime } from '../io/runtime.js';
import type { Log } from '../log/logger.js';
import type { ListenAddress } from '../util/listen-address.js';
import { registerDeviceMetrics } from './device-metrics.js';
import { interfaceProbe, serveMetrics, type HealthCheck, type MetricsHandle } from './server.js';
import { STATUS_HTML, STATUS_ICON, STATUS_JS } from './status-page.js';

/** A peer the hub serves (configured on its device). */
export interface LivePeer {
  /** Base64 public key. */
  publicKey: string;
  /** `device`, `client` or `agent`. */
  kind: string;
  /** Registry name. */
  name: string;
  /** Mesh IPv4 address. */
  address: string;
}

/** What the hub shows to its metrics (implemented by {@link Hub}). */
export interface HubObservable {
  /** The hub's interface name. */
  readonly ifname: string;
  /** The engine shell. */
  readonly runtime: Runtime;
  /** The relay (per-peer counters). */
  readonly relay: Relay;
  /** The registry, as far as health and metrics need it (synchronous or asynchronous). */
  readonly registry: {
    ping(): unknown;
    freeAddresses(): number | Promise<number>;
    readonly hubAddress: string;
  };
  /** Registration API requests by result. */
  readonly registrations: ReadonlyMap<string, number>;
  /** True once the hub is stopping. */
  readonly stopping: boolean;
  /** Every peer configured on the device. */
  livePeers(): LivePeer[];
}

/** A peer on the status page. */
export interface StatusPeer extends LivePeer {
  /** Current endpoint (`host:port`), or null. */
  endpoint: string | null;
  /** A handshake completed within the last {@link ONLINE_WITHIN_SECONDS}. */
  online: boolean;
  /** Unix seconds of the latest handshake (0 = never). */
  latestHandshake: number;
  /** Bytes received from / sent to the peer (whole UDP payloads, as `wg show … transfer`). */
  rxBytes: number;
  /** See {@link StatusPeer.rxBytes}. */
  txBytes: number;
  /** Packets from this peer relayed to another peer. */
  relayed: number;
  /** Packets from this peer refused by the relay policy. */
  refused: number;
}

/** `/status.json`. */
export interface StatusDocument {
  /** Interface name. */
  interface: string;
  /** The hub's public key. */
  publicKey: string;
  /** The hub's mesh address. */
  address: string;
  /** UDP listen port. */
  listenPort: number;
  /** When this was produced, Unix ms. */
  time: number;
  /** Registry health. */
  registry: HealthCheck;
  /** Peers, by kind then name. */
  peers: StatusPeer[];
}

/** A peer counts as online this long after its latest handshake (REJECT_AFTER_TIME: its session is still valid). */
export const ONLINE_WITHIN_SECONDS = 180;

/** Ping the registry; the check carries the time it took. */
async function pingRegistry(hub: HubObservable): Promise<HealthCheck & { seconds: number }> {
  const t0 = performance.now();
  try {
    await hub.registry.ping();
    return { ok: true, detail: 'answers', seconds: (performance.now() - t0) / 1000 };
  } catch (e) {
    return { ok: false, detail: (e as Error).message, seconds: (performance.now() - t0) / 1000 };
  }
}

/** The status page's data, from the live device (works while the registry is unavailable). */
export async function hubStatus(hub: HubObservable, now = Date.now()): Promise<StatusDocument> {
  const device = hub.runtime.device;
  const registry = await pingRegistry(hub);
  const peers: StatusPeer[] = [];
  for (const p of hub.livePeers()) {
    const peer = device.getPeer(p.publicKey);
    const info = peer ? device.peerInfo(peer) : null;
    const latest = info ? Math.floor(info.lastHandshake / 1000) : 0;
    const c = hub.relay.counters(p.publicKey);
    peers.push({
      ...p,
      endpoint: info?.endpoint ? formatEndpoint(info.endpoint) : null,
      online: latest > 0 && now / 1000 - latest < ONLINE_WITHIN_SECONDS,
      latestHandshake: latest,
      rxBytes: info?.rxBytes ?? 0,
      txBytes: info?.txBytes ?? 0,
      relayed: c.relayed,
      refused: c.refused,
    });
  }
  peers.sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
  return {
    interface: hub.ifname,
    publicKey: device.publicKey ? keyToBase64(device.publicKey) : '',
    address: hub.registry.hubAddress,
    listenPort: hub.runtime.listenPort,
    time: now,
    registry: { ok: registry.ok, detail: registry.detail },
    peers,
  };
}

/** Register the hub's own metrics (the device's are registered separately). */
function registerHubMetrics(registry: promClient.Registry, hub: HubObservable): void {
  const registers = [registry];
  const byPeer = () => hub.livePeers().map((p) => ({ p, c: hub.relay.counters(p.publicKey) }));
  const labels = (p: LivePeer) => ({ device: hub.ifname, public_key: p.publicKey, kind: p.kind, name: p.name });
  for (const [field, help] of [
    ['relayed', 'Packets from a peer that the hub relayed to another peer.'],
    ['refused', 'Packets from a peer that the relay policy refused.'],
  ] as const) {
    new promClient.Counter({
      name: `tsguard_hub_${field}_packets_total`,
      help,
      labelNames: ['device', 'public_key', 'kind', 'name'],
      registers,
      collect() {
        this.reset();
        for (const { p, c } of byPeer()) this.inc(labels(p), c[field]);
      },
    });
  }
  new promClient.Counter({
    name: 'tsguard_hub_registrations_total',
    help: 'Requests to the registration API, by result (registered, rekeyed, already_registered or the refusal reason).',
    labelNames: ['result'],
    registers,
    collect() {
      this.reset();
      for (const [result, n] of hub.registrations) this.inc({ result }, n);
    },
  });
  new promClient.Gauge({
    name: 'tsguard_hub_free_addresses',
    help: 'IPv4 addresses of the mesh subnet a new peer could get (not held, not quarantined); absent while the registry is unavailable.',
    registers,
    async collect() {
      this.reset();
      try {
        this.set(await hub.registry.freeAddresses());
      } catch {
        // registry unavailable: no sample (tsguard_hub_registry_up says why)
      }
    },
  });
  new promClient.Gauge({
    name: 'tsguard_hub_peers',
    help: 'Peers the hub serves, by kind.',
    labelNames: ['kind'],
    registers,
    collect() {
      this.reset();
      for (const k of ['device', 'client', 'agent']) this.set({ kind: k }, 0);
      for (const p of hub.livePeers()) this.inc({ kind: p.kind });
    },
  });
  // One ping per scrape feeds both gauges: prom-client starts the collect() calls in registration order.
  let ping: ReturnType<typeof pingRegistry> | null = null;
  new promClient.Gauge({
    name: 'tsguard_hub_registry_up',
    help: "1 when the registry answered this scrape's ping, else 0.",
    registers,
    async collect() {
      ping = pingRegistry(hub);
      this.set((await ping).ok ? 1 : 0);
    },
  });
  new promClient.Gauge({
    name: 'tsguard_hub_registry_latency_seconds',
    help: "Time the registry took to answer this scrape's ping.",
    registers,
    async collect() {
      this.set((await (ping ?? pingRegistry(hub))).seconds);
      ping = null;
    },
  });
}

/** Serve the hub's metrics, health and status page on `listen`. */
export async function serveHubMetrics(hub: HubObservable, listen: ListenAddress, log?: Log): Promise<MetricsHandle> {
  const registry = new promClient.Registry();
  const names = new Map<string, string>();
  const detach = registerDeviceMetrics(registry, {
    ifname: hub.ifname,
    device: hub.runtime.device,
    peerName: (pk) => names.get(pk),
  });
  registerHubMetrics(registry, hub);
  const refreshNames = () => {
    names.clear();
    for (const p of hub.livePeers()) names.set(p.publicKey, `${p.kind}/${p.name}`);
  };
  const html = { type: 'text/html; charset=utf-8', body: STATUS_HTML };
  return serveMetrics(
    {
      listen,
      registry,
      health: {
        device: interfaceProbe(hub.ifname, () => hub.runtime.device.privateKey !== null, () => hub.stopping),
        registry: () => pingRegistry(hub).then(({ ok, detail }) => ({ ok, detail })),
      },
      routes: {
        '/metrics': async () => {
          refreshNames();
          return { type: registry.contentType, body: await registry.metrics() };
        },
        '/': () => html,
        '/status': () => html,
        '/status.js': () => ({ type: 'text/javascript; charset=utf-8', body: STATUS_JS }),
        '/favicon.ico': () => ({ type: 'image/svg+xml', body: STATUS_ICON }),
        '/status.json': async () => ({ type: 'application/json', body: JSON.stringify(await hubStatus(hub)) + '\n' }),
      },
      ...(log ? { log } : {}),
    },
    detach,
  );
}
