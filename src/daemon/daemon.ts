/**
 * The userspace daemon: a {@link Runtime} (TUN + UDP + engine) served over the
 * UAPI socket, with the lifecycle of wireguard-go (exit on signals, on removal
 * of the socket, on deletion of the interface).
 * @module
 */

import { Runtime } from '../io/runtime.js';
import { runtimeLog, type Log } from '../log/logger.js';
import { logPeerEvents } from '../log/peer-events.js';
import type { ListenAddress } from '../util/listen-address.js';
import { applySet, Errno, UapiError, uapiGet } from '../uapi/protocol.js';
import { socketPath, UapiServer } from '../uapi/server.js';
// The configuration-file parser and the sync logic are imported by reload() when it runs:
// tsguard join and tsguard-wg start without them.

/** Logger signature used by the daemon (see src/log/logger.ts). */
export type DaemonLog = Log;

/** Options of {@link runDaemon}. */
export interface DaemonOptions {
  /** Called once with "READY" or "ERROR <message>" (readiness notification for the detaching parent). */
  notify?: (message: string) => void;
  /** Log sink. */
  log?: DaemonLog;
  /** Called when the daemon is up, with a handle to stop it (tests, embedding). */
  onStarted?: (handle: DaemonHandle) => void;
  /** Serve `/metrics` and `/healthz` here (`--metrics`, `TSGUARD_METRICS`). */
  metrics?: ListenAddress;
}

/** A running daemon. */
export interface DaemonHandle {
  /** The engine shell. */
  readonly runtime: Runtime;
  /** Stop: remove the socket and the interface. */
  stop(reason: string): void;
}

/**
 * Run the daemon for `ifname` until it is told to stop. Resolves with the
 * process exit code.
 */
export async function runDaemon(ifname: string, opts: DaemonOptions = {}): Promise<number> {
  const log: DaemonLog = opts.log ?? (() => undefined);
  const notify = opts.notify ?? (() => undefined);
  let runtime: Runtime;
  let stopping = false;
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => (resolveDone = r));
  let server: UapiServer | null = null;
  let metrics: { close(): Promise<void> } | null = null;

  const stop = (reason: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    log('info', `shutting down: ${reason}`);
    const s = server;
    void (async () => {
      try {
        await metrics?.close();
        await s?.close();
      } finally {
        runtime?.close();
        resolveDone(code);
      }
    })();
  };

  try {
    runtime = Runtime.start({
      ifname,
      listenPort: 0,
      log: runtimeLog(log),
      onFatal: (err) => stop(err.code === 'ELINKGONE' ? `interface ${ifname} was deleted` : `interface error: ${err.message}`),
    });
  } catch (e) {
    const msg = `cannot create interface ${ifname}: ${(e as Error).message}`;
    log('error', msg);
    notify(`ERROR ${msg}`);
    return 1;
  }

  try {
    server = await serveUapi(ifname, runtime, log);
  } catch (e) {
    const msg = `cannot serve UAPI for ${ifname}: ${(e as Error).message}`;
    log('error', msg);
    runtime.close();
    notify(`ERROR ${msg}`);
    return 1;
  }

  if (opts.metrics !== undefined) {
    try {
      const { serveDeviceMetrics } = await import('../metrics/daemon-metrics.js');
      metrics = await serveDeviceMetrics({ listen: opts.metrics, ifname, runtime, stopped: () => stopping, log });
    } catch (e) {
      const msg = (e as Error).message;
      log('error', msg);
      await server.close();
      runtime.close();
      notify(`ERROR ${msg}`);
      return 1;
    }
  }
  logPeerEvents(runtime.device, log);
  server.onRemoved(() => stop('UAPI socket removed'));
  const onSignal = (sig: NodeJS.Signals) => stop(`received ${sig}`);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // SIGHUP: re-apply the configuration file "tsguard up" started us with, changing only what differs.
  const onHup = () => {
    const file = process.env.TSGUARD_CONFIG;
    if (!file) return log('error', 'SIGHUP ignored: no configuration file (started without TSGUARD_CONFIG)');
    void reload(file, runtime, log);
  };
  process.on('SIGHUP', onHup);
  log('info', `interface ${ifname} up, UAPI on ${socketPath(ifname)}, UDP port ${runtime.listenPort}`);
  opts.onStarted?.({ runtime, stop });
  notify('READY');
  const code = await done;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.off('SIGHUP', onHup);
  return code;
}

/** Serve the UAPI of a running {@link Runtime} on the interface's socket. */
export function serveUapi(ifname: string, runtime: Runtime, log: DaemonLog): Promise<UapiServer> {
  return UapiServer.listen(socketPath(ifname), {
    device: runtime.device,
    listenPort: () => runtime.listenPort,
    setListenPort: (port) => {
      try {
        runtime.setListenPort(port);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new UapiError(code === 'EADDRINUSE' ? Errno.EADDRINUSE : Errno.EIO, `listen_port ${port}: ${(e as Error).message}`);
      }
    },
    setFwmark: (mark) => runtime.setFwmark(mark),
    afterChange: () => runtime.batch(() => undefined),
    log: (m) => log('error', m),
  });
}

/** Apply `file` to the running device like `tsguard syncconf`; errors are logged, the device is left as it was. */
async function reload(file: string, runtime: Runtime, log: DaemonLog): Promise<void> {
  try {
    const [{ loadDesired }, { parseGetReply }, { syncLines }] = await Promise.all([
      import('../config/load.js'),
      import('../uapi/client.js'),
      import('../uapi/sync.js'),
    ]);
    const desired = await loadDesired(file);
    runtime.batch(() => {
      const current = parseGetReply(uapiGet(runtime.device, runtime.listenPort));
      const lines = syncLines(current, desired);
      applySet(
        { device: runtime.device, setListenPort: (p) => runtime.setListenPort(p), setFwmark: (m) => runtime.setFwmark(m) },
        lines,
      );
      log('info', `reloaded ${file}: ${lines.length} change line(s)`);
    });
  } catch (e) {
    log('error', `reload of ${file} failed, nothing changed: ${(e as Error).message}`);
  }
}
