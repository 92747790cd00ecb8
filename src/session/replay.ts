/**
 * Anti-replay sliding window (RFC 6479) over exact 64-bit counters given as
 * two 32-bit halves, so counters beyond 2^53 are handled without loss.
 * @module
 */

import { REJECT_AFTER_MESSAGES_HI, REJECT_AFTER_MESSAGES_LO } from '../noise/constants.js';

const WORD_BITS = 32;
const RING_WORDS = 256; // 8192 bits
const RING_MASK = RING_WORDS - 1;
const TWO_27 = 2 ** 27; // one unit of the high half, in 32-bit words

/** Sliding window of received counters. */
export class ReplayWindow {
  /** Counters this far behind the greatest accepted one are still checked exactly; older ones are rejected. */
  static readonly WINDOW = (RING_WORDS - 1) * WORD_BITS; // 8160

  #ring = new Uint32Array(RING_WORDS);
  #lastLo = 0;
  #lastHi = 0;

  /**
   * Check counter `hi·2^32 + lo` and record it. Returns false if it was
   * seen before, is older than the window, or is ≥ REJECT_AFTER_MESSAGES.
   * Call only for packets that authenticated.
   */
  accept(lo: number, hi: number): boolean {
    if (hi > REJECT_AFTER_MESSAGES_HI || (hi === REJECT_AFTER_MESSAGES_HI && lo >= REJECT_AFTER_MESSAGES_LO)) return false;
    const lastLo = this.#lastLo;
    const lastHi = this.#lastHi;
    const word = lo >>> 5;
    if (hi > lastHi || (hi === lastHi && lo > lastLo)) {
      // Advance: clear the words between the last one and this one (at most the whole ring).
      // (hi - lastHi)·2^27 is exact; when it is large the sum is large too, whatever rounding does.
      let diff = (hi - lastHi) * TWO_27 + (word - (lastLo >>> 5));
      if (diff > RING_WORDS) diff = RING_WORDS;
      const cur = lastLo >>> 5;
      for (let i = 1; i <= diff; i++) this.#ring[(cur + i) & RING_MASK] = 0;
      this.#lastLo = lo;
      this.#lastHi = hi;
    } else {
      const behind = (lastHi - hi) * 2 ** 32 + (lastLo - lo);
      if (behind > ReplayWindow.WINDOW) return false;
    }
    const idx = word & RING_MASK;
    const bit = 1 << (lo & (WORD_BITS - 1));
    const w = this.#ring[idx]!;
    if ((w & bit) !== 0) return false;
    this.#ring[idx] = w | bit;
    return true;
  }

  /** Forget everything. */
  reset(): void {
    this.#ring.fill(0);
    this.#lastLo = 0;
    this.#lastHi = 0;
  }
}
