/**
 * Anti-replay sliding window (RFC 6479) over exact 64-bit counters given as
 * two unsigned 32-bit halves, so counters beyond 2^53 are handled without
 * loss, plus a small 64-bit counter for the send side.
 *
 * Every 64-bit comparison is done on the halves (high first, then low).
 * Differences are only formed as doubles when the high halves differ by
 * at most one, where the result is below 2^33 and therefore exact; larger
 * gaps are classified without arithmetic.
 * @module
 */

import { REJECT_AFTER_MESSAGES_HI, REJECT_AFTER_MESSAGES_LO } from '../noise/constants.js';

const WORD_BITS = 32;
const RING_WORDS = 256; // 8192 bits
const RING_MASK = RING_WORDS - 1;
const TWO_32 = 2 ** 32;
const WORDS_PER_HI = 2 ** 27; // one unit of the high half, in 32-bit words

/** True if the 64-bit value (aLo, aHi) is ≥ (bLo, bHi). All halves unsigned 32-bit. */
export function u64AtLeast(aLo: number, aHi: number, bLo: number, bHi: number): boolean {
  return aHi > bHi || (aHi === bHi && aLo >= bLo);
}

/**
 * Sliding window of received counters, RFC 6479 style: a ring of 256
 * 32-bit words (8192 bits). Words are cleared as the greatest counter
 * advances, so one word is always being reused; the usable window is
 * therefore 8192 − 32 = {@link ReplayWindow.WINDOW} counters.
 *
 * Exact semantics, with `max` the greatest counter accepted so far (0
 * before any): `accept(c)` returns true — and records `c` — iff
 * `c < REJECT_AFTER_MESSAGES`, `c` was not accepted before, and
 * `c > max` or `max − c < WINDOW`. Counters are not recorded when refused.
 * No allocation, no BigInt.
 */
export class ReplayWindow {
  /** Number of most recent counters tracked: `c` is refused when `max − c ≥ WINDOW` (8160). */
  static readonly WINDOW = (RING_WORDS - 1) * WORD_BITS;

  #ring = new Uint32Array(RING_WORDS);
  #maxLo = 0;
  #maxHi = 0;

  /**
   * Check counter `hi·2^32 + lo` and record it. Returns false if it was
   * accepted before, is `WINDOW` or more behind the greatest accepted
   * counter, or is ≥ REJECT_AFTER_MESSAGES (2^64 − 2^13 − 1). Call only
   * for packets that authenticated, or a forger could advance the window.
   * @param lo low 32 bits (unsigned)
   * @param hi high 32 bits (unsigned)
   */
  accept(lo: number, hi: number): boolean {
    lo >>>= 0;
    hi >>>= 0;
    if (!this.wouldAccept(lo, hi)) return false;
    const ring = this.#ring;
    const maxLo = this.#maxLo;
    const maxHi = this.#maxHi;
    if (hi > maxHi || (hi === maxHi && lo > maxLo)) {
      // Advance: clear the words after the old max's word up to the new one.
      // Word distance is exact: < 2^27 + 2^27 when the high halves differ by ≤ 1.
      const maxWord = maxLo >>> 5;
      const hiGap = hi - maxHi;
      let words = hiGap > 1 ? RING_WORDS : hiGap * WORDS_PER_HI + (lo >>> 5) - maxWord;
      if (words > RING_WORDS) words = RING_WORDS;
      for (let i = 1; i <= words; i++) ring[(maxWord + i) & RING_MASK] = 0;
      this.#maxLo = lo;
      this.#maxHi = hi;
    }
    ring[(lo >>> 5) & RING_MASK]! |= 1 << (lo & (WORD_BITS - 1));
    return true;
  }

  /**
   * Whether {@link ReplayWindow.accept} would accept the counter now,
   * recording nothing: a pre-check before decrypting (the window is only
   * updated for packets that authenticated).
   */
  wouldAccept(lo: number, hi: number): boolean {
    lo >>>= 0;
    hi >>>= 0;
    if (u64AtLeast(lo, hi, REJECT_AFTER_MESSAGES_LO, REJECT_AFTER_MESSAGES_HI)) return false;
    const maxLo = this.#maxLo;
    const maxHi = this.#maxHi;
    if (hi > maxHi || (hi === maxHi && lo > maxLo)) return true;
    // At or behind the max: distance is exact (< 2^33) when the high halves differ by ≤ 1.
    const hiGap = maxHi - hi;
    if (hiGap > 1) return false;
    if (hiGap * TWO_32 + maxLo - lo >= ReplayWindow.WINDOW) return false;
    return (this.#ring[(lo >>> 5) & RING_MASK]! & (1 << (lo & (WORD_BITS - 1)))) === 0;
  }

  /** Forget every counter (as if new). */
  reset(): void {
    this.#ring.fill(0);
    this.#maxLo = 0;
    this.#maxHi = 0;
  }
}
