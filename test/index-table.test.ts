/**
 * Receiver indices (src/device/index-table.ts): never zero, never reused
 * while live (even when the random source repeats itself), bound to a
 * keypair when a handshake becomes a session, freed on delete.
 */
import { describe, expect, it } from 'vitest';
import { IndexTable } from '../src/device/index-table.js';
import { Keypair } from '../src/session/keypair.js';

describe('IndexTable', () => {
  it('skips zero and live indices from the random source', () => {
    const values = [0, 7, 7, 0x1_0000_0007, 9, 0xffffffff];
    const t = new IndexTable<string>(() => values.shift()!);
    expect(t.allocate('a')).toBe(7);
    expect(t.allocate('b')).toBe(9); // 7 again (also as 2^32 + 7) is taken
    expect(t.allocate('c')).toBe(0xffffffff);
    expect(t.size).toBe(3);
    expect(t.get(9)).toEqual({ peer: 'b', keypair: null });
    expect(t.get(8)).toBeUndefined();
  });

  it('binds an index to a keypair and frees it', () => {
    let next = 1;
    const t = new IndexTable<string>(() => next++);
    const i = t.allocate('peer');
    const kp = new Keypair(new Uint8Array(32), new Uint8Array(32), true, 0, i, 99);
    t.bindKeypair(i, 'peer', kp);
    expect(t.get(i)?.keypair).toBe(kp);
    t.delete(i);
    expect(t.get(i)).toBeUndefined();
    expect(t.size).toBe(0);
    next = i;
    expect(t.allocate('again')).toBe(i); // free again
  });
});
