/**
 * Configuration-file glue for the CLI: a file (wg or wg-quick format) to the
 * desired state of a device, and a device state back to a file.
 * @module
 */

import { readFile } from 'node:fs/promises';
import { keyToBase64, isZeroKey } from '../crypto/keys.js';
import { formatEndpoint } from '../device/types.js';
import { parseConfig, type WgConfig } from '../config/wgquick.js';
import { resolveEndpoint } from '../os/resolve.js';
import type { UapiDeviceState } from '../uapi/client.js';
import type { DesiredConfig } from '../uapi/sync.js';

/** Read and parse a configuration file (wg-quick keys allowed and ignored by the device). */
export async function readConfig(file: string): Promise<WgConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(
      code === 'ENOENT' ? `${file}: no such file` : code === 'EACCES' ? `${file}: permission denied` : `${file}: ${(e as Error).message}`,
    );
  }
  return parseConfig(text, file, 'wg-quick');
}

/** Resolve a parsed configuration's endpoints (host names via DNS) into a {@link DesiredConfig}. */
export async function toDesired(cfg: WgConfig): Promise<DesiredConfig> {
  const peers: DesiredConfig['peers'] = [];
  for (const p of cfg.peers) {
    const ep = p.endpoint ? formatEndpoint(await resolveEndpoint(p.endpoint.host, p.endpoint.port)) : undefined;
    peers.push({
      publicKey: p.publicKey,
      presharedKey: p.presharedKey,
      endpoint: ep,
      persistentKeepalive: p.persistentKeepalive,
      allowedIps: p.allowedIps,
    });
  }
  const i = cfg.interface;
  return { privateKey: i.privateKey, listenPort: i.listenPort, fwmark: i.fwmark, peers };
}

/** {@link readConfig} then {@link toDesired}. */
export async function loadDesired(file: string): Promise<DesiredConfig> {
  return toDesired(await readConfig(file));
}

/** `wg showconf` output for a device state. */
export function showconf(state: UapiDeviceState): string {
  const out = ['[Interface]'];
  if (state.listenPort) out.push(`ListenPort = ${state.listenPort}`);
  if (state.fwmark) out.push(`FwMark = 0x${state.fwmark.toString(16)}`);
  if (state.privateKey) out.push(`PrivateKey = ${keyToBase64(state.privateKey)}`);
  for (const p of state.peers) {
    out.push('', '[Peer]', `PublicKey = ${keyToBase64(p.publicKey)}`);
    if (!isZeroKey(p.presharedKey)) out.push(`PresharedKey = ${keyToBase64(p.presharedKey)}`);
    if (p.allowedIps.length) out.push(`AllowedIPs = ${p.allowedIps.join(', ')}`);
    if (p.endpoint) out.push(`Endpoint = ${p.endpoint}`);
    if (p.persistentKeepalive) out.push(`PersistentKeepalive = ${p.persistentKeepalive}`);
  }
  return out.join('\n') + '\n';
}
