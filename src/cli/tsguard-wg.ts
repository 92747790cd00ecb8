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
import { runDaemon, validateIfname } from '../daemon/daemon.js';
import { packageVersion } from './version.js';

const USAGE = `Usage: tsguard-wg [-f|--foreground] INTERFACE-NAME

Creates the TUN interface INTERFACE-NAME and serves the WireGuard userspace API on
/var/run/wireguard/INTERFACE-NAME.sock, so that "wg" and "wg-quick" can configure it:

  tsguard-wg wg0 && wg setconf wg0 wg0.conf
  WG_QUICK_USERSPACE_IMPLEMENTATION=tsguard-wg wg-quick up ./wg0.conf

Without -f the daemon detaches and this command returns once both exist.
It stops on SIGINT/SIGTERM, when the socket is removed, or when the interface is deleted.
Environment: LOG_LEVEL=verbose|error|silent; TSGUARD_LOG_FILE=PATH (logs of a detached daemon).`;

async function main(argv: string[]): Promise<number> {
  let foreground = process.env.WG_PROCESS_FOREGROUND === '1';
  const rest: string[] = [];
  for (const a of argv) {
    if (a === '-f' || a === '--foreground') foreground = true;
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
  const problem = validateIfname(ifname);
  if (problem !== null) {
    process.stderr.write(`tsguard-wg: ${problem}\n`);
    return 2;
  }
  const readyFd = process.env.TSGUARD_WG_READY_FD ? Number(process.env.TSGUARD_WG_READY_FD) : null;
  if (foreground || readyFd !== null) {
    await loadCrypto();
    const notify = (msg: string) => {
      if (readyFd === null) return;
      try {
        writeSync(readyFd, msg + '\n');
        closeSync(readyFd);
      } catch {
        // parent gone
      }
    };
    return runDaemon(ifname, { notify, log: logger(readyFd !== null) });
  }
  return detach(ifname);
}

function logger(detached: boolean): (level: 'error' | 'info' | 'debug', msg: string) => void {
  const level = process.env.LOG_LEVEL ?? 'error';
  const rank = { silent: 0, error: 1, info: 2, verbose: 3, debug: 3 }[level] ?? 1;
  const file = process.env.TSGUARD_LOG_FILE;
  const out = detached ? (file ? createWriteStream(file, { flags: 'a', mode: 0o600 }) : null) : process.stderr;
  return (lvl, msg) => {
    const r = lvl === 'error' ? 1 : lvl === 'info' ? 2 : 3;
    if (r > rank || out === null) return;
    out.write(`${new Date().toISOString()} ${lvl.toUpperCase()}: ${msg}\n`);
  };
}

/** Start a detached copy in the foreground and wait for it to report readiness. */
function detach(ifname: string): Promise<number> {
  return new Promise((resolve) => {
    const script = fileURLToPath(import.meta.url);
    const child = spawn(process.execPath, [script, ifname], {
      detached: true,
      stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
      env: { ...process.env, TSGUARD_WG_READY_FD: '3' },
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
