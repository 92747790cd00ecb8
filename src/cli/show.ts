/**
 * `tsguard show`: the output formats of `wg show` (pretty and dump) from a
 * UAPI device state.
 * @module
 */

import { isZeroKey, keyToBase64 } from '../crypto/keys.js';
import { getCrypto } from '../crypto/index.js';
import type { UapiDeviceState, UapiPeerState } from '../uapi/client.js';

function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

/** "1 hour, 2 minutes, 3 seconds ago" as wg prints it. */
export function formatAgo(sec: number, nowSec: number): string {
  let left = Math.max(0, nowSec - sec);
  if (left === 0) return 'Now';
  const parts: string[] = [];
  const units: [number, string][] = [
    [365 * 24 * 3600, 'year'],
    [24 * 3600, 'day'],
    [3600, 'hour'],
    [60, 'minute'],
    [1, 'second'],
  ];
  for (const [size, name] of units) {
    const n = Math.floor(left / size);
    if (n > 0) {
      parts.push(plural(n, name));
      left -= n * size;
    }
  }
  return parts.join(', ') + ' ago';
}

/** Bytes with binary units as wg prints them. */
export function formatBytes(b: number): string {
  if (b < 1024) return `${b} B`;
  if (b < 1024 ** 2) return `${(b / 1024).toFixed(2)} KiB`;
  if (b < 1024 ** 3) return `${(b / 1024 ** 2).toFixed(2)} MiB`;
  if (b < 1024 ** 4) return `${(b / 1024 ** 3).toFixed(2)} GiB`;
  return `${(b / 1024 ** 4).toFixed(2)} TiB`;
}

function sortedPeers(state: UapiDeviceState): UapiPeerState[] {
  // wg sorts by latest handshake, most recent first (never-handshaked last, stable).
  return [...state.peers].sort((a, b) => b.lastHandshakeSec - a.lastHandshakeSec || b.lastHandshakeNsec - a.lastHandshakeNsec);
}

/** The pretty `wg show IFNAME` output (without colours). */
export function formatShow(ifname: string, state: UapiDeviceState, nowSec = Math.floor(Date.now() / 1000)): string {
  const lines: string[] = [`interface: ${ifname}`];
  if (state.privateKey !== null) {
    lines.push(`  public key: ${keyToBase64(getCrypto().publicKey(state.privateKey))}`);
    lines.push('  private key: (hidden)');
  }
  if (state.listenPort) lines.push(`  listening port: ${state.listenPort}`);
  if (state.fwmark) lines.push(`  fwmark: 0x${state.fwmark.toString(16)}`);
  for (const p of sortedPeers(state)) {
    lines.push('');
    lines.push(`peer: ${keyToBase64(p.publicKey)}`);
    if (!isZeroKey(p.presharedKey)) lines.push('  preshared key: (hidden)');
    if (p.endpoint) lines.push(`  endpoint: ${p.endpoint}`);
    lines.push(`  allowed ips: ${p.allowedIps.length ? p.allowedIps.join(', ') : '(none)'}`);
    if (p.lastHandshakeSec) lines.push(`  latest handshake: ${formatAgo(p.lastHandshakeSec, nowSec)}`);
    if (p.rxBytes || p.txBytes) lines.push(`  transfer: ${formatBytes(p.rxBytes)} received, ${formatBytes(p.txBytes)} sent`);
    if (p.persistentKeepalive) lines.push(`  persistent keepalive: every ${plural(p.persistentKeepalive, 'second')}`);
  }
  return lines.join('\n') + '\n';
}

/** The tab-separated `wg show IFNAME dump` output. */
export function formatDump(state: UapiDeviceState, ifname?: string): string {
  const pre = ifname === undefined ? '' : `${ifname}\t`;
  const priv = state.privateKey;
  const lines = [
    pre +
      [
        priv ? keyToBase64(priv) : '(none)',
        priv ? keyToBase64(getCrypto().publicKey(priv)) : '(none)',
        String(state.listenPort),
        state.fwmark ? `0x${state.fwmark.toString(16)}` : 'off',
      ].join('\t'),
  ];
  for (const p of sortedPeers(state)) {
    lines.push(
      pre +
        [
          keyToBase64(p.publicKey),
          isZeroKey(p.presharedKey) ? '(none)' : keyToBase64(p.presharedKey),
          p.endpoint ?? '(none)',
          p.allowedIps.length ? p.allowedIps.join(',') : '(none)',
          String(p.lastHandshakeSec),
          String(p.rxBytes),
          String(p.txBytes),
          p.persistentKeepalive ? String(p.persistentKeepalive) : 'off',
        ].join('\t'),
    );
  }
  return lines.join('\n') + '\n';
}
