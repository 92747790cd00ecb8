/**
 * Peer events of a device as `verbose` log lines: handshake completed,
 * handshake abandoned, session expired, endpoint changed. Rate limited per
 * peer and event, so a roaming or misbehaving peer cannot flood the log.
 * @module
 */

import { formatEndpoint } from '../device/types.js';
import type { Device } from '../device/device.js';
import { logEnabled, RateLimitedLog, type Log, type Logger } from './logger.js';

/** One line per peer and event at most this often (handshakes normally come every 2 minutes). */
export const PEER_EVENT_LOG_INTERVAL_MS = 60_000;

/**
 * Log the peer events of `device` at `verbose`. `describe` names a peer
 * (e.g. `client alice`) for the line; `opts.now` is the monotonic clock of the
 * rate limit (default `performance.now`). Returns a function that unsubscribes;
 * nothing is subscribed when `log` is a {@link Logger} with `verbose` off.
 */
export function logPeerEvents(
  device: Device,
  log: Log | Logger,
  describe: (publicKey: string) => string | undefined = () => undefined,
  opts: { intervalMs?: number; now?: () => number } = {},
): () => void {
  if (!logEnabled(log, 'verbose')) return () => undefined;
  const limited = new RateLimitedLog(log, opts.intervalMs ?? PEER_EVENT_LOG_INTERVAL_MS, opts.now);
  const peer = (pk: string) => {
    const name = describe(pk);
    return name === undefined ? pk : `${name} (${pk})`;
  };
  const offs = [
    device.events.on('handshake', (e) =>
      limited.log(`hs:${e.publicKey}`, 'verbose', `handshake completed with ${peer(e.publicKey)}`, {
        endpoint: e.endpoint ? formatEndpoint(e.endpoint) : null,
        role: e.isInitiator ? 'initiator' : 'responder',
      }),
    ),
    device.events.on('handshakeTimeout', (e) => limited.log(`to:${e.publicKey}`, 'verbose', `handshake with ${peer(e.publicKey)} abandoned (no answer)`)),
    device.events.on('sessionExpired', (e) => limited.log(`ex:${e.publicKey}`, 'verbose', `session with ${peer(e.publicKey)} expired (keys erased)`)),
    device.events.on('endpointChanged', (e) =>
      limited.log(`ep:${e.publicKey}`, 'verbose', `endpoint of ${peer(e.publicKey)} changed`, { endpoint: formatEndpoint(e.endpoint) }),
    ),
  ];
  return () => offs.forEach((off) => off());
}
