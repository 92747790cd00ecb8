/**
 * Anti-replay window: a table test in the style of wireguard-go's, exact
 * behaviour beyond 2^53, and a property test against a Set-based oracle.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReplayWindow } from '../src/session/replay.js';

const W = ReplayWindow.WINDOW;
const LIMIT = 2n ** 64n - 2n ** 13n - 1n;
const split = (c: bigint): [number, number] => [Number(c & 0xffffffffn), Number(c >> 32n)];
const accept = (w: ReplayWindow, c: bigint | number) => w.accept(...split(BigInt(c)));

describe('ReplayWindow', () => {
  it('holds at least 2000 packets', () => {
    expect(W).toBeGreaterThanOrEqual(2000);
  });

  it('accepts each counter once, in any order inside the window', () => {
    const w = new ReplayWindow();
    const seq: [number, boolean][] = [
      [0, true], [1, true], [1, false], [9, true], [8, true], [7, true], [7, false],
      [W, true], [W + 1, true], [W + 1, false], [1, false], [2, true], [0, false],
      // 3 is W-1 behind the maximum W+2: inside the window and never seen.
      [W + 2, true], [2, false], [3, true],
    ];
    for (const [c, want] of seq) expect([c, accept(w, c)]).toEqual([c, want]);
    expect(accept(w, 3 * W)).toBe(true);
    expect(accept(w, 2 * W - 1)).toBe(false); // older than the window
    expect(accept(w, 2 * W)).toBe(true); // exactly WINDOW behind: still tracked
    expect(accept(w, 2 * W)).toBe(false);
  });

  it('handles counters beyond 2^53 exactly', () => {
    const w = new ReplayWindow();
    const base = 2n ** 53n;
    expect(accept(w, base)).toBe(true);
    expect(accept(w, base + 1n)).toBe(true); // base+1 is not representable as a double
    expect(accept(w, base + 1n)).toBe(false);
    expect(accept(w, base + 3n)).toBe(true);
    expect(accept(w, base + 2n)).toBe(true);
    expect(accept(w, base - 1n)).toBe(true);
    expect(accept(w, base - BigInt(W) + 3n)).toBe(true);
    expect(accept(w, base - BigInt(W) + 2n)).toBe(false);
    // Around the 2^32 boundary of the low half.
    const w2 = new ReplayWindow();
    expect(accept(w2, 2n ** 32n - 1n)).toBe(true);
    expect(accept(w2, 2n ** 32n)).toBe(true);
    expect(accept(w2, 2n ** 32n - 1n)).toBe(false);
    expect(accept(w2, 2n ** 32n - 5n)).toBe(true);
  });

  it('rejects REJECT_AFTER_MESSAGES and beyond', () => {
    const w = new ReplayWindow();
    expect(accept(w, LIMIT - 1n)).toBe(true);
    expect(accept(w, LIMIT)).toBe(false);
    expect(accept(w, 2n ** 64n - 1n)).toBe(false);
    expect(accept(w, LIMIT - 2n)).toBe(true);
  });

  it('matches a Set + max oracle', () => {
    const near = (base: bigint) => fc.bigInt({ min: 0n, max: BigInt(3 * W) }).map((d) => base + d);
    const counter = fc.oneof(near(0n), near(2n ** 53n - BigInt(W)), near(2n ** 32n - BigInt(W)), near(LIMIT - BigInt(2 * W)));
    fc.assert(
      fc.property(fc.array(counter, { maxLength: 400 }), (cs) => {
        const w = new ReplayWindow();
        const seen = new Set<bigint>();
        let max = 0n;
        for (const c of cs) {
          const want = c < LIMIT && !seen.has(c) && (c > max || max - c <= BigInt(W));
          expect(accept(w, c)).toBe(want);
          if (want) {
            seen.add(c);
            if (c > max) max = c;
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
