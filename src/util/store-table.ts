/**
 * The distinct backing buffers of a batch of views, each as one view of the
 * whole buffer, by index: a batch of packets that are views of a few
 * buffers crosses to the native addon as those few views and a table of
 * numbers (store index, offset, length), not as an object per packet.
 * @module
 */

/** Stores of one batch; {@link StoreTable.clear} empties it for the next. */
export class StoreTable {
  /** One view of each distinct backing buffer, in first-seen order. */
  readonly stores: Uint8Array[] = [];
  readonly #index = new Map<ArrayBufferLike, number>();
  #last: ArrayBufferLike | null = null;
  #lastIndex = 0;

  /** The index in {@link StoreTable.stores} of the buffer `view` is part of (added on first sight). */
  indexOf(view: Uint8Array): number {
    const backing = view.buffer;
    if (backing === this.#last) return this.#lastIndex;
    let i = this.#index.get(backing);
    if (i === undefined) {
      i = this.stores.length;
      this.stores.push(new Uint8Array(backing));
      this.#index.set(backing, i);
    }
    this.#last = backing;
    this.#lastIndex = i;
    return i;
  }

  /** Forget every store. */
  clear(): void {
    this.stores.length = 0;
    this.#index.clear();
    this.#last = null;
  }
}

/**
 * Describe `views[0, count)` in `table` (grown when too small; the table in
 * use is returned) as (store index, byte offset, length) triples of `stores`.
 */
export function viewTable(stores: StoreTable, views: readonly Uint8Array[], count: number, table: Uint32Array): Uint32Array {
  let t = table;
  if (t.length < count * 3) {
    let n = Math.max(t.length, 3);
    while (n < count * 3) n *= 2;
    t = new Uint32Array(n);
  }
  for (let i = 0, r = 0; i < count; i++, r += 3) {
    const v = views[i]!;
    t[r] = stores.indexOf(v);
    t[r + 1] = v.byteOffset;
    t[r + 2] = v.byteLength;
  }
  return t;
}
