/**
 * `tsguard-wg --metrics` / `TSGUARD_METRICS`: the metrics and readiness of
 * one daemon's device.
 * @module
 */

import promClient from 'prom-client';
import type { Runtime } from '../io/runtime.js';
import type { Log } from '../log/logger.js';
import type { ListenAddress } from '../util/listen-address.js';
import { registerDeviceMetrics } from './device-metrics.js';
import { interfaceProbe, serveMetrics, type MetricsHandle } from './server.js';

/**
 * Serve `/metrics` and `/healthz` for the device of `runtime` on `listen`.
 * Ready when the interface is up and a private key is set.
 */
export async function serveDeviceMetrics(opts: {
  listen: ListenAddress;
  ifname: string;
  runtime: Runtime;
  stopped: () => boolean;
  log?: Log;
}): Promise<MetricsHandle> {
  const registry = new promClient.Registry();
  const detach = registerDeviceMetrics(registry, { ifname: opts.ifname, device: opts.runtime.device });
  return serveMetrics(
    {
      listen: opts.listen,
      registry,
      health: { device: interfaceProbe(opts.ifname, () => opts.runtime.device.privateKey !== null, opts.stopped) },
      ...(opts.log ? { log: opts.log } : {}),
    },
    detach,
  );
}
