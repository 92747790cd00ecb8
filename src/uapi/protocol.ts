/**
 * The cross-platform userspace API (wireguard.com/xplatform): `get=1` and
 * `set=1` operations as text, applied to a {@link Device}. Transport-free: the
 * socket server feeds lines and writes what this returns.
 *
 * Error numbers are negative errno values, as wireguard-go sends them.
 * @module
 */

import { isZeroKey, keyFromHex, keyToHex } from '../crypto/keys.js';
import type { Device } from '../device/device.js';
import type { Peer } from '../device/peer.js';
import { formatEndpoint, parseEndpoint, type Endpoint } from '../device/types.js';
import { formatPrefix, parsePrefix, type Prefix } from '../routing/ip.js';

/** errno values used in replies (Linux numbering). */
export const Errno = {
  EIO: 5,
  EINVAL: 22,
  EADDRINUSE: 98,
  EPROTO: 71,
  ENOANO: 55,
} as const;

/** An error that becomes `errno=-N` in the reply. */
export class UapiError extends Error {
  override name = 'UapiError';
  /** @param errno positive errno value */
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

/** What the protocol needs besides the device: the parts that do I/O. */
export interface UapiHost {
  /** The device to read and change. */
  readonly device: Device;
  /** Rebind the UDP socket (port 0 = random). Throw a UapiError(EADDRINUSE) if taken. */
  setListenPort(port: number): void;
  /** Apply a firewall mark to the UDP socket (0 = none). */
  setFwmark(mark: number): void;
  /** Log a line (never with secrets). */
  log?(message: string): void;
}

/** The `preshared_key` of a peer without one. */
const ZERO_KEY_HEX = '0'.repeat(64);

/** Render the reply to `get=1` (without the trailing `errno=0` block). */
export function uapiGet(device: Device, listenPort: number): string {
  let out = '';
  for (const piece of uapiGetChunks(device, listenPort)) out += piece;
  return out;
}

/**
 * The reply to `get=1` (without the trailing `errno=0` block) in pieces of
 * about `chunkChars` characters, each rendered when it is taken: a device
 * with tens of thousands of peers never holds its whole dump, nor a string
 * per line.
 */
export function* uapiGetChunks(device: Device, listenPort: number, chunkChars = 64 * 1024): Generator<string, void, undefined> {
  let out = '';
  const priv = device.privateKey;
  if (priv !== null) out += `private_key=${keyToHex(priv)}\n`;
  if (listenPort !== 0) out += `listen_port=${listenPort}\n`;
  if (device.fwmark !== 0) out += `fwmark=${device.fwmark}\n`;
  for (const peer of device.peers()) {
    out += peerLines(device, peer);
    if (out.length >= chunkChars) {
      yield out;
      out = '';
    }
  }
  if (out !== '') yield out;
}

/** The `get=1` lines of one peer. */
function peerLines(device: Device, peer: Peer): string {
  const info = device.peerInfo(peer);
  const ms = info.lastHandshake;
  let s = `public_key=${keyToHex(peer.publicKey)}\npreshared_key=${info.hasPresharedKey ? keyToHex(peer.handshake.presharedKey) : ZERO_KEY_HEX}\nprotocol_version=1\n`;
  if (info.endpoint !== null) s += `endpoint=${formatEndpoint(info.endpoint)}\n`;
  s +=
    `last_handshake_time_sec=${Math.floor(ms / 1000)}\nlast_handshake_time_nsec=${Math.round((ms % 1000) * 1e6)}\n` +
    `tx_bytes=${info.txBytes}\nrx_bytes=${info.rxBytes}\npersistent_keepalive_interval=${info.persistentKeepalive}\n`;
  for (const p of info.allowedIps) s += `allowed_ip=${formatPrefix(p)}\n`;
  return s;
}

function parseUint(value: string, max: number, what: string): number {
  if (!/^[0-9]{1,10}$/.test(value)) throw new UapiError(Errno.EINVAL, `invalid ${what}: "${value}"`);
  const n = Number(value);
  if (n > max) throw new UapiError(Errno.EINVAL, `${what} out of range: ${value} (max ${max})`);
  return n;
}

function parseTrue(value: string, key: string): void {
  if (value !== 'true') throw new UapiError(Errno.EINVAL, `${key}: only "true" is accepted, got "${value}"`);
}

function hexKey(value: string, key: string): Uint8Array {
  try {
    return keyFromHex(value, key);
  } catch (e) {
    throw new UapiError(Errno.EINVAL, (e as Error).message);
  }
}

/** A validated line of a set operation. */
type SetCommand =
  | { key: 'private_key'; key32: Uint8Array }
  | { key: 'listen_port'; n: number }
  | { key: 'fwmark'; n: number }
  | { key: 'replace_peers' }
  | { key: 'public_key'; key32: Uint8Array }
  | { key: 'update_only' | 'remove' | 'replace_allowed_ips' | 'protocol_version' }
  | { key: 'preshared_key'; key32: Uint8Array }
  | { key: 'endpoint'; endpoint: Endpoint }
  | { key: 'persistent_keepalive_interval'; n: number }
  | { key: 'allowed_ip'; prefix: Prefix };

/**
 * Validate the lines of a `set=1` operation (without the `set=1` line and
 * the terminating blank line). Throws a UapiError naming the first bad line;
 * nothing is applied in that case.
 */
export function parseSet(lines: readonly string[]): SetCommand[] {
  const out: SetCommand[] = [];
  let inPeer = false;
  lines.forEach((line, i) => {
    const at = `line ${i + 2}`;
    const eq = line.indexOf('=');
    if (eq < 0) throw new UapiError(Errno.EPROTO, `${at}: not key=value: "${truncate(line)}"`);
    if (eq === 0) throw new UapiError(Errno.EINVAL, `${at}: empty key in "${truncate(line)}"`);
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    try {
      if (key === 'public_key') {
        inPeer = true;
        out.push({ key, key32: hexKey(value, key) });
        return;
      }
      if (!inPeer) {
        switch (key) {
          case 'private_key':
            out.push({ key, key32: hexKey(value, key) });
            return;
          case 'listen_port':
            out.push({ key, n: parseUint(value, 65535, key) });
            return;
          case 'fwmark':
            out.push({ key, n: value === '' ? 0 : parseUint(value, 0xffffffff, key) });
            return;
          case 'replace_peers':
            parseTrue(value, key);
            out.push({ key });
            return;
          default:
            throw new UapiError(Errno.EINVAL, `unknown device key "${truncate(key)}"`);
        }
      }
      switch (key) {
        case 'update_only':
        case 'remove':
        case 'replace_allowed_ips':
          parseTrue(value, key);
          out.push({ key });
          return;
        case 'protocol_version':
          if (value !== '1') throw new UapiError(Errno.EINVAL, `unsupported protocol_version "${truncate(value)}" (only 1)`);
          out.push({ key });
          return;
        case 'preshared_key':
          out.push({ key, key32: hexKey(value, key) });
          return;
        case 'endpoint':
          out.push({ key, endpoint: parseEndpoint(value) });
          return;
        case 'persistent_keepalive_interval':
          out.push({ key, n: parseUint(value, 65535, key) });
          return;
        case 'allowed_ip':
          out.push({ key, prefix: parsePrefix(value) });
          return;
        default:
          throw new UapiError(Errno.EINVAL, `unknown peer key "${truncate(key)}"`);
      }
    } catch (e) {
      if (e instanceof UapiError) throw new UapiError(e.errno, `${at}: ${e.message}`);
      throw new UapiError(Errno.EINVAL, `${at}: ${(e as Error).message}`);
    }
  });
  return out;
}

/**
 * Validate and then apply a `set=1` operation in one synchronous step, so
 * packets never see a half-applied change (e.g. a peer between
 * `replace_allowed_ips` and its `allowed_ip` lines). Throws UapiError; when
 * validation fails nothing is changed.
 */
export function applySet(host: UapiHost, lines: readonly string[]): void {
  const cmds = parseSet(lines);
  const d = host.device;
  // The only step that can fail after validation is binding a new listen port: do it first, so a
  // taken port (EADDRINUSE) leaves the device exactly as it was.
  let port: number | undefined;
  for (const c of cmds) if (c.key === 'listen_port') port = c.n;
  if (port !== undefined) host.setListenPort(port);
  let peer: Peer | null = null;
  let created = false;
  let keepaliveOn = 0;
  const finishPeer = () => {
    if (peer !== null && keepaliveOn > 0 && !peer.removed) d.setPeer(peer.publicKey, { persistentKeepalive: keepaliveOn });
    peer = null;
    keepaliveOn = 0;
  };
  for (const c of cmds) {
    switch (c.key) {
      case 'private_key':
        d.setPrivateKey(isZeroKey(c.key32) ? null : c.key32);
        break;
      case 'listen_port':
        break; // already bound above
      case 'fwmark':
        host.setFwmark(c.n);
        break;
      case 'replace_peers':
        d.removeAllPeers();
        break;
      case 'public_key': {
        finishPeer();
        const existing = d.getPeer(c.key32);
        created = existing === undefined;
        // A key equal to our own public key yields no peer: the block is ignored.
        peer = existing ?? d.setPeer(c.key32, {}) ?? null;
        break;
      }
      case 'update_only':
        if (created && peer !== null) {
          d.removePeer(peer.publicKey);
          peer = null;
        }
        break;
      case 'remove':
        if (peer !== null) d.removePeer(peer.publicKey);
        peer = null;
        break;
      case 'protocol_version':
        break;
      case 'preshared_key':
        if (peer) d.setPeer(peer.publicKey, { presharedKey: isZeroKey(c.key32) ? null : c.key32 });
        break;
      case 'endpoint':
        if (peer) d.setPeer(peer.publicKey, { endpoint: c.endpoint });
        break;
      case 'persistent_keepalive_interval':
        if (peer) {
          // Turning it on sends a keepalive at the end of the block, as wireguard-go does.
          if (peer.persistentKeepalive === 0 && c.n > 0) keepaliveOn = c.n;
          else d.setPeer(peer.publicKey, { persistentKeepalive: c.n });
        }
        break;
      case 'replace_allowed_ips':
        if (peer) d.setPeer(peer.publicKey, { replaceAllowedIps: true });
        break;
      case 'allowed_ip':
        if (peer) d.setPeer(peer.publicKey, { allowedIps: [c.prefix] });
        break;
    }
  }
  finishPeer();
}

function truncate(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}…` : s;
}
