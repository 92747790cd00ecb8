/**
 * The addon hands each read batch (TUN packets, UDP datagrams) to
 * JavaScript as one buffer: `count` uint32 lengths, then the packets
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
export function unpackBatch(batch: Uint8Array, count: number, out: Uint8Array[]): Uint8Array[] {
  const buffer = batch.buffer;
  const start = batch.byteOffset;
  const end = start + batch.byteLength;
  if ((start & 3) !== 0) throw new RangeError(`unpackBatch: the batch starts at byte ${start}, not on a 4-byte boundary`);
  const lens = new Uint32Array(buffer, start, count);
  let off = start + count * 4;
  out.length = count;
  for (let i = 0; i < count; i++) {
    const len = lens[i]!;
    if (off + len > end) break;
    out[i] = new Uint8Array(buffer, off, len);
    off += len;
  }
  if (off !== end) throw new RangeError(`unpackBatch: ${count} packets do not fill the ${batch.byteLength}-byte batch`);
  return out;
}
