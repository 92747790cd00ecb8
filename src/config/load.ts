/**
 * Configuration files and running devices: a file (wg or wg-quick format)
 * to the desired state of a device ({@link loadDesired}, for `tsguard
 * syncconf`, `up` and the daemon's SIGHUP reload), and a device's state back
 * to a configuration ({@link configFromState}, for `showconf` and SaveConfig).
 * @module
 */

import { readFile } from 'node:fs/promises';
import { isZeroKey } from '../crypto/keys.js';
import { formatEndpoint } from '../device/types.js';
import { resolveEndpoint } from '../os/resolve.js';
import { parsePrefix } from '../routing/ip.js';
import type { UapiDeviceState } from '../uapi/client.js';
import type { DesiredConfig } from '../uapi/sync.js';
import { emptyInterface, parseConfig, serializeConfig, type InterfaceConfig, type WgConfig } from './wgquick.js';

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

/**
 * A running device's state as a configuration: its keys, port, fwmark and
 * peers (zero values left out, as `wg showconf` does), with the wg-quick
 * settings of `base` (SaveConfig keeps the file's Address, DNS, hooks …).
 */
export function configFromState(state: UapiDeviceState, base: InterfaceConfig = emptyInterface()): WgConfig {
  return {
    interface: {
      ...base,
      privateKey: state.privateKey ?? undefined,
      listenPort: state.listenPort || undefined,
      fwmark: state.fwmark || undefined,
    },
    peers: state.peers.map((p, i) => {
      // UAPI text: `1.2.3.4:5` or `[v6(%scope)]:5`.
      const m = p.endpoint ? /^\[?(.*?)\]?:(\d+)$/.exec(p.endpoint) : null;
      return {
        publicKey: p.publicKey,
        presharedKey: isZeroKey(p.presharedKey) ? undefined : p.presharedKey,
        allowedIps: p.allowedIps.map((a) => parsePrefix(a)),
        endpoint: m ? { host: m[1]!, port: Number(m[2]) } : undefined,
        persistentKeepalive: p.persistentKeepalive || undefined,
        line: i,
      };
    }),
  };
}

/** `wg showconf` output for a device state. */
export function showconf(state: UapiDeviceState): string {
  return serializeConfig(configFromState(state), 'wg');
}
