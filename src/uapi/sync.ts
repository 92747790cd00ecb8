/**
 * `syncconf`: the UAPI `set` lines that take a running device to a
 * configuration file while touching only what differs. Peers that did not
 * change get no line at all, so their sessions and traffic are undisturbed.
 * @module
 */

import { bytesEqual, keyToBase64, keyToHex } from '../crypto/keys.js';
import { formatEndpoint, parseEndpoint } from '../device/types.js';
import { formatPrefix, maskPrefix, parsePrefix, type Prefix } from '../routing/ip.js';
import type { UapiDeviceState } from './client.js';

/** What the sync needs from a parsed configuration (endpoints already resolved to IPs). */
export interface DesiredConfig {
  /** Private key, if the file sets one. */
  privateKey?: Uint8Array;
  /** Listen port, if the file sets one. */
  listenPort?: number;
  /** Firewall mark, if the file sets one (0 = off). */
  fwmark?: number;
  /** Every peer of the file. */
  peers: {
    publicKey: Uint8Array;
    presharedKey?: Uint8Array;
    /** `ip:port` / `[ip]:port`, resolved. */
    endpoint?: string;
    persistentKeepalive?: number;
    /** Allowed IPs (host bits are ignored). */
    allowedIps: readonly Prefix[];
  }[];
}

/** Canonical text (host bits masked), de-duplicated, in the given order. */
function canonicalPrefixes(list: readonly (Prefix | string)[]): string[] {
  return [...new Set(list.map((c) => formatPrefix(typeof c === 'string' ? parsePrefix(c) : maskPrefix(c))))];
}

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The set lines (without `set=1` and the final blank line); empty when nothing differs. */
export function syncLines(current: UapiDeviceState, desired: DesiredConfig): string[] {
  const out: string[] = [];
  if (desired.privateKey !== undefined && (current.privateKey === null || !bytesEqual(current.privateKey, desired.privateKey))) {
    out.push(`private_key=${keyToHex(desired.privateKey)}`);
  }
  if (desired.listenPort !== undefined && desired.listenPort !== current.listenPort) out.push(`listen_port=${desired.listenPort}`);
  if (desired.fwmark !== undefined && desired.fwmark !== current.fwmark) out.push(`fwmark=${desired.fwmark}`);

  const wanted = new Map(desired.peers.map((p) => [keyToBase64(p.publicKey), p]));
  for (const cur of current.peers) {
    if (!wanted.has(keyToBase64(cur.publicKey))) out.push(`public_key=${keyToHex(cur.publicKey)}`, 'remove=true');
  }
  const have = new Map(current.peers.map((p) => [keyToBase64(p.publicKey), p]));
  for (const [id, want] of wanted) {
    const cur = have.get(id);
    const lines: string[] = [];
    const psk = want.presharedKey ?? new Uint8Array(32);
    if (cur === undefined || !bytesEqual(cur.presharedKey, psk)) lines.push(`preshared_key=${keyToHex(psk)}`);
    if (want.endpoint !== undefined) {
      const ep = formatEndpoint(parseEndpoint(want.endpoint));
      if (cur?.endpoint !== ep) lines.push(`endpoint=${ep}`);
    }
    const ka = want.persistentKeepalive ?? 0;
    if ((cur?.persistentKeepalive ?? 0) !== ka || (cur === undefined && ka > 0)) lines.push(`persistent_keepalive_interval=${ka}`);
    const ips = canonicalPrefixes(want.allowedIps);
    if (cur === undefined || !sameList(canonicalPrefixes(cur.allowedIps).sort(), [...ips].sort())) {
      lines.push('replace_allowed_ips=true', ...ips.map((c) => `allowed_ip=${c}`));
    }
    if (cur === undefined || lines.length > 0) out.push(`public_key=${keyToHex(want.publicKey)}`, ...lines);
  }
  return out;
}
