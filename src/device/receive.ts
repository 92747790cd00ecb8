/**
 * The receive path (wireguard-go receive.go): datagrams from the network.
 * Transport messages are decrypted, checked against the replay window and
 * the peer's allowed IPs and delivered at once, or, inside a batch
 * (Device.batch), in three stages: checked and recorded per datagram,
 * opened in place all together at the flush, then accepted in order
 * ({@link flushReceives}); handshake messages
 * (initiation, response, cookie reply) wait in the device's bounded queue
 * (load.ts) until the handshake worker (handshakes.ts) processes them, so
 * that a burst of handshakes does not hold back the data packets behind it.
 * @module
 */

import { AEAD_ROW, runAeadBatch } from '../crypto/batch.js';
import { TAG_LEN } from '../crypto/provider.js';
import {
  COOKIE_REPLY_SIZE,
  INITIATION_SIZE,
  MAX_DATAGRAM_SIZE,
  MIN_TRANSPORT_SIZE,
  MSG_COOKIE_REPLY,
  MSG_INITIATION,
  MSG_RESPONSE,
  MSG_TRANSPORT,
  RESPONSE_SIZE,
  TRANSPORT_HEADER_SIZE,
} from '../noise/constants.js';
import { readU32 } from '../noise/messages.js';
import { innerPacketLength } from '../routing/ip.js';
import type { Keypair } from '../session/keypair.js';
import { confirmNext } from '../session/keypairs.js';
import { KEEPALIVE_TIMEOUT, REJECT_AFTER_TIME, REKEY_TIMEOUT } from './constants.js';
import type { Peer } from './peer.js';
import { sendInitiation, sendStaged } from './send.js';
import { drop, ownBytes, type DeviceState } from './state.js';
import {
  timersAuthenticatedReceived,
  timersAuthenticatedTraversal,
  timersDataReceived,
  timersHandshakeComplete,
} from './timers.js';
import type { Endpoint } from './types.js';

/** A UDP datagram from `from`: transport is handled now, handshake messages are queued. Never throws. */
export function receiveDatagram(d: DeviceState, data: Uint8Array, from: Endpoint): void {
  try {
    const len = data.length;
    if (len < 4 || len > MAX_DATAGRAM_SIZE) return drop(d, 'malformed');
    const type = readU32(data, 0);
    if (type === MSG_TRANSPORT) {
      if (len < MIN_TRANSPORT_SIZE) return drop(d, 'malformed');
      return receiveTransport(d, data, from);
    }
    let size: number;
    if (type === MSG_INITIATION) size = INITIATION_SIZE;
    else if (type === MSG_RESPONSE) size = RESPONSE_SIZE;
    else if (type === MSG_COOKIE_REPLY) size = COOKIE_REPLY_SIZE;
    else return drop(d, 'unknownType');
    if (len !== size) return drop(d, 'malformed');
    if (!d.handshakes.push(ownBytes(data), from)) drop(d, 'handshakeQueueFull');
  } catch {
    drop(d, 'exception');
  }
}

function receiveTransport(d: DeviceState, data: Uint8Array, from: Endpoint): void {
  const e = d.indices.get(readU32(data, 4));
  if (e === undefined || e.keypair === null) return drop(d, 'unknownIndex');
  const kp = e.keypair;
  if (d.clock.now() - kp.created >= REJECT_AFTER_TIME) return drop(d, 'expiredKey');
  const lo = readU32(data, 8);
  const hi = readU32(data, 12);
  if (d.batchDepth > 0) {
    // Stage 1 of a batch: a counter the window already refuses is not worth decrypting; the
    // window itself changes only in stage 3, for packets that authenticated.
    if (!kp.replay.wouldAccept(lo, hi)) return drop(d, 'replayed');
    d.opens.add(kp.receive, lo, hi, data, TRANSPORT_HEADER_SIZE, data.length - TRANSPORT_HEADER_SIZE);
    d.rxKeypair.push(kp);
    d.rxFrom.push(from);
    return;
  }
  const plain = d.p.open(kp.receive, lo, hi, data.subarray(TRANSPORT_HEADER_SIZE));
  if (plain === null) return drop(d, 'decryptFailed');
  acceptTransport(d, e.peer, kp, lo, hi, plain, from, data.length);
}

/**
 * End of a batch, receive side: open every transport datagram recorded in
 * stage 1 in one provider call (stage 2, in place), then, in arrival order,
 * check each (stage 3): authentication, the keypair still being installed
 * (an earlier packet of the batch may have rotated it out), the replay
 * window (which also refuses a duplicate inside the batch), and deliver.
 */
export function flushReceives(d: DeviceState): void {
  const jobs = d.opens;
  const n = jobs.length;
  if (n === 0) return;
  d.batchDepth++; // what stage 3 sends joins the batch's seals
  try {
    runAeadBatch(d.p, jobs);
    const t = jobs.table;
    for (let i = 0, r = 0; i < n; i++, r += AEAD_ROW) {
      try {
        if (jobs.ok[i] === 0) {
          drop(d, 'decryptFailed');
          continue;
        }
        const kp = d.rxKeypair[i]!;
        const e = d.indices.get(kp.localIndex);
        if (e === undefined || e.keypair !== kp) {
          drop(d, 'unknownIndex');
          continue;
        }
        const data = jobs.bufs[i]!;
        const plain = data.subarray(TRANSPORT_HEADER_SIZE, data.length - TAG_LEN);
        acceptTransport(d, e.peer, kp, t[r + 1]!, t[r + 2]!, plain, d.rxFrom[i]!, data.length);
      } catch {
        drop(d, 'exception');
      }
    }
  } finally {
    d.batchDepth--;
    jobs.clear();
    d.rxKeypair.length = 0;
    d.rxFrom.length = 0;
  }
}

/** An authentic transport message: replay window, session confirmation, timers, roaming, source check, delivery. */
function acceptTransport(d: DeviceState, peer: Peer, kp: Keypair, lo: number, hi: number, plain: Uint8Array, from: Endpoint, len: number): void {
  if (!kp.replay.accept(lo, hi)) return drop(d, 'replayed');

  if (peer.next === kp) {
    // The responder's first packet on a new session confirms it.
    confirmNext(peer, d.releaseKeypair);
    timersHandshakeComplete(d, peer, false);
    sendStaged(d, peer);
  }
  keepKeyFreshReceiving(d, peer, kp);
  authenticatedFrom(d, peer, from, len);

  if (plain.length === 0) return; // keepalive
  const ipLen = innerPacketLength(plain);
  if (ipLen < 0) {
    peer.rxDropped++;
    return drop(d, 'badInnerPacket');
  }
  const packet = ipLen === plain.length ? plain : plain.subarray(0, ipLen);
  if (d.allowedIps.lookupPacketSrc(packet) !== peer) {
    peer.rxDropped++;
    return drop(d, 'sourceNotAllowed');
  }
  timersDataReceived(d, peer);
  d.io.deliverPacket(packet, peer.id);
}

/** An authenticated message of `len` bytes came from the peer at `from`: timers, roaming, counters. */
export function authenticatedFrom(d: DeviceState, peer: Peer, from: Endpoint, len: number): void {
  timersAuthenticatedTraversal(d, peer);
  timersAuthenticatedReceived(d, peer);
  setEndpoint(d, peer, from);
  peer.rxBytes += len;
}

/** keepKeyFreshReceiving: the initiator rekeys once when its session nears REJECT_AFTER_TIME. */
function keepKeyFreshReceiving(d: DeviceState, peer: Peer, kp: Keypair): void {
  if (peer.sentLastMinuteHandshake) return;
  if (kp.isInitiator && d.clock.now() - kp.created >= REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT) {
    peer.sentLastMinuteHandshake = true;
    sendInitiation(d, peer, false);
  }
}

/**
 * Roaming: the endpoint follows authenticated packets. The object itself is
 * kept (it may carry what the shell knows about the source, e.g. the local
 * address it arrived on); the event fires when the address or port changed.
 */
function setEndpoint(d: DeviceState, peer: Peer, from: Endpoint): void {
  const cur = peer.endpoint;
  if (cur === from) return;
  peer.endpoint = from;
  if (cur !== null && d.events.has('endpointChanged') && (cur.port !== from.port || cur.host !== from.host)) {
    d.events.emit('endpointChanged', { publicKey: peer.id, endpoint: from });
  }
}

/** Cookie input for a source: IP bytes then the port, big-endian. */
export function sourceBytes(ip: Uint8Array, port: number): Uint8Array {
  const b = new Uint8Array(ip.length + 2);
  b.set(ip);
  b[ip.length] = port >>> 8;
  b[ip.length + 1] = port & 0xff;
  return b;
}
