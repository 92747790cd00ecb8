/**
 * The registry side of `tsguard hub …`: the `--registry URL` and
 * `--registry-password-file PATH` flags every hub command takes, opening the
 * registry they name, telling a running hub to apply a change at once (over
 * its control socket, before the command returns), and `hub agent rekey`.
 * @module
 */

import net from 'node:net';
import { hubControlPath } from '../hub/hub.js';
import { Registry } from '../hub/registry/index.js';

/** The `parseArgs` options of this module. */
export const REGISTRY_OPTIONS = {
  registry: { type: 'string' },
  'registry-password-file': { type: 'string' },
} as const;

/** Usage lines of the flags. */
export const REGISTRY_USAGE = `  Every command takes --registry postgresql://USER@HOST[:PORT]/DB (or ?host=/socket/dir) to use a
  registry shared by several hubs instead of the SQLite file in --data-dir; the password comes from
  --registry-password-file PATH, PGPASSWORD or PGPASSFILE / ~/.pgpass, never from the URL.`;

/** CLI processes may wait longer for a lock than the hub does. */
const CLI_STORE_TIMEOUT_MS = 5000;

/** The registry flags of a command line. */
export function registryFlags(v: Record<string, unknown>): { registry?: string; registryPasswordFile?: string } {
  return {
    ...(typeof v.registry === 'string' ? { registry: v.registry } : {}),
    ...(typeof v['registry-password-file'] === 'string' ? { registryPasswordFile: v['registry-password-file'] } : {}),
  };
}

/** Open the registry the flags name (the SQLite file in `dataDir` by default). */
export function openRegistry(dataDir: string, v: Record<string, unknown>): Promise<Registry> {
  const f = registryFlags(v);
  return Registry.open(dataDir, {
    timeoutMs: CLI_STORE_TIMEOUT_MS,
    // A CLI process carries no packets: SQLite may block it (no worker thread to start).
    sqliteOnThisThread: true,
    ...(f.registry !== undefined ? { url: f.registry } : {}),
    ...(f.registryPasswordFile !== undefined ? { passwordFile: f.registryPasswordFile } : {}),
  });
}

/**
 * Ask the hub running on `dataDir` to apply the registry's changes now and
 * wait until it has (so a device added by the CLI can connect at once).
 * Resolves false when no hub runs there; a hub that does not answer within
 * `timeoutMs` picks the change up on its next poll.
 */
export function notifyHub(dataDir: string, timeoutMs = 5000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(hubControlPath(dataDir));
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(false);
    }, timeoutMs);
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write('sync\n'));
    sock.on('data', (d: string) => (buf += d));
    sock.on('end', () => {
      clearTimeout(timer);
      resolve(buf.includes('"ok":true'));
    });
    sock.on('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/** `hub agent rekey NAME`: the agent's next registration may change its key without its credential. */
export async function agentRekey(reg: Registry, name: string): Promise<string> {
  const rec = await reg.allowRekey(name);
  return `agent ${rec.name} may now register once with a new key and without its credential; it keeps ${rec.ipv4} and gets a new credential\n`;
}
