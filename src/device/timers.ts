/**
 * The five per-peer timers (the kernel's timers.c, wireguard-go timers.go):
 * the events that arm and cancel them, and what each does when it fires.
 * @module
 */

import { KEEPALIVE_TIMEOUT, MAX_TIMER_HANDSHAKES, REJECT_AFTER_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX } from './constants.js';
import { Timer, type Peer } from './peer.js';
import { sendInitiation, sendKeepalive } from './send.js';
import { zeroKeyMaterial } from './sessions.js';
import { drop, type DeviceState } from './state.js';

/** Run every timer that is due. */
export function tick(d: DeviceState): void {
  if (d.closed) return;
  d.timers.run(d.clock.now(), (peer, slot) => {
    try {
      fireTimer(d, peer, slot);
    } catch {
      // A bug in one timer must not stop the device.
      drop(d, 'exception');
    }
  });
}

/** Random jitter for retransmissions. */
export function jitter(d: DeviceState): number {
  return Math.floor(d.random() * REKEY_TIMEOUT_JITTER_MAX);
}

function fireTimer(d: DeviceState, peer: Peer, slot: number): void {
  if (peer.removed) return;
  switch (slot) {
    case Timer.RetransmitHandshake:
      if (peer.handshakeAttempts > MAX_TIMER_HANDSHAKES) {
        d.timers.del(peer, Timer.SendKeepalive);
        peer.txDropped += peer.staged.length;
        peer.staged.length = 0;
        if (!d.timers.pending(peer, Timer.ZeroKeyMaterial)) {
          d.timers.mod(peer, Timer.ZeroKeyMaterial, d.clock.now() + REJECT_AFTER_TIME * 3);
        }
        d.events.emit('handshakeTimeout', { publicKey: peer.id });
      } else {
        peer.handshakeAttempts++;
        sendInitiation(d, peer, true);
      }
      break;
    case Timer.SendKeepalive:
      sendKeepalive(d, peer);
      if (peer.needAnotherKeepalive) {
        peer.needAnotherKeepalive = false;
        d.timers.mod(peer, Timer.SendKeepalive, d.clock.now() + KEEPALIVE_TIMEOUT);
      }
      break;
    case Timer.NewHandshake:
      sendInitiation(d, peer, false);
      break;
    case Timer.ZeroKeyMaterial:
      zeroKeyMaterial(d, peer, true);
      break;
    case Timer.PersistentKeepalive:
      if (peer.persistentKeepalive > 0) sendKeepalive(d, peer);
      break;
  }
}

/** timersDataSent */
export function timersDataSent(d: DeviceState, peer: Peer): void {
  if (!d.timers.pending(peer, Timer.NewHandshake)) {
    d.timers.mod(peer, Timer.NewHandshake, d.clock.now() + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter(d));
  }
}

/** timersDataReceived */
export function timersDataReceived(d: DeviceState, peer: Peer): void {
  if (!d.timers.pending(peer, Timer.SendKeepalive)) {
    d.timers.mod(peer, Timer.SendKeepalive, d.clock.now() + KEEPALIVE_TIMEOUT);
  } else {
    peer.needAnotherKeepalive = true;
  }
}

/** timersAnyAuthenticatedPacketSent */
export function timersAuthenticatedSent(d: DeviceState, peer: Peer): void {
  d.timers.del(peer, Timer.SendKeepalive);
}

/** timersAnyAuthenticatedPacketReceived */
export function timersAuthenticatedReceived(d: DeviceState, peer: Peer): void {
  d.timers.del(peer, Timer.NewHandshake);
}

/** timersAnyAuthenticatedPacketTraversal */
export function timersAuthenticatedTraversal(d: DeviceState, peer: Peer): void {
  if (peer.persistentKeepalive > 0) {
    d.timers.mod(peer, Timer.PersistentKeepalive, d.clock.now() + peer.persistentKeepalive * 1000);
  }
}

/** timersHandshakeInitiated */
export function timersHandshakeInitiated(d: DeviceState, peer: Peer): void {
  d.timers.mod(peer, Timer.RetransmitHandshake, d.clock.now() + REKEY_TIMEOUT + jitter(d));
}

/** timersHandshakeComplete */
export function timersHandshakeComplete(d: DeviceState, peer: Peer, isInitiator: boolean): void {
  d.timers.del(peer, Timer.RetransmitHandshake);
  peer.handshakeAttempts = 0;
  peer.sentLastMinuteHandshake = false;
  peer.lastHandshakeWall = d.clock.wallNow();
  d.events.emit('handshake', { publicKey: peer.id, endpoint: peer.endpoint, isInitiator });
}
