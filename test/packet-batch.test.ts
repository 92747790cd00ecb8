import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { unpackBatch } from '../src/io/packet-batch.js';

/** The layout the addon writes (native/common.cc PackBatch): count uint32 lengths, then the packets back to back. */
function pack(packets: Uint8Array[], at = 0): Uint8Array {
  const bytes = packets.reduce((n, p) => n + p.length, packets.length * 4);
  const ab = new ArrayBuffer(at + bytes);
  const lens = new Uint32Array(ab, at, packets.length);
  let off = at + packets.length * 4;
  packets.forEach((p, i) => {
    lens[i] = p.length;
    new Uint8Array(ab, off, p.length).set(p);
    off += p.length;
  });
  return new Uint8Array(ab, at, bytes);
}

describe('unpackBatch', () => {
  it('gives back the packed packets as views of the one buffer, in order', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 1500 }), { maxLength: 140 }), fc.constantFrom(0, 8, 1024), (packets, at) => {
        const batch = pack(packets, at);
        const out: Uint8Array[] = [new Uint8Array(3), new Uint8Array(3)]; // reused: stale entries go
        unpackBatch(batch, packets.length, out);
        expect(out.length).toBe(packets.length);
        out.forEach((p, i) => {
          expect(p.buffer).toBe(batch.buffer);
          expect(Array.from(p)).toEqual(Array.from(packets[i]!));
        });
      }),
    );
  });

  it('rejects lengths that do not add up to the buffer', () => {
    const batch = pack([new Uint8Array([1, 2, 3]), new Uint8Array([4])]);
    const lens = new Uint32Array(batch.buffer, 0, 2);
    lens[1] = 2;
    expect(() => unpackBatch(batch, 2, [])).toThrow(RangeError);
    lens[1] = 100;
    expect(() => unpackBatch(batch, 2, [])).toThrow(RangeError);
    lens[1] = 1;
    expect(() => unpackBatch(batch.subarray(1), 2, [])).toThrow(/4-byte boundary/);
  });
});
