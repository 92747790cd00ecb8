/**
 * The registry side of `tsguard hub …`: the `--registry URL` and
 * `--registry-password-file PATH` flags every hub command takes, opening the
 * registry they name, telling a running hub to apply a change at once (over
 * its control socket, before the command returns), and `hub agent rekey`.
 * @module
 */

import net from 'node:net';
import type { Values } from './args.js';
import { hubControlPath } from '../hub/hub.js';
import type { Registry } from '../hub/registry/index.js';

/** The registry flags of a command line. */
export function registryFlags(v: Values): { registry?: string; registryPasswordFile?: string } {
  return {
    ...(typeof v.registry === 'string' ? { registry: v.registry } : {}),
    ...(typeof v['registry-password-file'] === 'string' ? { registryPasswordFile: v['registry-password-file'] } : {}),
  };
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
