/**
 * The device's handshake queue and under-load rule (src/device/load.ts):
 * FIFO with a hard capacity across wrap-around, and wireguard-go's rule —
 * under load while ≥ 1/8 of the capacity waits, and for 1 s after.
 */
import { describe, expect, it } from 'vitest';
import { UNDER_LOAD_AFTER_TIME } from '../src/device/constants.js';
import { HandshakeQueue } from '../src/device/load.js';

const msg = (n: number) => Uint8Array.of(n);
const from = (n: number) => ({ host: '192.0.2.1', port: n });

describe('HandshakeQueue', () => {
  it('is FIFO, refuses beyond its capacity, and wraps around', () => {
    const q = new HandshakeQueue(4);
    for (let i = 0; i < 4; i++) expect(q.push(msg(i), from(i))).toBe(true);
    expect(q.push(msg(9), from(9))).toBe(false);
    expect(q.length).toBe(4);
    const out: number[] = [];
    for (let round = 0; round < 10; round++) {
      out.push(q.peekData()[0]!, q.peekFrom().port);
      q.shift();
      expect(q.push(msg(round + 4), from(round + 4))).toBe(true);
    }
    expect(out).toEqual([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9]);
    q.clear();
    expect(q.length).toBe(0);
    expect(() => new HandshakeQueue(0)).toThrow(/positive integer/);
  });

  it('is under load from an eighth of its capacity, and for one second after', () => {
    const q = new HandshakeQueue(64);
    let t = 5_000;
    for (let i = 0; i < 7; i++) q.push(msg(i), from(i));
    expect(q.underLoad(t)).toBe(false);
    q.push(msg(7), from(7));
    expect(q.underLoad(t)).toBe(true);
    q.clear();
    t += UNDER_LOAD_AFTER_TIME - 1;
    expect(q.underLoad(t)).toBe(true);
    t += 1;
    expect(q.underLoad(t)).toBe(false);
  });
});
