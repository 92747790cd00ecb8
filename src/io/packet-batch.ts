/**
 * The addon hands each read batch (TUN packets, UDP datagrams) to
 * JavaScript as one ArrayBuffer: `count` uint32 lengths, then the packets
 * back to back (native/common.h `PackBatch`). One allocation per batch
 * instead of one Buffer per packet; every packet is a view of it, so a
 * packet kept (staged, queued) keeps its batch's buffer alive.
 * @module
 */

/**
 * Cut the `count` packets of `buffer` into `out` (reused: its length becomes
 * `count`) as Uint8Array views. Throws a RangeError when the lengths do not
 * fit the buffer.
 */
export function unpackBatch(buffer: ArrayBuffer, count: number, out: Uint8Array[]): Uint8Array[] {
  const lens = new Uint32Array(buffer, 0, count);
  let off = count * 4;
  out.length = count;
  for (let i = 0; i < count; i++) {
    const len = lens[i]!;
    out[i] = new Uint8Array(buffer, off, len);
    off += len;
  }
  if (off !== buffer.byteLength) throw new RangeError(`unpackBatch: ${count} packets end at byte ${off} of a ${buffer.byteLength}-byte batch`);
  return out;
}
