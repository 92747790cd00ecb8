/**
 * Keypair rotation (src/session/keypairs.ts): where a new session goes for
 * the initiator and the responder, confirmation of the responder's `next`,
 * and that every keypair leaving the slots is released and zeroed.
 */
import { describe, expect, it } from 'vitest';
import { Keypair } from '../src/session/keypair.js';
import { clearKeypairs, confirmNext, expireSending, installKeypair, type KeypairSlots } from '../src/session/keypairs.js';

const kp = (index: number, isInitiator: boolean) => new Keypair(new Uint8Array(32).fill(index), new Uint8Array(32).fill(index), isInitiator, 0, index, 100 + index);

function slots() {
  const s: KeypairSlots = { current: null, previous: null, next: null };
  const released: number[] = [];
  const release = (k: Keypair) => released.push(k.localIndex);
  const ids = () => [s.current?.localIndex ?? null, s.previous?.localIndex ?? null, s.next?.localIndex ?? null];
  return { s, released, release, ids };
}

describe('keypair rotation', () => {
  it('initiator: the new session is current at once, the old one previous; the one before is released and zeroed', () => {
    const { s, released, release, ids } = slots();
    const k1 = kp(1, true);
    installKeypair(s, k1, release);
    installKeypair(s, kp(2, true), release);
    expect(ids()).toEqual([2, 1, null]);
    installKeypair(s, kp(3, true), release);
    expect(ids()).toEqual([3, 2, null]);
    expect(released).toEqual([1]);
    expect(k1.send.every((b) => b === 0) && k1.receive.every((b) => b === 0)).toBe(true);
  });

  it('responder: the new session waits in next until confirmed; then it is current', () => {
    const { s, released, release, ids } = slots();
    installKeypair(s, kp(1, true), release);
    installKeypair(s, kp(2, true), release);
    installKeypair(s, kp(3, false), release);
    expect(ids()).toEqual([2, null, 3]); // previous dropped: it could not be confirmed against
    expect(released).toEqual([1]);
    installKeypair(s, kp(4, false), release); // a second initiation replaces the unconfirmed next
    expect(ids()).toEqual([2, null, 4]);
    expect(released).toEqual([1, 3]);
    confirmNext(s, release);
    expect(ids()).toEqual([4, 2, null]);
    confirmNext(s, release); // nothing to confirm
    expect(ids()).toEqual([4, 2, null]);
  });

  it('an initiator session over an unconfirmed next keeps next as previous and drops current', () => {
    const { s, released, release, ids } = slots();
    installKeypair(s, kp(1, true), release);
    installKeypair(s, kp(2, false), release);
    installKeypair(s, kp(3, true), release);
    expect(ids()).toEqual([3, 2, null]);
    expect(released).toEqual([1]);
  });

  it('expires sending on current and next, and clears everything', () => {
    const { s, released, release, ids } = slots();
    installKeypair(s, kp(1, true), release);
    installKeypair(s, kp(2, false), release);
    expireSending(s);
    expect(s.current!.exhausted && s.next!.exhausted).toBe(true);
    expect(clearKeypairs(s, release)).toBe(true);
    expect(ids()).toEqual([null, null, null]);
    expect(released.sort()).toEqual([1, 2]);
    expect(clearKeypairs(s, release)).toBe(false);
  });
});
