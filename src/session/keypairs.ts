/**
 * Keypair rotation: a peer's three session slots (wireguard-go's Keypairs)
 * and how a new session, a confirmation and an expiry move keypairs between
 * them. A keypair that leaves the slots is handed to `release` (which frees
 * its receiver index) and its keys are zeroed.
 * @module
 */

import type { Keypair } from './keypair.js';

/** The session slots of a peer. */
export interface KeypairSlots {
  /** Session in use for sending. */
  current: Keypair | null;
  /** Session kept for packets still in flight from before the last rekey. */
  previous: Keypair | null;
  /** Responder's new session, promoted to current on the first packet received with it. */
  next: Keypair | null;
}

/** Called for every keypair dropped from the slots, before its keys are zeroed. */
export type ReleaseKeypair = (kp: Keypair) => void;

function drop(kp: Keypair | null, release: ReleaseKeypair): void {
  if (kp === null) return;
  release(kp);
  kp.zero();
}

/**
 * Install a freshly derived keypair (wireguard-go BeginSymmetricSession).
 * The initiator uses it at once: current moves to previous (an unconfirmed
 * `next` is dropped, or kept as previous when it was the newer one). The
 * responder keeps it in `next` until the initiator's first packet confirms it.
 */
export function installKeypair(s: KeypairSlots, kp: Keypair, release: ReleaseKeypair): void {
  if (kp.isInitiator) {
    if (s.next !== null) {
      const next = s.next;
      s.next = null;
      drop(s.previous, release);
      s.previous = next;
      drop(s.current, release);
    } else {
      drop(s.previous, release);
      s.previous = s.current;
    }
    s.current = kp;
  } else {
    drop(s.next, release);
    s.next = kp;
    drop(s.previous, release);
    s.previous = null;
  }
}

/**
 * The responder's first packet received with `next` confirms it
 * (wireguard-go ReceivedWithKeypair): next becomes current, current previous.
 */
export function confirmNext(s: KeypairSlots, release: ReleaseKeypair): void {
  const kp = s.next;
  if (kp === null) return;
  drop(s.previous, release);
  s.previous = s.current;
  s.current = kp;
  s.next = null;
}

/** Make current and next unusable for sending (a rekey is then needed); receiving keeps working. */
export function expireSending(s: KeypairSlots): void {
  s.current?.expireSending();
  s.next?.expireSending();
}

/** Drop every keypair. Returns whether there was any. */
export function clearKeypairs(s: KeypairSlots, release: ReleaseKeypair): boolean {
  const had = s.current !== null || s.previous !== null || s.next !== null;
  drop(s.current, release);
  drop(s.previous, release);
  drop(s.next, release);
  s.current = s.previous = s.next = null;
  return had;
}
