/**
 * Sessions of a peer from the device's side: turning a completed handshake
 * into a keypair (wireguard-go BeginSymmetricSession + timersSessionDerived),
 * expiring and erasing them. The slot rotation itself is session/keypairs.ts.
 * @module
 */

import { deriveSession } from '../noise/handshake.js';
import { Keypair } from '../session/keypair.js';
import { clearKeypairs, expireSending, installKeypair } from '../session/keypairs.js';
import { REJECT_AFTER_TIME, REKEY_TIMEOUT } from './constants.js';
import { Timer, type Peer } from './peer.js';
import type { DeviceState } from './state.js';

/** Derive the session of the peer's finished handshake and install it. False when derivation fails. */
export function beginSession(d: DeviceState, peer: Peer): boolean {
  const keys = deriveSession(d.p, peer.handshake);
  if (keys === null) return false;
  const now = d.clock.now();
  const kp = new Keypair(keys.send, keys.receive, keys.isInitiator, now, keys.localIndex, keys.remoteIndex);
  d.indices.bindKeypair(kp.localIndex, peer, kp);
  installKeypair(peer, kp, d.releaseKeypair);
  // timersSessionDerived
  d.timers.mod(peer, Timer.ZeroKeyMaterial, now + REJECT_AFTER_TIME * 3);
  return true;
}

/** wireguard-go ExpireCurrentKeypairs: the next packet starts a handshake, at once. */
export function expireCurrentKeypairs(d: DeviceState, peer: Peer): void {
  peer.handshake.clear();
  peer.lastSentHandshake = d.clock.now() - REKEY_TIMEOUT - 1000;
  expireSending(peer);
}

/** Erase every key of the peer and stop its timers; emits `sessionExpired` when `emit` and there were keys. */
export function zeroKeyMaterial(d: DeviceState, peer: Peer, emit: boolean): void {
  const had = clearKeypairs(peer, d.releaseKeypair);
  peer.handshake.clear();
  for (let s = 0; s < peer.timerAt.length; s++) d.timers.del(peer, s);
  if (emit && had) d.events.emit('sessionExpired', { publicKey: peer.id });
}

/** Forget a peer: keys, staged packets, routes. */
export function removePeer(d: DeviceState, peer: Peer): void {
  zeroKeyMaterial(d, peer, false);
  peer.removed = true;
  peer.staged.length = 0;
  d.allowedIps.removeOwner(peer);
  d.peers.delete(peer.id);
}
