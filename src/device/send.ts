/**
 * The send path (wireguard-go send.go): IP packets from the interface are
 * routed to a peer, staged until it has a usable session, padded, sealed and
 * handed to {@link DeviceIo.sendDatagram}; and the handshake messages we
 * originate (initiation, response). Inside a batch (Device.batch) the
 * counter is reserved and the header written at once, but the seal and the
 * hand-over wait for {@link flushSends}, which seals the batch in one call.
 * @module
 */

import { runAeadBatch } from '../crypto/batch.js';
import { TAG_LEN } from '../crypto/provider.js';
import { tai64nNow } from '../crypto/tai64n.js';
import { MSG_TRANSPORT, PADDING_MULTIPLE, TRANSPORT_HEADER_SIZE } from '../noise/constants.js';
import { createInitiation, createResponse } from '../noise/handshake.js';
import type { ResponseStepResult } from '../crypto/provider.js';
import { writeU32 } from '../noise/messages.js';
import { innerPacketLength } from '../routing/ip.js';
import type { Keypair } from '../session/keypair.js';
import { MAX_STAGED_PACKETS, REJECT_AFTER_TIME, REKEY_AFTER_MESSAGES_HI, REKEY_AFTER_TIME, REKEY_TIMEOUT } from './constants.js';
import type { Peer } from './peer.js';
import { beginSession } from './sessions.js';
import { drop, ownBytes, type DeviceState } from './state.js';
import { timersAuthenticatedSent, timersAuthenticatedTraversal, timersDataSent, timersHandshakeInitiated } from './timers.js';

/** Size of the blocks outgoing datagrams are carved from. */
const ARENA_BYTES = 256 * 1024;

/** An IP packet read from the interface: route it by destination and send it. */
export function sendPacket(d: DeviceState, packet: Uint8Array): void {
  const peer = d.allowedIps.lookupPacketDst(packet);
  if (peer === undefined) {
    drop(d, innerPacketLength(packet) < 0 ? 'badOutboundPacket' : 'noRoute');
    return;
  }
  sendPacketTo(d, peer, packet);
}

/** Send an IP packet (empty: a keepalive) to `peer`, staging it while there is no usable session. */
export function sendPacketTo(d: DeviceState, peer: Peer, packet: Uint8Array): void {
  const kp = peer.current;
  if (peer.staged.length === 0 && kp !== null && usableForSending(d, kp)) {
    encryptAndSend(d, peer, kp, packet);
    afterDataSent(d, peer, kp, packet.length === 0);
    return;
  }
  if (peer.staged.length >= MAX_STAGED_PACKETS) {
    peer.staged.shift();
    peer.txDropped++;
    drop(d, 'stagedOverflow');
  }
  peer.staged.push(ownBytes(packet));
  sendStaged(d, peer);
}

function usableForSending(d: DeviceState, kp: Keypair): boolean {
  return !kp.exhausted && d.clock.now() - kp.created < REJECT_AFTER_TIME;
}

/** wireguard-go SendStagedPackets: send what waits, or start a handshake when there is no usable session. */
export function sendStaged(d: DeviceState, peer: Peer): void {
  if (peer.staged.length === 0) return;
  const kp = peer.current;
  if (kp === null || !usableForSending(d, kp)) {
    sendInitiation(d, peer, false);
    return;
  }
  let sentData = false;
  let sentAny = false;
  while (peer.staged.length > 0) {
    if (kp.exhausted) {
      sendInitiation(d, peer, false);
      break;
    }
    const packet = peer.staged.shift()!;
    encryptAndSend(d, peer, kp, packet);
    sentAny = true;
    if (packet.length !== 0) sentData = true;
  }
  if (sentAny) afterDataSent(d, peer, kp, !sentData);
}

function encryptAndSend(d: DeviceState, peer: Peer, kp: Keypair, packet: Uint8Array): void {
  const plen = packet.length;
  const padded = paddedLength(plen, d.mtu);
  const out = datagramBuffer(d, TRANSPORT_HEADER_SIZE + padded + TAG_LEN);
  // Every byte is written (the block may hold an earlier batch's datagram): type, 3 reserved zero
  // bytes, index, counter, plaintext, zero padding, tag.
  writeU32(out, 0, MSG_TRANSPORT);
  writeU32(out, 4, kp.remoteIndex);
  writeU32(out, 8, kp.sendLo);
  writeU32(out, 12, kp.sendHi);
  if (d.batchDepth > 0) {
    // Sealed in place with the rest of the batch at the flush.
    out.set(packet, TRANSPORT_HEADER_SIZE);
    if (padded !== plen) out.fill(0, TRANSPORT_HEADER_SIZE + plen, TRANSPORT_HEADER_SIZE + padded);
    d.seals.add(kp.send, kp.sendLo, kp.sendHi, out, TRANSPORT_HEADER_SIZE, padded);
  } else {
    let plain = packet;
    if (padded !== plen) {
      plain = d.pad.subarray(0, padded);
      plain.set(packet);
      plain.fill(0, plen);
    }
    d.p.sealInto(kp.send, kp.sendLo, kp.sendHi, plain, out, TRANSPORT_HEADER_SIZE);
  }
  kp.advance();
  sendTo(d, peer, out);
}

/** Bytes for one outgoing datagram, carved from the device's current block (fewer allocations than one array each); the caller writes all of them. */
function datagramBuffer(d: DeviceState, size: number): Uint8Array {
  let off = d.arenaUsed;
  if (off + size > d.arena.length) {
    d.arena = new Uint8Array(Math.max(ARENA_BYTES, size));
    off = 0;
  }
  d.arenaUsed = off + ((size + 7) & ~7);
  return d.arena.subarray(off, off + size);
}

/**
 * End of a batch, send side: seal every transport datagram recorded since
 * the last flush in one provider call, then hand every deferred datagram to
 * the I/O sink in the order it was produced.
 */
export function flushSends(d: DeviceState): void {
  if (d.seals.length > 0) {
    try {
      runAeadBatch(d.p, d.seals);
    } finally {
      d.seals.clear();
    }
  }
  const data = d.outData;
  const to = d.outTo;
  try {
    for (let i = 0; i < data.length; i++) d.io.sendDatagram(data[i]!, to[i]!);
  } finally {
    data.length = 0;
    to.length = 0;
  }
}

function afterDataSent(d: DeviceState, peer: Peer, kp: Keypair, keepaliveOnly: boolean): void {
  timersAuthenticatedTraversal(d, peer);
  timersAuthenticatedSent(d, peer);
  if (!keepaliveOnly) timersDataSent(d, peer);
  // keepKeyFreshSending
  if (kp.isInitiator && (kp.sendHi >= REKEY_AFTER_MESSAGES_HI || d.clock.now() - kp.created >= REKEY_AFTER_TIME)) {
    sendInitiation(d, peer, false);
  }
}

/** Hand a datagram to the I/O sink, to the peer's endpoint (in batch mode: at the flush, in order). */
export function sendTo(d: DeviceState, peer: Peer, data: Uint8Array): void {
  const ep = peer.endpoint;
  if (ep === null) {
    peer.txDropped++;
    drop(d, 'noEndpoint');
    return;
  }
  peer.txBytes += data.length;
  if (d.batchDepth > 0) {
    d.outData.push(data);
    d.outTo.push(ep);
  } else {
    d.io.sendDatagram(data, ep);
  }
}

/** Send a keepalive (an empty packet), or start a handshake when there is no session. */
export function sendKeepalive(d: DeviceState, peer: Peer): void {
  if (peer.staged.length === 0) peer.staged.push(new Uint8Array(0));
  sendStaged(d, peer);
}

/** Send a handshake initiation, at most one per REKEY_TIMEOUT. `isRetry`: a retransmission of the same attempt. */
export function sendInitiation(d: DeviceState, peer: Peer, isRetry: boolean): void {
  if (!isRetry) peer.handshakeAttempts = 0;
  const now = d.clock.now();
  if (now - peer.lastSentHandshake < REKEY_TIMEOUT) return;
  const local = d.local;
  if (local === null) return;
  peer.lastSentHandshake = now;
  const hs = peer.handshake;
  hs.clear();
  const index = d.indices.allocate(peer);
  const msg = createInitiation(d.p, local, hs, index, tai64nNow(d.clock.wallNow()));
  if (msg === null) {
    d.indices.delete(index);
    return;
  }
  peer.cookies.addMacs(msg);
  timersAuthenticatedTraversal(d, peer);
  timersAuthenticatedSent(d, peer);
  sendTo(d, peer, msg);
  timersHandshakeInitiated(d, peer);
}

/** A response whose index is drawn and whose Noise step may be computed in a batch (which draws our ephemeral key). */
export interface PendingResponse {
  /** The peer whose consumed initiation it answers. */
  readonly peer: Peer;
  /** Our new index. */
  readonly index: number;
}

/**
 * Answer the initiation just consumed into the peer's handshake, first half:
 * draw our index ({@link finishResponse} completes it).
 */
export function beginResponse(d: DeviceState, peer: Peer): PendingResponse {
  peer.lastSentHandshake = d.clock.now();
  const index = d.indices.allocate(peer);
  return { peer, index };
}

/**
 * Second half: create the response (from its step computed in a batch, or,
 * without `step`, here), install the session and send it.
 */
export function finishResponse(d: DeviceState, r: PendingResponse, step?: ResponseStepResult | null): void {
  const { peer, index } = r;
  const msg = createResponse(d.p, peer.handshake, index, undefined, step);
  if (msg === null) {
    d.indices.delete(index);
    return;
  }
  peer.cookies.addMacs(msg);
  if (!beginSession(d, peer)) return;
  timersAuthenticatedTraversal(d, peer);
  timersAuthenticatedSent(d, peer);
  sendTo(d, peer, msg);
}

/** Padded plaintext length (wireguard-go calculatePaddingSize). */
export function paddedLength(len: number, mtu: number): number {
  if (mtu === 0) return (len + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1);
  let last = len;
  if (last > mtu) last %= mtu;
  let padded = (last + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1);
  if (padded > mtu) padded = mtu;
  return len + (padded - last);
}
