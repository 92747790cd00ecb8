/**
 * UAPI client: talks to any userspace WireGuard daemon (tsguard-wg,
 * wireguard-go) over its UNIX socket.
 * @module
 */

import { opendirSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { keyFromHex } from '../crypto/keys.js';
import { SOCKET_DIR, socketPath } from './server.js';

/** One peer as reported by `get=1`. */
export interface UapiPeerState {
  /** Public key. */
  publicKey: Uint8Array;
  /** Preshared key (all zero if none). */
  presharedKey: Uint8Array;
  /** Endpoint text (`1.2.3.4:5`, `[::1]:5`) or null. */
  endpoint: string | null;
  /** Seconds part of the last handshake (Unix time; 0 = never). */
  lastHandshakeSec: number;
  /** Nanoseconds part of the last handshake. */
  lastHandshakeNsec: number;
  /** Bytes received. */
  rxBytes: number;
  /** Bytes sent. */
  txBytes: number;
  /** Persistent keepalive interval in seconds (0 = off). */
  persistentKeepalive: number;
  /** Allowed IPs as CIDR text, in the daemon's order. */
  allowedIps: string[];
}

/** The device as reported by `get=1`. */
export interface UapiDeviceState {
  /** Private key, if set. */
  privateKey: Uint8Array | null;
  /** Listening port (0 = none reported). */
  listenPort: number;
  /** Firewall mark (0 = none). */
  fwmark: number;
  /** Peers in the daemon's order. */
  peers: UapiPeerState[];
}

/** A UAPI call that the daemon answered with a non-zero errno. */
export class UapiCallError extends Error {
  override name = 'UapiCallError';
  /** @param errno the (positive) errno */
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

/** Names of interfaces that have a UAPI socket. */
export function listInterfaces(): string[] {
  try {
    return readdirSync(SOCKET_DIR)
      .filter((f) => f.endsWith('.sock'))
      .map((f) => f.slice(0, -5))
      .sort();
  } catch {
    return [];
  }
}

/**
 * Names of interfaces with a live UAPI socket, in directory order, as wg
 * lists them: a socket nothing listens on any more (ECONNREFUSED, its daemon
 * died) is removed and skipped; other files are ignored.
 */
export async function listLiveInterfaces(): Promise<string[]> {
  const names: string[] = [];
  try {
    const dir = opendirSync(SOCKET_DIR);
    try {
      for (let e = dir.readSync(); e !== null; e = dir.readSync()) if (e.name.length > 5 && e.name.endsWith('.sock')) names.push(e.name.slice(0, -5));
    } finally {
      dir.closeSync();
    }
  } catch {
    return [];
  }
  const live = await Promise.all(names.map((n) => socketAnswers(socketPath(n))));
  return names.filter((_, i) => live[i]);
}

function socketAnswers(path: string): Promise<boolean> {
  try {
    if (!statSync(path).isSocket()) return Promise.resolve(false);
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const sock = net.connect(path);
    sock.on('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNREFUSED') {
        try {
          unlinkSync(path);
        } catch {
          // someone else removed it
        }
        resolve(false);
      } else resolve(true);
    });
  });
}

/** Send one raw request and return the whole reply up to and including its `errno=N` block. */
export function uapiRequest(ifname: string, request: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const path = socketPath(ifname);
    const sock = net.connect(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`${path}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(request));
    sock.on('data', (d: string) => {
      buf += d;
      const m = /(^|\n)errno=(-?\d+)\n\n/.exec(buf);
      if (m) {
        clearTimeout(timer);
        sock.end();
        resolve(buf.slice(0, m.index + m[0].length));
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const hint =
        e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
          ? `: no WireGuard userspace daemon for "${ifname}" (is the interface up?)`
          : e.code === 'EACCES'
            ? ': permission denied (run as root)'
            : '';
      reject(new Error(`cannot connect to ${path}${hint}`, { cause: e }));
    });
    sock.on('end', () => {
      clearTimeout(timer);
      if (!/errno=-?\d+\n\n$/.test(buf)) reject(new Error(`${path}: connection closed before a complete reply`));
    });
  });
}

function errnoOf(reply: string): number {
  const m = /errno=(-?\d+)\n\n$/.exec(reply);
  return m ? Math.abs(Number(m[1])) : 5;
}

/** `get=1`, parsed. */
export async function uapiGetState(ifname: string): Promise<UapiDeviceState> {
  const reply = await uapiRequest(ifname, 'get=1\n\n');
  const errno = errnoOf(reply);
  if (errno !== 0) throw new UapiCallError(errno, `get on ${ifname} failed with errno ${errno}`);
  return parseGetReply(reply);
}

/** Parse the `key=value` lines of a `get=1` reply. */
export function parseGetReply(reply: string): UapiDeviceState {
  const state: UapiDeviceState = { privateKey: null, listenPort: 0, fwmark: 0, peers: [] };
  let peer: UapiPeerState | null = null;
  for (const line of reply.split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const k = line.slice(0, eq);
    const v = line.slice(eq + 1);
    if (k === 'public_key') {
      peer = {
        publicKey: keyFromHex(v),
        presharedKey: new Uint8Array(32),
        endpoint: null,
        lastHandshakeSec: 0,
        lastHandshakeNsec: 0,
        rxBytes: 0,
        txBytes: 0,
        persistentKeepalive: 0,
        allowedIps: [],
      };
      state.peers.push(peer);
      continue;
    }
    if (peer === null) {
      if (k === 'private_key') state.privateKey = keyFromHex(v);
      else if (k === 'listen_port') state.listenPort = Number(v);
      else if (k === 'fwmark') state.fwmark = Number(v);
      continue;
    }
    switch (k) {
      case 'preshared_key':
        peer.presharedKey = keyFromHex(v);
        break;
      case 'endpoint':
        peer.endpoint = v;
        break;
      case 'last_handshake_time_sec':
        peer.lastHandshakeSec = Number(v);
        break;
      case 'last_handshake_time_nsec':
        peer.lastHandshakeNsec = Number(v);
        break;
      case 'rx_bytes':
        peer.rxBytes = Number(v);
        break;
      case 'tx_bytes':
        peer.txBytes = Number(v);
        break;
      case 'persistent_keepalive_interval':
        peer.persistentKeepalive = Number(v);
        break;
      case 'allowed_ip':
        peer.allowedIps.push(v);
        break;
    }
  }
  return state;
}

/** `set=1` with the given lines; throws {@link UapiCallError} on a non-zero errno. */
export async function uapiSet(ifname: string, lines: readonly string[]): Promise<void> {
  const reply = await uapiRequest(ifname, `set=1\n${lines.map((l) => l + '\n').join('')}\n`);
  const errno = errnoOf(reply);
  if (errno !== 0) {
    throw new UapiCallError(errno, `configuring ${ifname} failed: ${errnoText(errno)} (the daemon's log has the offending line)`);
  }
}

function errnoText(errno: number): string {
  switch (errno) {
    case 22:
      return 'invalid argument';
    case 98:
      return 'address (listen port) in use';
    case 71:
      return 'protocol error';
    default:
      return `errno ${errno}`;
  }
}
