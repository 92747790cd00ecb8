/**
 * The handshake worker (wireguard-go RoutineHandshake): queued initiations,
 * responses and cookie replies, with the initiations of one call processed
 * as batches whose X25519 operations are done together
 * ({@link CryptoProvider.dhBatch}, which the native provider spreads over the
 * addon's crypto threads). Every decision stays here, in queue order and as
 * the one-at-a-time path makes it: the cookie/under-load rule per message,
 * the replay and flood checks, index allocation, session install and the
 * order of the datagrams sent. A batch only changes when the DH values are
 * computed:
 *
 * 1. each initiation that passed mac1 (and, under load, mac2 and the rate
 *    limit) joins the run; a message of another kind, or one that needs a
 *    cookie reply, first finishes the run;
 * 2. finishing: `es` for every initiation of the run at once, then each is
 *    consumed in order and, if accepted, its response's index and ephemeral
 *    key are drawn; then `ee` and `se` of all those responses at once; then
 *    each response is completed, its session installed and sent, in order.
 *
 * An initiation whose peer already has an accepted one pending in the run
 * completes that one first (from inside the lookup), so a peer's state moves
 * exactly as it would one message at a time.
 * @module
 */

import { dhMany, type CryptoProvider } from '../crypto/provider.js';
import { keyToBase64 } from '../crypto/keys.js';
import { MSG_COOKIE_REPLY, MSG_INITIATION } from '../noise/constants.js';
import { CookieGenerator } from '../noise/cookie.js';
import { consumeInitiation, consumeResponse, initiationEphemeral, responseDhInputs, senderOf, type Handshake } from '../noise/handshake.js';
import { parseIp } from '../routing/ip.js';
import type { Peer } from './peer.js';
import { authenticatedFrom, sourceBytes } from './receive.js';
import { beginResponse, finishResponse, sendKeepalive, type PendingResponse } from './send.js';
import { beginSession } from './sessions.js';
import { drop, type DeviceState } from './state.js';
import { timersHandshakeComplete } from './timers.js';
import type { Endpoint } from './types.js';

/** An initiation that passed the MAC checks, waiting for its run to be finished. */
interface Queued {
  readonly data: Uint8Array;
  readonly from: Endpoint;
}

/** Process up to `max` queued handshake messages. Returns how many were taken from the queue. */
export function workHandshakes(d: DeviceState, max: number): number {
  const q = d.handshakes;
  const run: Queued[] = [];
  let n = 0;
  try {
    for (; n < max && q.length > 0; n++) {
      const data = q.peekData();
      const from = q.peekFrom();
      q.shift();
      try {
        if (data[0] === MSG_INITIATION && d.p.dhBatch !== undefined) {
          const verdict = checkMacs(d, data, from, true);
          if (verdict === 'pass') run.push({ data, from });
          else if (verdict === 'cookie') {
            finishRun(d, run);
            sendCookieReply(d, data, from);
          }
          continue;
        }
        finishRun(d, run);
        if (data[0] === MSG_COOKIE_REPLY) receiveCookieReply(d, data);
        else if (data[0] === MSG_INITIATION) receiveInitiation(d, data, from);
        else receiveResponse(d, data, from);
      } catch {
        drop(d, 'exception');
      }
    }
  } finally {
    try {
      finishRun(d, run);
    } catch {
      drop(d, 'exception');
    }
  }
  return n;
}

/**
 * The checks before any Noise work: mac1; under load, mac2 (else a cookie
 * reply is due) and the per-source rate limit. Drops count here. With
 * `deferCookie` the cookie reply is left to the caller (verdict `cookie`).
 */
function checkMacs(d: DeviceState, data: Uint8Array, from: Endpoint, deferCookie: boolean): 'pass' | 'cookie' | 'dropped' {
  const underLoad = d.handshakes.underLoad(d.clock.now());
  if (d.local === null) {
    drop(d, 'noPrivateKey');
    return 'dropped';
  }
  if (!d.cookieChecker.checkMac1(data)) {
    drop(d, 'badMac1');
    return 'dropped';
  }
  if (underLoad) {
    const ip = from.ip ?? parseIp(from.host).bytes;
    if (!d.cookieChecker.checkMac2(data, sourceBytes(ip, from.port))) {
      if (deferCookie) return 'cookie';
      sendCookieReply(d, data, from);
      return 'dropped';
    }
    if (!d.rateLimiter.allow(ip)) {
      drop(d, 'rateLimited');
      return 'dropped';
    }
  }
  return 'pass';
}

/** Answer a handshake message without a valid mac2 (under load) with a cookie reply. */
function sendCookieReply(d: DeviceState, data: Uint8Array, from: Endpoint): void {
  const ip = from.ip ?? parseIp(from.host).bytes;
  const reply = d.cookieChecker.createReply(data, senderOf(data), sourceBytes(ip, from.port));
  if (reply !== null) d.io.sendDatagram(reply, from);
  drop(d, 'cookieReplySent');
}

/** One initiation, start to finish (providers without {@link CryptoProvider.dhBatch}). */
function receiveInitiation(d: DeviceState, data: Uint8Array, from: Endpoint): void {
  if (checkMacs(d, data, from, false) !== 'pass') return;
  const peer = consumeOne(d, data, from, undefined, (key) => d.peers.get(keyToBase64(key))?.handshake);
  if (peer !== null) finishResponse(d, beginResponse(d, peer));
}

/**
 * Consume one initiation (`es` precomputed, or undefined to compute it) and
 * note the authenticated source; the accepted peer, or null (counted).
 */
function consumeOne(
  d: DeviceState,
  data: Uint8Array,
  from: Endpoint,
  es: Uint8Array | null | undefined,
  lookup: (key: Uint8Array) => Handshake | undefined,
): Peer | null {
  const r = consumeInitiation(d.p, d.local!, data, d.clock.now(), lookup, es);
  if ('refused' in r) {
    drop(d, r.refused === 'replay' || r.refused === 'flood' ? 'handshakeReplay' : 'handshakeFailed');
    return null;
  }
  const peer = d.peers.get(keyToBase64(r.handshake.remoteStatic))!;
  authenticatedFrom(d, peer, from, data.length);
  return peer;
}

/** Finish a run of initiations (see the module comment) and empty it. */
function finishRun(d: DeviceState, run: Queued[]): void {
  if (run.length === 0) return;
  const local = d.local;
  const items = run.splice(0);
  if (local === null) {
    for (let i = 0; i < items.length; i++) drop(d, 'noPrivateKey');
    return;
  }
  const es = dhMany(d.p, items.map(() => local.privateKey), items.map((q) => initiationEphemeral(q.data)));
  const pending: PendingResponse[] = [];
  const pendingPeers = new Set<Handshake>();
  const lookup = (key: Uint8Array): Handshake | undefined => {
    const hs = d.peers.get(keyToBase64(key))?.handshake;
    if (hs !== undefined && pendingPeers.has(hs)) {
      completeResponses(d.p, d, pending);
      pendingPeers.clear();
    }
    return hs;
  };
  try {
    for (let i = 0; i < items.length; i++) {
      try {
        const peer = consumeOne(d, items[i]!.data, items[i]!.from, es[i]!, lookup);
        if (peer === null) continue;
        pending.push(beginResponse(d, peer));
        pendingPeers.add(peer.handshake);
      } catch {
        drop(d, 'exception');
      }
    }
  } finally {
    completeResponses(d.p, d, pending);
  }
}

/** `ee` and `se` of every pending response in one batch, then each completed and sent in order; empties `pending`. */
function completeResponses(p: CryptoProvider, d: DeviceState, pending: PendingResponse[]): void {
  if (pending.length === 0) return;
  const items = pending.splice(0);
  const privs: Uint8Array[] = [];
  const pubs: Uint8Array[] = [];
  const at: number[] = [];
  for (const r of items) {
    const inputs = responseDhInputs(r.peer.handshake, r.ephemeral);
    at.push(inputs === null ? -1 : privs.length);
    for (const [k, pub] of inputs ?? []) {
      privs.push(k);
      pubs.push(pub);
    }
  }
  const dh = dhMany(p, privs, pubs);
  for (let i = 0; i < items.length; i++) {
    try {
      const j = at[i]!;
      finishResponse(d, items[i]!, j < 0 ? undefined : { ee: dh[j]!, se: dh[j + 1]! });
    } catch {
      drop(d, 'exception');
    }
  }
}

function receiveResponse(d: DeviceState, data: Uint8Array, from: Endpoint): void {
  if (checkMacs(d, data, from, false) !== 'pass') return;
  const hs = consumeResponse(d.p, d.local!, data, (index) => {
    const e = d.indices.get(index);
    return e !== undefined && e.keypair === null ? e.peer.handshake : undefined;
  });
  if (hs === null) return drop(d, 'unexpectedResponse');
  const peer = d.peers.get(keyToBase64(hs.remoteStatic))!;
  authenticatedFrom(d, peer, from, data.length);
  if (!beginSession(d, peer)) return;
  timersHandshakeComplete(d, peer, true);
  sendKeepalive(d, peer);
}

function receiveCookieReply(d: DeviceState, data: Uint8Array): void {
  const e = d.indices.get(CookieGenerator.receiverOf(data));
  if (e === undefined) return drop(d, 'unknownIndex');
  if (!e.peer.cookies.consumeReply(data)) return drop(d, 'badCookieReply');
}
