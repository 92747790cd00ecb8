/**
 * `tsguard show`: the output of `wg show` byte for byte, from UAPI device
 * states: the pretty form (coloured on a terminal, or as WG_COLOR_MODE
 * says), `dump` and every single-field selector.
 * @module
 */

import { isZeroKey, keyToBase64 } from '../crypto/keys.js';
import { getCrypto } from '../crypto/index.js';
import type { UapiDeviceState, UapiPeerState } from '../uapi/client.js';

/** The selectors of `wg show IFNAME SELECTOR`. */
export const SHOW_SELECTORS = [
  'public-key',
  'private-key',
  'listen-port',
  'fwmark',
  'peers',
  'preshared-keys',
  'endpoints',
  'allowed-ips',
  'latest-handshakes',
  'persistent-keepalive',
  'transfer',
  'dump',
] as const;

/** One of {@link SHOW_SELECTORS}. */
export type ShowSelector = (typeof SHOW_SELECTORS)[number];

/** True for a selector name. */
export function isShowSelector(s: string): s is ShowSelector {
  return (SHOW_SELECTORS as readonly string[]).includes(s);
}

/** Terminal styling: the escape codes wg uses, or nothing. */
interface Style {
  reset: string;
  bold: string;
  green: string;
  yellow: string;
  cyan: string;
  red: string;
}

const COLOUR: Style = { reset: '\x1b[0m', bold: '\x1b[1m', green: '\x1b[32m', yellow: '\x1b[33m', cyan: '\x1b[36m', red: '\x1b[31m' };
const PLAIN: Style = { reset: '', bold: '', green: '', yellow: '', cyan: '', red: '' };

/** wg's colour rule: WG_COLOR_MODE=always|never, otherwise colours when stdout is a terminal. */
export function colourWanted(env: NodeJS.ProcessEnv = process.env, isTty = process.stdout.isTTY === true): boolean {
  if (env.WG_COLOR_MODE === 'always') return true;
  if (env.WG_COLOR_MODE === 'never') return false;
  return isTty;
}

/** Options of {@link formatShow}. */
export interface PrettyOptions {
  /** Current Unix time in seconds. */
  nowSec?: number;
  /** Use terminal colours. */
  colour?: boolean;
  /** Print the private and preshared keys instead of "(hidden)" (wg's WG_HIDE_KEYS=never). */
  showKeys?: boolean;
}

function prettyTime(left: number, s: Style): string {
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
    left -= n * size;
    if (n > 0) parts.push(`${n} ${s.cyan}${name}${n === 1 ? '' : 's'}${s.reset}`);
  }
  return parts.join(', ');
}

/** "1 hour, 2 minutes ago" as wg prints a handshake time (plain text unless `colour`). */
export function formatAgo(sec: number, nowSec: number, colour = false): string {
  const s = colour ? COLOUR : PLAIN;
  if (nowSec === sec) return 'Now';
  if (nowSec < sec) return `(${s.red}System clock wound backward; connection problems may ensue.${s.reset})`;
  return `${prettyTime(nowSec - sec, s)} ago`;
}

/** `x` with two decimals as C's printf("%.2f") rounds it (ties to even, on the exact binary value). */
function fixed2(x: number): string {
  const t = x * 200;
  if (Number.isInteger(t) && t % 2 === 1) {
    const n = (t - 1) / 2;
    return ((n % 2 === 0 ? n : n + 1) / 100).toFixed(2);
  }
  return x.toFixed(2);
}

/** Bytes with binary units as wg prints them (plain text unless `colour`). */
export function formatBytes(b: number, colour = false): string {
  const s = colour ? COLOUR : PLAIN;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  if (b < 1024) return `${b} ${s.cyan}B${s.reset}`;
  let i = 0;
  let v = b / 1024;
  while (i < units.length - 1 && b >= 1024 ** (i + 2)) v = b / 1024 ** (++i + 1);
  return `${fixed2(v)} ${s.cyan}${units[i]}${s.reset}`;
}

/** wg's order for the pretty form: most recent handshake first, never-handshaked last (stable). */
function sortedPeers(state: UapiDeviceState): UapiPeerState[] {
  const never = (p: UapiPeerState) => p.lastHandshakeSec === 0 && p.lastHandshakeNsec === 0;
  return [...state.peers].sort((a, b) => {
    if (never(a) !== never(b)) return never(a) ? 1 : -1;
    return b.lastHandshakeSec - a.lastHandshakeSec || b.lastHandshakeNsec - a.lastHandshakeNsec;
  });
}

function publicKeyOf(state: UapiDeviceState): string | null {
  return state.privateKey ? keyToBase64(getCrypto().publicKey(state.privateKey)) : null;
}

/** The pretty `wg show IFNAME` output. */
export function formatShow(ifname: string, state: UapiDeviceState, opts: PrettyOptions = {}): string {
  const s = opts.colour ? COLOUR : PLAIN;
  const now = opts.nowSec ?? Math.floor(Date.now() / 1000);
  const masked = (k: Uint8Array) => (opts.showKeys ? keyToBase64(k) : '(hidden)');
  const field = (name: string, value: string) => `  ${s.bold}${name}${s.reset}: ${value}\n`;
  let out = `${s.reset}${s.green}${s.bold}interface${s.reset}: ${s.green}${ifname}${s.reset}\n`;
  const pub = publicKeyOf(state);
  if (pub !== null) out += field('public key', pub) + field('private key', masked(state.privateKey!));
  if (state.listenPort) out += field('listening port', String(state.listenPort));
  if (state.fwmark) out += field('fwmark', `0x${state.fwmark.toString(16)}`);
  const peers = sortedPeers(state);
  if (peers.length) out += '\n';
  peers.forEach((p, i) => {
    out += `${s.yellow}${s.bold}peer${s.reset}: ${s.yellow}${keyToBase64(p.publicKey)}${s.reset}\n`;
    if (!isZeroKey(p.presharedKey)) out += field('preshared key', masked(p.presharedKey));
    if (p.endpoint) out += field('endpoint', p.endpoint);
    const ips = p.allowedIps.map((c) => {
      const slash = c.lastIndexOf('/');
      return `${c.slice(0, slash)}${s.cyan}/${s.reset}${c.slice(slash + 1)}`;
    });
    out += field('allowed ips', ips.length ? ips.join(', ') : '(none)');
    if (p.lastHandshakeSec) out += field('latest handshake', formatAgo(p.lastHandshakeSec, now, opts.colour));
    if (p.rxBytes || p.txBytes) out += field('transfer', `${formatBytes(p.rxBytes, opts.colour)} received, ${formatBytes(p.txBytes, opts.colour)} sent`);
    if (p.persistentKeepalive) out += field('persistent keepalive', `every ${prettyTime(p.persistentKeepalive, s)}`);
    if (i < peers.length - 1) out += '\n';
  });
  return out;
}

/** The tab-separated `wg show IFNAME dump` output (`ifname` prefixes every line, as for `show all dump`). */
export function formatDump(state: UapiDeviceState, ifname?: string): string {
  return formatSelector(state, 'dump', ifname);
}

const orNone = (k: Uint8Array | null) => (k === null || isZeroKey(k) ? '(none)' : keyToBase64(k));

/**
 * `wg show IFNAME SELECTOR` (or, with `ifname`, the lines of `wg show all
 * SELECTOR`, each prefixed with the interface name and a tab). Peers in the
 * daemon's order, as wg prints them.
 */
export function formatSelector(state: UapiDeviceState, selector: ShowSelector, ifname?: string): string {
  const pre = ifname === undefined ? '' : `${ifname}\t`;
  const pub = publicKeyOf(state);
  const fwmark = state.fwmark ? `0x${state.fwmark.toString(16)}` : 'off';
  const perPeer = (f: (p: UapiPeerState, key: string) => string) => state.peers.map((p) => `${pre}${keyToBase64(p.publicKey)}\t${f(p, keyToBase64(p.publicKey))}\n`).join('');
  switch (selector) {
    case 'public-key':
      return `${pre}${pub ?? '(none)'}\n`;
    case 'private-key':
      return `${pre}${orNone(state.privateKey)}\n`;
    case 'listen-port':
      return `${pre}${state.listenPort}\n`;
    case 'fwmark':
      return `${pre}${fwmark}\n`;
    case 'peers':
      return state.peers.map((p) => `${pre}${keyToBase64(p.publicKey)}\n`).join('');
    case 'preshared-keys':
      return perPeer((p) => orNone(p.presharedKey));
    case 'endpoints':
      return perPeer((p) => p.endpoint ?? '(none)');
    case 'allowed-ips':
      return perPeer((p) => (p.allowedIps.length ? p.allowedIps.join(' ') : '(none)'));
    case 'latest-handshakes':
      return perPeer((p) => String(p.lastHandshakeSec));
    case 'transfer':
      return perPeer((p) => `${p.rxBytes}\t${p.txBytes}`);
    case 'persistent-keepalive':
      return perPeer((p) => (p.persistentKeepalive ? String(p.persistentKeepalive) : 'off'));
    case 'dump': {
      let out = `${pre}${orNone(state.privateKey)}\t${pub ?? '(none)'}\t${state.listenPort}\t${fwmark}\n`;
      out += perPeer((p) =>
        [
          orNone(p.presharedKey),
          p.endpoint ?? '(none)',
          p.allowedIps.length ? p.allowedIps.join(',') : '(none)',
          String(p.lastHandshakeSec),
          String(p.rxBytes),
          String(p.txBytes),
          p.persistentKeepalive ? String(p.persistentKeepalive) : 'off',
        ].join('\t'),
      );
      return out;
    }
  }
}
