/**
 * Anti-replay window: a table test in the style of wireguard-go's, exact
 * behaviour beyond 2^53 and near REJECT_AFTER_MESSAGES, and property tests
 * against a Set + max oracle that encodes the documented semantics exactly:
 * accept c iff c < LIMIT, c not accepted before, and (c > max or max − c < WINDOW).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { REJECT_AFTER_MESSAGES_HI, REJECT_AFTER_MESSAGES_LO } from '../src/noise/constants.js';
import { Keypair } from '../src/session/keypair.js';
import { ReplayWindow, u64AtLeast } from '../src/session/replay.js';

const W = ReplayWindow.WINDOW;
const BW = BigInt(W);
const LIMIT = 2n ** 64n - 2n ** 13n - 1n;
const split = (c: bigint): [number, number] => [Number(c & 0xffffffffn), Number(c >> 32n)];
const accept = (w: ReplayWindow, c: bigint | number) => w.accept(...split(BigInt(c)));

class Oracle {
  seen = new Set<bigint>();
  max = 0n;
  accept(c: bigint): boolean {
    const ok = c < LIMIT && !this.seen.has(c) && (c > this.max || this.max - c < BW);
    if (ok) {
      this.seen.add(c);
      if (c > this.max) this.max = c;
    }
    return ok;
  }
}

describe('ReplayWindow', () => {
  it('tracks 8160 counters (a ring of 8192 bits, one 32-bit word always being reused); the limit constants are 2^64 − 2^13 − 1', () => {
    expect(W).toBe(8160);
    expect((BigInt(REJECT_AFTER_MESSAGES_HI) << 32n) + BigInt(REJECT_AFTER_MESSAGES_LO)).toBe(LIMIT);
  });

  it('table test: accept/reject sequence across window moves and wraps', () => {
    const w = new ReplayWindow();
    const T = (c: bigint | number, want: boolean) => expect([String(c), accept(w, c)]).toEqual([String(c), want]);
    T(0, true);
    T(0, false);
    T(1, true);
    T(1, false);
    T(9, true);
    T(8, true);
    T(7, true);
    T(7, false);
    T(W, true); // max = W: 0 is now exactly WINDOW behind
    T(0, false); // seen anyway
    T(W - 1, true);
    T(W - 1, false);
    T(2, true); // W − 2 behind: still inside
    T(2, false);
    T(W + 1, true); // 1 is now WINDOW behind
    T(3, true); // W − 2 behind
    T(W + 1, false);
    T(W + 40, true); // small jump into the next ring word
    T(41, true); // WINDOW − 1 behind
    T(40, false); // exactly WINDOW behind, never seen
    T(39, false);
    T(4 * W, true); // jump far ahead: the whole ring is cleared
    T(4 * W - (W - 1), true); // oldest counter still tracked
    T(4 * W - W, false); // exactly WINDOW behind
    T(4 * W - (W + 1), false);
    T(4 * W - (W - 2), true);
    T(4 * W - (W - 3), true);
    T(4 * W - (W - 1), false); // tracked, already seen
    T(4 * W - (W - 3), false);
    T(10, false);
    T(4 * W, false);
    // Walk forward one at a time through several full ring revolutions,
    // replaying each counter and an old one as we go.
    const wrong: number[] = [];
    for (let c = 4 * W + 1; c < 4 * W + 3 * 8192 + 7; c++) {
      if (!accept(w, c) || accept(w, c) || accept(w, c - W)) wrong.push(c);
      if (c % 97 === 0 && c - (W - 1) > 4 * W && accept(w, c - (W - 1))) wrong.push(-c); // accepted on the way
    }
    expect(wrong).toEqual([]);
    // Skip ahead by exactly one ring, then fill gaps behind.
    const base = 4 * W + 3 * 8192 + 6;
    T(base + 8192, true);
    T(base + 8192 - (W - 1), true);
    T(base + 8192 - W, false);
    T(base + 1, false); // 8191 behind
    T(base + 8192 - 100, true); // never seen, 100 behind
    T(base + 8192 - 100, false);
  });

  it('rejects counters at or beyond REJECT_AFTER_MESSAGES without recording them', () => {
    const w = new ReplayWindow();
    expect(accept(w, LIMIT)).toBe(false);
    expect(accept(w, LIMIT + 1n)).toBe(false);
    expect(accept(w, 2n ** 64n - 1n)).toBe(false);
    expect(accept(w, 5)).toBe(true); // the refused ones did not move the window
    expect(accept(w, LIMIT - 1n)).toBe(true);
    expect(accept(w, LIMIT - 1n)).toBe(false);
    expect(accept(w, LIMIT)).toBe(false);
    expect(accept(w, LIMIT - 2n)).toBe(true);
    expect(accept(w, LIMIT - 1n - BW)).toBe(false); // exactly WINDOW behind the max (LIMIT − 1)
    expect(accept(w, LIMIT - BW)).toBe(true); // WINDOW − 1 behind
    expect(accept(w, LIMIT - BW)).toBe(false);
    expect(accept(w, 5)).toBe(false);
  });

  it('handles counters around 2^32 and beyond 2^53 exactly', () => {
    const w = new ReplayWindow();
    expect(accept(w, 2n ** 32n - 1n)).toBe(true);
    expect(accept(w, 2n ** 32n)).toBe(true); // crosses into the high half
    expect(accept(w, 2n ** 32n - 1n)).toBe(false);
    expect(accept(w, 2n ** 32n - 5n)).toBe(true);
    expect(accept(w, 2n ** 32n - BW)).toBe(false);
    expect(accept(w, 2n ** 32n - BW + 1n)).toBe(true);

    const w2 = new ReplayWindow();
    const base = 2n ** 53n;
    expect(accept(w2, base)).toBe(true);
    expect(accept(w2, base + 1n)).toBe(true); // 2^53 + 1 is not a double
    expect(accept(w2, base + 1n)).toBe(false);
    expect(accept(w2, base + 3n)).toBe(true);
    expect(accept(w2, base + 2n)).toBe(true);
    expect(accept(w2, base + 2n)).toBe(false);
    expect(accept(w2, base - 1n)).toBe(true);
    expect(accept(w2, base + 3n - BW + 1n)).toBe(true); // WINDOW − 1 behind max = 2^53 + 3
    expect(accept(w2, base + 3n - BW)).toBe(false); // WINDOW behind (2^53 − 8157)
    // 2^53 + 1 must move the max although it rounds to 2^53 as a double.
    const w4 = new ReplayWindow();
    expect(accept(w4, base)).toBe(true);
    expect(accept(w4, base + 1n)).toBe(true);
    expect(accept(w4, base + 1n - BW)).toBe(false); // exactly WINDOW behind 2^53 + 1
    expect(accept(w4, base + 2n - BW)).toBe(true);
    // Differences that round as doubles: 2^60 + 1 vs 2^60.
    const w3 = new ReplayWindow();
    expect(accept(w3, 2n ** 60n + 1n)).toBe(true);
    expect(accept(w3, 2n ** 60n)).toBe(true);
    expect(accept(w3, 2n ** 60n + 1n)).toBe(false);
    expect(accept(w3, 2n ** 60n - BW + 2n)).toBe(true);
    expect(accept(w3, 2n ** 60n - BW + 1n)).toBe(false); // exactly WINDOW behind
    // Far jumps in the high half, and back.
    expect(accept(w3, 2n ** 62n + 7n)).toBe(true);
    expect(accept(w3, 2n ** 60n + 2n)).toBe(false);
    expect(accept(w3, 2n ** 62n + 7n - 2n ** 32n)).toBe(false);
    expect(accept(w3, 2n ** 62n + 6n)).toBe(true);
  });

  it('clears the whole ring when the high half jumps by 2 or more', () => {
    // max in the last ring word of high half 0; the next counter lands in
    // ring word 0 of high half 2, where a word distance computed modulo
    // 2^32 would look like 1 word and leave stale bits in ring word 255.
    const w = new ReplayWindow();
    for (let k = 1n; k <= 32n; k++) expect(accept(w, 2n ** 32n - k)).toBe(true);
    expect(accept(w, 2n ** 33n + 5n)).toBe(true);
    for (let k = 1n; k <= 32n; k++) expect(accept(w, 2n ** 33n - k)).toBe(true); // same ring word, fresh counters
    expect(accept(w, 2n ** 33n - 1n)).toBe(false);
    // Likewise for a jump of exactly one high unit plus more than a ring.
    const w2 = new ReplayWindow();
    expect(accept(w2, 2n ** 32n - 40n)).toBe(true);
    expect(accept(w2, 2n ** 33n - 40n + 8192n * 3n)).toBe(true);
    expect(accept(w2, 2n ** 33n - 40n + 8192n * 3n - 8192n)).toBe(false); // 8192 behind: too old
    expect(accept(w2, 2n ** 33n - 40n + 8192n * 3n - 8100n)).toBe(true);
  });

  it('reset forgets everything', () => {
    const w = new ReplayWindow();
    expect(accept(w, 10_000_000)).toBe(true);
    expect(accept(w, 3)).toBe(false);
    w.reset();
    expect(accept(w, 3)).toBe(true);
    expect(accept(w, 10_000_000)).toBe(true);
    expect(accept(w, 10_000_000)).toBe(false);
  });

  it('matches a Set + max oracle (random counters near interesting bases)', () => {
    const near = (base: bigint, spread: number) => fc.bigInt({ min: 0n, max: BigInt(spread) }).map((d) => base + d);
    const counter = fc.oneof(
      near(0n, 3 * W),
      near(2n ** 32n - BW, 3 * W),
      near(2n ** 53n - BW, 3 * W),
      near(2n ** 64n - 3n * BW, 3 * W - 1), // straddles LIMIT, up to 2^64 − 1
      near(0n, 40), // dense: lots of duplicates
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    );
    fc.assert(
      fc.property(fc.array(counter, { maxLength: 300 }), (cs) => {
        const w = new ReplayWindow();
        const o = new Oracle();
        for (const c of cs) expect([c, accept(w, c)]).toEqual([c, o.accept(c)]);
      }),
      { numRuns: 500 },
    );
  });

  it('matches the oracle on realistic streams (mostly increasing, reordered, duplicated, jumping)', () => {
    const step = fc.oneof(
      { weight: 10, arbitrary: fc.integer({ min: 1, max: 3 }) },
      { weight: 3, arbitrary: fc.integer({ min: -40, max: 40 }) },
      { weight: 2, arbitrary: fc.integer({ min: -W - 40, max: -W + 40 }) }, // right at the window edge
      { weight: 1, arbitrary: fc.integer({ min: 32, max: 3 * 8192 }) }, // skips of up to 3 rings
      { weight: 1, arbitrary: fc.constant(0) },
    );
    const start = fc.oneof(fc.constant(0n), fc.constant(2n ** 32n - 20000n), fc.constant(2n ** 53n - 1000n), fc.constant(LIMIT - 30000n));
    fc.assert(
      fc.property(start, fc.array(step, { maxLength: 2000 }), (s, steps) => {
        const w = new ReplayWindow();
        const o = new Oracle();
        let c = s;
        for (const d of steps) {
          c += BigInt(d);
          if (c < 0n) c = 0n;
          expect(accept(w, c)).toBe(o.accept(c));
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('Keypair send counter', () => {
  const keypair = (lo: number, hi: number) => {
    const k = new Keypair(new Uint8Array(32), new Uint8Array(32), true, 0, 1, 2);
    k.sendLo = lo;
    k.sendHi = hi;
    return k;
  };
  const value = (k: Keypair) => (BigInt(k.sendHi) << 32n) | BigInt(k.sendLo);

  it('advances across the 32-bit boundary and is exhausted exactly at REJECT_AFTER_MESSAGES', () => {
    const c = keypair(0xfffffffe, 0);
    c.advance();
    expect([c.sendLo, c.sendHi]).toEqual([0xffffffff, 0]);
    c.advance();
    expect([c.sendLo, c.sendHi]).toEqual([0, 1]);
    const top = keypair(REJECT_AFTER_MESSAGES_LO - 1, REJECT_AFTER_MESSAGES_HI);
    expect(top.exhausted).toBe(false);
    top.advance();
    expect(top.exhausted).toBe(true);
    expect(value(top)).toBe(LIMIT);
    const fresh = keypair(0, 0);
    fresh.expireSending();
    expect(fresh.exhausted).toBe(true);
    expect(u64AtLeast(0, 1, 0xffffffff, 0)).toBe(true);
    expect(u64AtLeast(0xffffffff, 0, 0, 1)).toBe(false);
  });

  it('agrees with BigInt arithmetic', () => {
    const u64 = fc.bigInt({ min: 0n, max: LIMIT - 1n });
    fc.assert(
      fc.property(u64, u64, (a, b) => {
        const c = keypair(...split(a));
        c.advance();
        expect(value(c)).toBe(a + 1n);
        expect(c.exhausted).toBe(a + 1n >= LIMIT);
        const [lo, hi] = split(b);
        expect(u64AtLeast(c.sendLo, c.sendHi, lo, hi)).toBe(a + 1n >= b);
      }),
      { numRuns: 2000 },
    );
  });
});
