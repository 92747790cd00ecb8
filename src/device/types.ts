/**
 * Types at the boundary of the sans-IO device: endpoints, clocks, the output
 * sink and events.
 * @module
 */

import { formatIp, parseIp } from '../routing/ip.js';

/**
 * A UDP endpoint. `host` is an IPv4 dotted quad or an IPv6 address without
 * brackets. Endpoints are immutable: the device keeps the object it was
 * given (a shell may attach its own binary form to it, e.g. the local
 * address the peer's packets arrive on) and never copies it.
 */
export interface Endpoint {
  /** IP address text. */
  readonly host: string;
  /** UDP port. */
  readonly port: number;
  /** The address as bytes (4 for IPv4, 16 for IPv6), when the shell has them at hand. */
  readonly ip?: Uint8Array;
}

/**
 * Parse `1.2.3.4:51820` or `[2001:db8::1]:51820` (no host names: resolve
 * those first). The host is put in canonical form so endpoints compare as
 * strings. Throws an Error saying what is wrong.
 */
export function parseEndpoint(text: string): Endpoint {
  let host: string;
  let port: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']:');
    if (close < 0) throw new Error(`invalid endpoint "${text}": expected [IPv6]:port`);
    host = text.slice(1, close);
    port = text.slice(close + 2);
  } else {
    const colon = text.indexOf(':');
    if (colon < 0 || colon !== text.lastIndexOf(':')) {
      throw new Error(`invalid endpoint "${text}": expected IPv4:port or [IPv6]:port`);
    }
    host = text.slice(0, colon);
    port = text.slice(colon + 1);
  }
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) > 65535) {
    throw new Error(`invalid endpoint "${text}": port must be a number from 0 to 65535`);
  }
  const ip = parseIp(host);
  return { host: formatIp(ip.bytes), port: Number(port) };
}

/** Format an endpoint as `wg` does: `1.2.3.4:51820` or `[::1]:51820`. */
export function formatEndpoint(e: Endpoint): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

/** Time sources injected into the device. */
export interface Clock {
  /** Monotonic milliseconds (timers, key ages, rate limits). */
  now(): number;
  /** Wall-clock milliseconds since the Unix epoch (TAI64N timestamps, reported handshake times). */
  wallNow(): number;
}

/** The real clock: performance.now() and Date.now(). */
export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
};

/** Where the device puts what it produces. */
export interface DeviceIo {
  /** Send `data` as one UDP datagram to `to`. The device never touches `data` again. */
  sendDatagram(data: Uint8Array, to: Endpoint): void;
  /**
   * Hand a decrypted, source-checked IP packet to the interface. `fromPeer`
   * is the public key (base64) of the peer it came from; a hub uses it for
   * relay policy.
   */
  deliverPacket(packet: Uint8Array, fromPeer: string): void;
  /**
   * Optional: run `fn`, work the device does later on its own (a handshake
   * batch whose DH values were computed asynchronously), so that the shell
   * can batch and flush what it produces. Without it `fn` runs directly.
   */
  resume?(fn: () => void): void;
}

/** Events a device emits (for agents that embed the engine). */
export interface DeviceEvents extends Record<string, unknown> {
  /** A handshake completed and a new session is in use. */
  handshake: { publicKey: string; endpoint: Endpoint | null; isInitiator: boolean };
  /** All session keys of a peer were erased (REJECT_AFTER_TIME × 3 without a new handshake). */
  sessionExpired: { publicKey: string };
  /** A handshake was abandoned after REKEY_ATTEMPT_TIME. */
  handshakeTimeout: { publicKey: string };
  /** A peer's endpoint changed because an authenticated packet came from a new address. */
  endpointChanged: { publicKey: string; endpoint: Endpoint };
}

/** Reasons for which the device drops input; each has a counter in {@link DeviceStats}. */
export const DROP_REASONS = [
  'malformed', // wrong size for its type, too short, too long
  'unknownType',
  'noPrivateKey',
  'badMac1',
  'cookieReplySent',
  'rateLimited',
  'handshakeFailed', // did not decrypt / unknown peer / low-order key
  'handshakeReplay', // timestamp not newer, or initiation flood
  'unexpectedResponse',
  'badCookieReply',
  'unknownIndex',
  'expiredKey',
  'decryptFailed',
  'replayed',
  'badInnerPacket',
  'sourceNotAllowed',
  'noRoute', // outbound packet with no peer for its destination
  'badOutboundPacket',
  'stagedOverflow',
  'noEndpoint',
  'handshakeQueueFull', // the bounded handshake queue was full (wireguard-go drops these too)
  'exception', // processing threw: a bug, counted so that it shows (the device keeps running)
] as const;

/** One of {@link DROP_REASONS}. */
export type DropReason = (typeof DROP_REASONS)[number];

/** Device-wide drop counters. */
export type DeviceStats = Record<DropReason, number>;
