/**
 * The read-only observability server of a daemon or hub (`--metrics
 * ADDR:PORT`): `/metrics` (Prometheus text), `/healthz` (200 when ready,
 * 503 otherwise) and extra read-only pages (the hub's status page).
 * @module
 */

import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import promClient from 'prom-client';
import { formatEndpoint } from '../device/types.js';
import type { Log } from '../log/logger.js';
import type { ListenAddress } from '../util/listen-address.js';

// The status page loads only its own script and data, inline styles aside.
const CSP = "default-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'";

/** The result of one readiness check. */
export interface HealthCheck {
  /** Whether this part is ready. */
  ok: boolean;
  /** What was found (`up`, `no private key`, the registry's error…). */
  detail: string;
}

/** A named readiness check; may be asynchronous. */
export type HealthProbe = () => HealthCheck | Promise<HealthCheck>;

/** A read-only route: the body and its content type. */
export type Route = () => Promise<{ type: string; body: string }> | { type: string; body: string };

/** Options of {@link MetricsServer.start}. */
export interface MetricsServerOptions {
  /** Where to listen. */
  listen: ListenAddress;
  /** The metrics served on `/metrics`. */
  registry: promClient.Registry;
  /** Readiness checks for `/healthz`, by name: ready only when every one is ok. */
  health: Record<string, HealthProbe>;
  /** Extra GET routes by path (e.g. `/status.json`). */
  routes?: Record<string, Route>;
  /** Log sink. */
  log?: Log;
}

/** The `/healthz` answer. */
export interface HealthReport {
  /** `ok` or `unavailable`. */
  status: 'ok' | 'unavailable';
  /** Every check with its result. */
  checks: Record<string, HealthCheck>;
}

/** Run every probe; a probe that throws counts as not ready with its message. */
export async function runHealth(probes: Record<string, HealthProbe>): Promise<HealthReport> {
  const checks: Record<string, HealthCheck> = {};
  await Promise.all(
    Object.entries(probes).map(async ([name, probe]) => {
      try {
        checks[name] = await probe();
      } catch (e) {
        checks[name] = { ok: false, detail: (e as Error).message };
      }
    }),
  );
  return { status: Object.values(checks).every((c) => c.ok) ? 'ok' : 'unavailable', checks };
}

/**
 * Readiness of a device's interface: it exists and is administratively up
 * (IFF_UP in `/sys/class/net/IF/flags`), and the device has a private key.
 */
export function interfaceProbe(ifname: string, hasPrivateKey: () => boolean, stopped: () => boolean): HealthProbe {
  return () => {
    if (stopped()) return { ok: false, detail: 'stopping' };
    let flags: number;
    try {
      flags = parseInt(readFileSync(`/sys/class/net/${ifname}/flags`, 'utf8'), 16);
    } catch {
      return { ok: false, detail: `interface ${ifname} does not exist` };
    }
    if ((flags & 0x1) === 0) return { ok: false, detail: `interface ${ifname} is down` };
    if (!hasPrivateKey()) return { ok: false, detail: 'no private key configured' };
    return { ok: true, detail: 'up' };
  };
}

/** The running server. */
export class MetricsServer {
  readonly #server: http.Server;
  /** The bound address. */
  readonly address: ListenAddress;

  private constructor(server: http.Server, address: ListenAddress) {
    this.#server = server;
    this.address = address;
  }

  /** `http://host:port` of the server. */
  get url(): string {
    return `http://${formatEndpoint(this.address)}`;
  }

  /**
   * Start listening.
   * @throws Error when the address cannot be bound
   */
  static async start(opts: MetricsServerOptions): Promise<MetricsServer> {
    const routes: Record<string, Route> = {
      '/metrics': async () => ({ type: opts.registry.contentType, body: await opts.registry.metrics() }),
      ...opts.routes,
    };
    const server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0]!;
      const send = (status: number, type: string, body: string) =>
        res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'content-security-policy': CSP }).end(body);
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('allow', 'GET, HEAD');
        return send(405, 'text/plain; charset=utf-8', 'read-only: use GET\n');
      }
      if (path === '/healthz') {
        void runHealth(opts.health).then((h) => send(h.status === 'ok' ? 200 : 503, 'application/json', JSON.stringify(h) + '\n'));
        return;
      }
      const route = routes[path];
      if (route === undefined) return send(404, 'text/plain; charset=utf-8', `no such page ${path}; try /metrics, /healthz${opts.routes ? ', /' : ''}\n`);
      void (async () => route())().then(
        (r) => send(200, r.type, r.body),
        (e: unknown) => {
          opts.log?.('error', `metrics server: ${path}: ${(e as Error).message}`);
          send(500, 'text/plain; charset=utf-8', `${(e as Error).message}\n`);
        },
      );
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 15_000;
    server.on('clientError', (_e, sock) => sock.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new Error(`metrics: cannot listen on ${formatEndpoint(opts.listen)}: ${e.code === 'EADDRINUSE' ? 'address already in use' : e.message}`)),
      );
      server.listen({ host: opts.listen.host, port: opts.listen.port }, () => resolve());
    });
    // The server must never keep a stopping daemon alive.
    server.unref();
    const a = server.address() as AddressInfo;
    const s = new MetricsServer(server, { host: opts.listen.host, port: a.port });
    opts.log?.('info', `metrics on ${s.url}/metrics, health on ${s.url}/healthz`);
    return s;
  }

  /** Stop listening and close open connections. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}

/** A running metrics server and the collectors it serves. */
export interface MetricsHandle {
  /** The server. */
  readonly server: MetricsServer;
  /** Stop serving and detach the collectors. */
  close(): Promise<void>;
}

/**
 * Start a {@link MetricsServer} for collectors that `detach` removes from
 * what they listen to; detaches also when the server cannot start.
 */
export async function serveMetrics(opts: MetricsServerOptions, detach: () => void): Promise<MetricsHandle> {
  let server: MetricsServer;
  try {
    server = await MetricsServer.start(opts);
  } catch (e) {
    detach();
    throw e;
  }
  return {
    server,
    close: async () => {
      detach();
      await server.close();
    },
  };
}
