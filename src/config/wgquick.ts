/**
 * WireGuard configuration files: parsing (the `wg setconf` format and the
 * wg-quick superset), serialization in `wg showconf` style and wg-quick's
 * mapping from an argument to a file and interface name.
 *
 * Errors are {@link ConfigError}s whose message is `FILE:LINE: what is wrong
 * (how to fix it)`. Private and preshared key values never appear in any
 * message.
 * @module
 */

import { isIPv4 } from 'node:net';
import { basename } from 'node:path';

import { keyFromBase64, keyToBase64, KeyFormatError } from '../crypto/keys.js';
import { ifnameProblem, isValidIfname } from '../os/ifname.js';
import { formatIp, formatPrefix, parseIp, parsePrefix, type Prefix } from '../routing/ip.js';

// ---------------------------------------------------------------------------
// Types

/** A `[Peer]` section. */
export interface PeerConfig {
  /** The peer's Curve25519 public key (32 bytes). */
  publicKey: Uint8Array;
  /** Optional symmetric preshared key (32 bytes). */
  presharedKey?: Uint8Array;
  /** Allowed source/destination prefixes, in file order, as written (host bits kept). */
  allowedIps: Prefix[];
  /** Endpoint; `host` is an IP literal (IPv6 without brackets) or a host name still to be resolved. */
  endpoint?: { host: string; port: number };
  /** Keepalive interval in seconds; 0 means explicitly off. */
  persistentKeepalive?: number;
  /** 1-based line of the `[Peer]` header in the source file (0 when not from a file). */
  line: number;
}

/** The `[Interface]` section, including the wg-quick additions. */
export interface InterfaceConfig {
  /** Curve25519 private key (32 bytes). */
  privateKey?: Uint8Array;
  /** UDP listen port (0 means pick one). */
  listenPort?: number;
  /** Firewall mark for outgoing packets; 0 means off. */
  fwmark?: number;
  /** wg-quick `Address`: addresses given to the interface (host bits kept: `10.0.0.1/24`). */
  addresses: Prefix[];
  /** wg-quick `DNS`: name server IP addresses. */
  dns: string[];
  /** wg-quick `DNS`: search domains (values that are not IP addresses). */
  dnsSearch: string[];
  /** wg-quick `MTU`. */
  mtu?: number;
  /** wg-quick `Table`: `off`, `auto`, a table number or a table name. */
  table?: string;
  /** wg-quick `PreUp` hook commands. */
  preUp: string[];
  /** wg-quick `PostUp` hook commands. */
  postUp: string[];
  /** wg-quick `PreDown` hook commands. */
  preDown: string[];
  /** wg-quick `PostDown` hook commands. */
  postDown: string[];
  /** wg-quick `SaveConfig`. */
  saveConfig: boolean;
}

/** A parsed configuration file. */
export interface WgConfig {
  /** The `[Interface]` section (defaults when the file has none). */
  interface: InterfaceConfig;
  /** The `[Peer]` sections in file order. */
  peers: PeerConfig[];
}

/** Which dialect a file is read or written in: `wg` (what `wg setconf` accepts) or `wg-quick`. */
export type ConfigMode = 'wg-quick' | 'wg';

/** A configuration file error; the message is `FILE:LINE: what is wrong (how to fix it)`. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  /** The file name as given to the parser. */
  readonly file: string;
  /** 1-based line number. */
  readonly line: number;
  /** The message without the `FILE:LINE: ` prefix. */
  readonly detail: string;

  /** Build an error for `file`:`line`. */
  constructor(file: string, line: number, detail: string) {
    super(`${file}:${line}: ${detail}`);
    this.file = file;
    this.line = line;
    this.detail = detail;
  }
}

/** Returns an empty interface section. */
export function emptyInterface(): InterfaceConfig {
  return { addresses: [], dns: [], dnsSearch: [], preUp: [], postUp: [], preDown: [], postDown: [], saveConfig: false };
}

// ---------------------------------------------------------------------------
// IP addresses

/** Address bytes of an IP literal, or undefined when `text` is not one (no scope ids). */
function ipBytes(text: string): { bytes: Uint8Array; family: 4 | 6 } | undefined {
  try {
    return parseIp(text);
  } catch {
    return undefined;
  }
}

/**
 * Canonical text of an IP literal (IPv6 compressed and lowercase), or
 * undefined when `text` is not an IPv4 or IPv6 address.
 */
function canonicalIp(text: string): string | undefined {
  const ip = ipBytes(text);
  return ip ? formatIp(ip.bytes) : undefined;
}

// ---------------------------------------------------------------------------
// Parsing

type Section = 'interface' | 'peer';

const INTERFACE_KEYS: Record<string, string> = {
  privatekey: 'PrivateKey',
  listenport: 'ListenPort',
  fwmark: 'FwMark',
};
const QUICK_KEYS: Record<string, string> = {
  address: 'Address',
  dns: 'DNS',
  mtu: 'MTU',
  table: 'Table',
  preup: 'PreUp',
  postup: 'PostUp',
  predown: 'PreDown',
  postdown: 'PostDown',
  saveconfig: 'SaveConfig',
};
const PEER_KEYS: Record<string, string> = {
  publickey: 'PublicKey',
  presharedkey: 'PresharedKey',
  allowedips: 'AllowedIPs',
  endpoint: 'Endpoint',
  persistentkeepalive: 'PersistentKeepalive',
};

/** Keys whose values accumulate when repeated; every other key may appear once per section. */
const REPEATABLE = new Set(['address', 'dns', 'allowedips', 'preup', 'postup', 'predown', 'postdown']);
/** Interface names in wg-quick's stricter character set (they come from file names). */
const WG_QUICK_NAME = { wgQuick: true } as const;
const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?$/;
const TABLE_NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

/** Show a key name from the file only when it cannot be a pasted secret. */
function showKey(key: string): string {
  return /^[A-Za-z][A-Za-z0-9_-]{0,23}$/.test(key) ? `"${key}"` : `(${key.length} characters, not shown)`;
}

function parseUint(value: string, max: number): number | undefined {
  if (!/^[0-9]{1,10}$/.test(value)) return undefined;
  const n = Number(value);
  return n <= max ? n : undefined;
}

/**
 * Parse a configuration file.
 *
 * @param text the file contents
 * @param file the file name used in error messages
 * @param mode `wg` rejects the wg-quick-only keys (Address, DNS, MTU, Table,
 *   PreUp, PostUp, PreDown, PostDown, SaveConfig), as `wg setconf` does.
 * @throws ConfigError on the first problem found.
 */
export function parseConfig(text: string, file: string, mode: ConfigMode): WgConfig {
  const iface = emptyInterface();
  const peers: PeerConfig[] = [];
  let section: Section | undefined;
  let peer: (Partial<PeerConfig> & { allowedIps: Prefix[]; line: number }) | undefined;
  /** Single-valued keys already seen in the current section → line. */
  let seen = new Map<string, number>();
  const ifaceSeen = new Map<string, number>();
  const peerKeys = new Map<string, number>();

  const finishPeer = (): void => {
    if (!peer) return;
    if (!peer.publicKey) {
      throw new ConfigError(file, peer.line, '[Peer] section has no PublicKey (add "PublicKey = <the peer\'s public key>")');
    }
    const b64 = keyToBase64(peer.publicKey);
    const first = peerKeys.get(b64);
    if (first !== undefined) {
      throw new ConfigError(
        file,
        peer.line,
        `peer ${b64} is already defined at line ${first} (merge the two [Peer] sections into one)`,
      );
    }
    peerKeys.set(b64, peer.line);
    const p: PeerConfig = { publicKey: peer.publicKey, allowedIps: peer.allowedIps, line: peer.line };
    if (peer.presharedKey) p.presharedKey = peer.presharedKey;
    if (peer.endpoint) p.endpoint = peer.endpoint;
    if (peer.persistentKeepalive !== undefined) p.persistentKeepalive = peer.persistentKeepalive;
    peers.push(p);
    peer = undefined;
  };

  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const err = (detail: string): ConfigError => new ConfigError(file, lineNo, detail);
    const hash = lines[i]!.indexOf('#');
    const stripped = (hash >= 0 ? lines[i]!.slice(0, hash) : lines[i]!).trim();
    if (stripped === '') continue;

    if (stripped.startsWith('[')) {
      const name = stripped.toLowerCase();
      finishPeer();
      if (name === '[interface]') {
        section = 'interface';
        seen = ifaceSeen;
      } else if (name === '[peer]') {
        section = 'peer';
        seen = new Map();
        peer = { allowedIps: [], line: lineNo };
      } else {
        const shown = /^\[[A-Za-z0-9 _-]{0,30}\]$/.test(stripped) ? ` ${stripped}` : '';
        throw err(`unknown section${shown} (sections are [Interface] and [Peer])`);
      }
      continue;
    }

    const eq = stripped.indexOf('=');
    if (eq < 0) throw err('line is not "Key = Value" (add the "=" or comment the line out with "#")');
    const rawKey = stripped.slice(0, eq).trim();
    const value = stripped.slice(eq + 1).trim();
    const lower = rawKey.toLowerCase();
    const ifaceName = INTERFACE_KEYS[lower];
    const quickName = QUICK_KEYS[lower];
    const peerName = PEER_KEYS[lower];
    const keyName = ifaceName ?? quickName ?? peerName;

    if (keyName === undefined) {
      if (rawKey === '') throw err('line has no key before "=" (expected "Key = Value")');
      throw err(`unknown key ${showKey(rawKey)} (check the spelling; see wg(8) and wg-quick(8) for the valid keys)`);
    }
    if (section === undefined) {
      throw err(`${keyName} is outside any section (put it under [Interface] or [Peer])`);
    }
    if (section === 'interface' && peerName) {
      throw err(`${keyName} is a [Peer] key, not an [Interface] key (move it into a [Peer] section)`);
    }
    if (section === 'peer' && (ifaceName || quickName)) {
      throw err(`${keyName} is an [Interface] key, not a [Peer] key (move it into the [Interface] section)`);
    }
    if (quickName && mode === 'wg') {
      throw err(
        `${keyName} is a wg-quick key that wg setconf does not accept (use "tsguard up" for wg-quick files, or remove it; "wg-quick strip" style output has none)`,
      );
    }

    if (!REPEATABLE.has(lower)) {
      const first = seen.get(lower);
      if (first !== undefined) {
        throw err(`${keyName} is given twice in this section (first at line ${first}; keep only one)`);
      }
      seen.set(lower, lineNo);
    }

    const isSecret = lower === 'privatekey' || lower === 'presharedkey';
    const needValue = !(lower === 'address' || lower === 'dns' || lower === 'allowedips');
    if (needValue && value === '') throw err(`${keyName} has no value (write "${keyName} = <value>" or remove the line)`);

    const key = (what: string): Uint8Array => {
      try {
        return keyFromBase64(value, what);
      } catch (e) {
        if (!(e instanceof KeyFormatError)) throw e;
        const shown = isSecret ? '' : value.length <= 60 ? ` "${value}"` : '';
        const hint = isSecret
          ? lower === 'privatekey'
            ? 'as printed by "wg genkey"'
            : 'as printed by "wg genpsk"'
          : 'as printed by "wg pubkey"';
        throw err(
          `${what}${shown} is not a valid key: ${value.length} characters (expected 44 base64 characters ending in "=", ${hint})`,
        );
      }
    };
    const list = (): string[] => value.split(',').map((v) => v.trim()).filter((v) => v !== '');
    const prefixes = (what: string): Prefix[] =>
      list().map((v) => {
        try {
          return parsePrefix(v, 'keep');
        } catch (e) {
          throw err(`${what}: ${(e as Error).message} (expected e.g. 10.0.0.2/32 or fd00::2/128, comma-separated)`);
        }
      });

    switch (lower) {
      case 'privatekey':
        iface.privateKey = key('PrivateKey');
        break;
      case 'listenport': {
        const n = parseUint(value, 65535);
        if (n === undefined) throw err(`ListenPort "${value}" is not a port number (use 0 to 65535)`);
        iface.listenPort = n;
        break;
      }
      case 'fwmark': {
        let n: number | undefined;
        if (value.toLowerCase() === 'off') n = 0;
        else if (/^0x[0-9a-f]{1,8}$/i.test(value)) n = parseInt(value.slice(2), 16);
        else n = parseUint(value, 0xffffffff);
        if (n === undefined) {
          throw err(`FwMark "${value}" is not a mark (use a number from 0 to 4294967295, 0x-hex, or "off")`);
        }
        iface.fwmark = n;
        break;
      }
      case 'address':
        iface.addresses.push(...prefixes('Address'));
        break;
      case 'dns':
        for (const v of list()) {
          if (/^[0-9.]+$/.test(v) || v.includes(':')) {
            const ip = canonicalIp(v);
            if (ip === undefined) throw err(`DNS server "${v}" is not an IPv4 or IPv6 address (fix the address)`);
            iface.dns.push(ip);
          } else if (HOSTNAME_RE.test(v)) {
            iface.dnsSearch.push(v);
          } else {
            throw err(`DNS "${v}" is neither an IP address nor a search domain (use e.g. "DNS = 10.0.0.1, example.com")`);
          }
        }
        break;
      case 'mtu': {
        const n = parseUint(value, 65535);
        if (n === undefined || n < 68) throw err(`MTU "${value}" is out of range (use a number from 68 to 65535, e.g. 1420)`);
        iface.mtu = n;
        break;
      }
      case 'table': {
        const v = value.toLowerCase();
        if (v === 'off' || v === 'auto') iface.table = v;
        else if (/^[0-9]+$/.test(value)) {
          const n = parseUint(value, 0xffffffff);
          if (n === undefined || n === 0) throw err(`Table ${value} is out of range (use 1 to 4294967295, a table name, "auto" or "off")`);
          iface.table = String(n);
        } else if (TABLE_NAME_RE.test(value)) iface.table = value;
        else throw err(`Table "${value}" is not valid (use "off", "auto", a table number or a name from /etc/iproute2/rt_tables)`);
        break;
      }
      case 'preup':
        iface.preUp.push(value);
        break;
      case 'postup':
        iface.postUp.push(value);
        break;
      case 'predown':
        iface.preDown.push(value);
        break;
      case 'postdown':
        iface.postDown.push(value);
        break;
      case 'saveconfig': {
        const v = value.toLowerCase();
        if (v !== 'true' && v !== 'false') throw err(`SaveConfig "${value}" is neither true nor false (use "true" or "false")`);
        iface.saveConfig = v === 'true';
        break;
      }
      case 'publickey':
        peer!.publicKey = key('PublicKey');
        break;
      case 'presharedkey':
        peer!.presharedKey = key('PresharedKey');
        break;
      case 'allowedips':
        peer!.allowedIps.push(...prefixes('AllowedIPs'));
        break;
      case 'endpoint': {
        const ep = parseEndpointText(value);
        if (typeof ep === 'string') throw err(`Endpoint "${value}": ${ep}`);
        peer!.endpoint = ep;
        break;
      }
      case 'persistentkeepalive': {
        const n = value.toLowerCase() === 'off' ? 0 : parseUint(value, 65535);
        if (n === undefined) throw err(`PersistentKeepalive "${value}" is out of range (use "off" or 0 to 65535 seconds, e.g. 25)`);
        peer!.persistentKeepalive = n;
        break;
      }
    }
  }
  finishPeer();
  return { interface: iface, peers };
}

/** Parse `host:port` / `[v6]:port`; a string says what is wrong. */
function parseEndpointText(value: string): { host: string; port: number } | string {
  let host: string;
  let port: string;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close < 0 || value[close + 1] !== ':') return 'expected [IPv6 address]:port, e.g. [2001:db8::1]:51820';
    host = value.slice(1, close);
    port = value.slice(close + 2);
    const pct = host.indexOf('%');
    const ip = pct >= 0 ? host.slice(0, pct) : host;
    const scope = pct >= 0 ? host.slice(pct + 1) : '';
    const parsed = ipBytes(ip);
    const canon = parsed?.family === 6 ? parsed.bytes : undefined;
    if (!canon || (pct >= 0 && !/^[A-Za-z0-9_.=+-]{1,15}$/.test(scope))) {
      return `"${host}" is not an IPv6 address (write [IPv6]:port, e.g. [2001:db8::1]:51820)`;
    }
    host = formatIp(canon) + (pct >= 0 ? `%${scope}` : '');
  } else {
    const colon = value.lastIndexOf(':');
    if (colon < 0) return 'has no port (write host:port, e.g. 192.0.2.1:51820)';
    host = value.slice(0, colon);
    port = value.slice(colon + 1);
    if (host.includes(':')) return 'IPv6 addresses need brackets (write [IPv6]:port, e.g. [2001:db8::1]:51820)';
    if (host === '') return 'has no host (write host:port, e.g. 192.0.2.1:51820)';
    if (!isIPv4(host)) {
      if (/^[0-9.]+$/.test(host)) return `"${host}" is not a valid IPv4 address (fix the address)`;
      if (!HOSTNAME_RE.test(host)) return `"${host}" is not a valid host name or IP address (fix the host)`;
    }
  }
  const n = parseUint(port, 65535);
  if (n === undefined || n === 0) return `port "${port}" is out of range (use 1 to 65535)`;
  return { host, port: n };
}

// ---------------------------------------------------------------------------
// Serialization

function checkValue(what: string, v: string): string {
  if (/[#\n\r]/.test(v) || v !== v.trim() || v === '') {
    throw new Error(`${what} cannot be written to a configuration file (empty, or contains "#", a newline or surrounding spaces)`);
  }
  return v;
}

/**
 * Write a configuration in `wg showconf` style. In mode `wg` the wg-quick
 * keys are left out (like `wg-quick strip`). The output contains secrets:
 * write it only with {@link writeFileAtomic0600}. For any configuration
 * returned by {@link parseConfig} in the same mode, parsing the output gives
 * the same configuration except for the `line` numbers of peers.
 */
export function serializeConfig(cfg: WgConfig, mode: ConfigMode): string {
  const i = cfg.interface;
  const out: string[] = ['[Interface]'];
  if (mode === 'wg-quick') {
    if (i.addresses.length) out.push(`Address = ${i.addresses.map(formatPrefix).join(', ')}`);
    if (i.dns.length || i.dnsSearch.length) out.push(`DNS = ${[...i.dns, ...i.dnsSearch].join(', ')}`);
    if (i.mtu !== undefined) out.push(`MTU = ${i.mtu}`);
    if (i.table !== undefined) out.push(`Table = ${checkValue('Table', i.table)}`);
    if (i.saveConfig) out.push('SaveConfig = true');
    for (const [k, hooks] of [
      ['PreUp', i.preUp],
      ['PostUp', i.postUp],
      ['PreDown', i.preDown],
      ['PostDown', i.postDown],
    ] as const) {
      for (const h of hooks) out.push(`${k} = ${checkValue(k, h)}`);
    }
  }
  if (i.listenPort !== undefined) out.push(`ListenPort = ${i.listenPort}`);
  if (i.fwmark !== undefined) out.push(`FwMark = ${i.fwmark === 0 ? 'off' : `0x${i.fwmark.toString(16)}`}`);
  if (i.privateKey) out.push(`PrivateKey = ${keyToBase64(i.privateKey)}`);
  for (const p of cfg.peers) {
    out.push('', '[Peer]', `PublicKey = ${keyToBase64(p.publicKey)}`);
    if (p.presharedKey) out.push(`PresharedKey = ${keyToBase64(p.presharedKey)}`);
    if (p.allowedIps.length) out.push(`AllowedIPs = ${p.allowedIps.map(formatPrefix).join(', ')}`);
    if (p.endpoint) {
      const h = p.endpoint.host;
      out.push(`Endpoint = ${h.includes(':') ? `[${h}]` : h}:${p.endpoint.port}`);
    }
    if (p.persistentKeepalive !== undefined) {
      out.push(`PersistentKeepalive = ${p.persistentKeepalive === 0 ? 'off' : p.persistentKeepalive}`);
    }
  }
  return out.join('\n') + '\n';
}

// ---------------------------------------------------------------------------
// File names

/**
 * Map a `tsguard up/down` argument to a configuration file and interface
 * name as wg-quick does: a plain interface name `NAME` means
 * `DIR/NAME.conf` (DIR defaults to /etc/wireguard); anything else is a path
 * whose file name must be `IFNAME.conf`.
 * @throws Error saying what is wrong with the argument.
 */
export function configPathFor(arg: string, dir = '/etc/wireguard'): { path: string; ifname: string } {
  if (arg === '.' || arg === '..') throw new Error(`"${arg}" is not a valid interface name`);
  if (!arg.includes('/') && isValidIfname(arg, WG_QUICK_NAME)) {
    return { path: `${dir.replace(/\/+$/, '')}/${arg}.conf`, ifname: arg };
  }
  const base = basename(arg);
  if (!base.endsWith('.conf')) {
    throw new Error(
      `"${arg}" is neither an interface name nor a file ending in .conf (name the file IFNAME.conf, where IFNAME is the interface name)`,
    );
  }
  const ifname = base.slice(0, -'.conf'.length);
  const problem = ifnameProblem(ifname, WG_QUICK_NAME);
  if (problem !== null) {
    throw new Error(
      `"${arg}": "${ifname}" is not a valid interface name (${problem}; the file must be named IFNAME.conf with IFNAME 1 to 15 characters of a-z, A-Z, 0-9, _ = + . -)`,
    );
  }
  return { path: arg, ifname };
}
