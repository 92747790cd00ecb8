#!/usr/bin/env node
/**
 * `tsguard-wg [-f|--foreground] IFNAME` — the userspace WireGuard daemon,
 * driven by `wg` and `wg-quick` through /var/run/wireguard/IFNAME.sock, like
 * wireguard-go. Without -f it detaches and returns once the interface and
 * the socket exist.
 * @module
 */

import { spawn } from 'node:child_process';
import { closeSync, createWriteStream, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadCrypto } from '../crypto/index.js';
import { loadNativeCrypto } from '../io/native.js';
import { runDaemon } from '../daemon/daemon.js';
import { packageVersion } from './version.js';
import { loggerFromEnv, type Logger } from '../log/logger.js';
import { ifnameProblem } from '../os/ifname.js';
import { parseListenAddress, type ListenAddress } from '../util/listen-address.js';

const USAGE = `Usage: tsguard-wg [-f|--foreground] [--metrics ADDR:PORT] [--log-format text|json] INTERFACE-NAME

Creates the TUN interface INTERFACE-NAME and serves the WireGuard userspace API on
/var/run/wireguard/INTERFACE-NAME.sock, so that "wg" and "wg-quick" can configure it:

  tsguard-wg wg0 && wg setconf wg0 wg0.conf
  WG_QUICK_USERSPACE_IMPLEMENTATION=tsguard-wg wg-quick up ./wg0.conf

Without -f the daemon detaches and this command returns once both exist.
It stops on SIGINT/SIGTERM, when the socket is removed, or when the interface is deleted.
--metrics serves Prometheus metrics on http://ADDR:PORT/metrics and readiness on /healthz
(200 once the interface is up with a private key, else 503).
Environment: LOG_LEVEL=silent|error|info|verbose|debug (default error; verbose logs peer events);
TSGUARD_LOG_FILE=PATH (logs of a detached daemon); TSGUARD_METRICS=ADDR:PORT (as --metrics);
TSGUARD_LOG_FORMAT=text|json (as --log-format).`;

async function main(argv: string[]): Promise<number> {
  let foreground = process.env.WG_PROCESS_FOREGROUND === '1';
  const rest: string[] = [];
  let metricsText = process.env.TSGUARD_METRICS || undefined;
  let logFormat: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const flag = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    if (flag === '--metrics' || flag === '--log-format') {
      const v = eq > 0 && a.startsWith('--') ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) {
        process.stderr.write(`tsguard-wg: ${flag} needs a value\n`);
        return 2;
      }
      if (flag === '--metrics') metricsText = v;
      else logFormat = v;
    } else if (a === '-f' || a === '--foreground') foreground = true;
    else if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE + '\n');
      return 0;
    } else if (a === '--version' || a === '-v') {
      process.stdout.write(`tsguard-wg ${packageVersion()} (userspace WireGuard in TypeScript)\n`);
      return 0;
    } else rest.push(a);
  }
  if (rest.length !== 1) {
    process.stderr.write(USAGE + '\n');
    return 2;
  }
  const ifname = rest[0]!;
  const problem = ifnameProblem(ifname);
  if (problem !== null) {
    process.stderr.write(`tsguard-wg: ${problem}\n`);
    return 2;
  }
  let metrics: ListenAddress | undefined;
  let log: Logger;
  try {
    if (metricsText !== undefined) metrics = parseListenAddress(metricsText, '--metrics');
    log = logger(process.env.TSGUARD_WG_READY_FD !== undefined, logFormat);
  } catch (e) {
    process.stderr.write(`tsguard-wg: ${(e as Error).message}\n`);
    return 2;
  }
  const readyFd = process.env.TSGUARD_WG_READY_FD ? Number(process.env.TSGUARD_WG_READY_FD) : null;
  if (foreground || readyFd !== null) {
    await loadCrypto(loadNativeCrypto);
    const notify = (msg: string) => {
      if (readyFd === null) return;
      try {
        writeSync(readyFd, msg + '\n');
        closeSync(readyFd);
      } catch {
        // parent gone
      }
    };
    return runDaemon(ifname, { notify, log, ...(metrics ? { metrics } : {}) });
  }
  // The detached copy gets the flags through its environment.
  return detach(ifname, { ...(metricsText !== undefined ? { TSGUARD_METRICS: metricsText } : {}), ...(logFormat !== undefined ? { TSGUARD_LOG_FORMAT: logFormat } : {}) });
}

/** The daemon's logger: stderr in the foreground; TSGUARD_LOG_FILE (or nothing) when detached. */
function logger(detached: boolean, format: string | undefined): Logger {
  const file = process.env.TSGUARD_LOG_FILE;
  const out = detached ? (file ? createWriteStream(file, { flags: 'a', mode: 0o600 }) : null) : process.stderr;
  return loggerFromEnv({ defaultLevel: 'error', out, ...(format !== undefined ? { format } : {}) });
}

/** Start a detached copy in the foreground and wait for it to report readiness. */
function detach(ifname: string, env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    const script = fileURLToPath(import.meta.url);
    const child = spawn(process.execPath, [script, ifname], {
      detached: true,
      stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...env, TSGUARD_WG_READY_FD: '3' },
    });
    let msg = '';
    const pipe = child.stdio[3] as NodeJS.ReadableStream;
    pipe.setEncoding('utf8');
    pipe.on('data', (d: string) => (msg += d));
    let exited: number | null = null;
    child.on('exit', (code) => (exited = code ?? 1));
    pipe.on('end', () => {
      const line = msg.trim();
      if (line === 'READY') {
        child.unref();
        resolve(0);
        return;
      }
      process.stderr.write(`tsguard-wg: ${line.replace(/^ERROR /, '') || `daemon exited (code ${exited ?? '?'}) before it was ready`}\n`);
      resolve(1);
    });
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0 || process.env.TSGUARD_WG_READY_FD === undefined) process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`tsguard-wg: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
