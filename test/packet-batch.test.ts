import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { unpackBatch } from '../src/io/packet-batch.js';

/** The layout the addon writes (native/common.cc PackBatch): count uint32 lengths, then the packets back to back. */
function pack(packets: Uint8Array[]): ArrayBuffer {
  const bytes = packets.reduce((n, p) => n + p.length, packets.length * 4);
  const ab = new ArrayBuffer(bytes);
  const lens = new Uint32Array(ab, 0, packets.length);
  let off = packets.length * 4;
  packets.forEach((p, i) => {
    lens[i] = p.length;
    new Uint8Array(ab, off, p.length).set(p);
    off += p.length;
  });
  return ab;
}

describe('unpackBatch', () => {
  it('gives back the packed packets as views of the one buffer, in order', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 1500 }), { maxLength: 140 }), (packets) => {
        const ab = pack(packets);
        const out: Uint8Array[] = [new Uint8Array(3), new Uint8Array(3)]; // reused: stale entries go
        unpackBatch(ab, packets.length, out);
        expect(out.length).toBe(packets.length);
        out.forEach((p, i) => {
          expect(p.buffer).toBe(ab);
          expect(Array.from(p)).toEqual(Array.from(packets[i]!));
        });
      }),
    );
  });

  it('rejects lengths that do not add up to the buffer', () => {
    const ab = pack([new Uint8Array([1, 2, 3]), new Uint8Array([4])]);
    new Uint32Array(ab, 0, 2)[1] = 2;
    expect(() => unpackBatch(ab, 2, [])).toThrow(RangeError);
    new Uint32Array(ab, 0, 2)[1] = 100;
    expect(() => unpackBatch(ab, 2, [])).toThrow(RangeError);
  });
});
