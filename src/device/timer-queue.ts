/**
 * A min-heap of timer deadlines with lazy invalidation. Each (owner, slot)
 * pair has at most one live heap entry: pushing a deadline later only
 * updates the owner's field (the entry is re-queued when it pops early), so
 * the per-packet "modify timer" calls of the data path cost a field write.
 * @module
 */

/** Something that owns timer slots. */
export interface TimerOwner {
  /** Deadline per slot in monotonic ms; Infinity when the timer is not pending. */
  readonly timerAt: Float64Array;
  /** Generation per slot: entries of older generations are stale. */
  readonly timerGen: Uint32Array;
}

interface Entry<T> {
  at: number;
  owner: T;
  slot: number;
  gen: number;
}

/** Timer heap shared by all peers of a device. */
export class TimerQueue<T extends TimerOwner> {
  #heap: Entry<T>[] = [];

  /** True if the timer in `slot` is pending. */
  pending(owner: T, slot: number): boolean {
    return owner.timerAt[slot] !== Infinity;
  }

  /** Set the timer in `slot` to fire at `at` (replacing any pending deadline). */
  mod(owner: T, slot: number, at: number): void {
    const cur = owner.timerAt[slot]!;
    owner.timerAt[slot] = at;
    if (cur !== Infinity && at >= cur) return; // the live entry pops first and re-queues itself
    const gen = (owner.timerGen[slot]! + 1) >>> 0;
    owner.timerGen[slot] = gen;
    this.#push({ at, owner, slot, gen });
  }

  /** Cancel the timer in `slot`. */
  del(owner: T, slot: number): void {
    owner.timerAt[slot] = Infinity;
  }

  /** Earliest deadline in the queue (possibly of a stale entry), or Infinity. */
  nextDeadline(): number {
    return this.#heap.length === 0 ? Infinity : this.#heap[0]!.at;
  }

  /**
   * Pop every timer due at `now`, calling `fire(owner, slot)` for each live
   * one in deadline order. A callback may modify timers (also of the same
   * slot); those due now fire in the same call.
   */
  run(now: number, fire: (owner: T, slot: number) => void): void {
    const heap = this.#heap;
    while (heap.length > 0 && heap[0]!.at <= now) {
      const e = this.#pop();
      const { owner, slot } = e;
      if (owner.timerGen[slot] !== e.gen) continue; // superseded
      const at = owner.timerAt[slot]!;
      if (at === Infinity) continue; // cancelled
      if (at > now) {
        e.at = at; // postponed: re-queue the same generation
        this.#push(e);
        continue;
      }
      owner.timerAt[slot] = Infinity;
      fire(owner, slot);
    }
  }

  /** Number of heap entries (live and stale). */
  get size(): number {
    return this.#heap.length;
  }

  #push(e: Entry<T>): void {
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.at <= e.at) break;
      h[i] = h[parent]!;
      i = parent;
    }
    h[i] = e;
  }

  #pop(): Entry<T> {
    const h = this.#heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      const n = h.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && h[r]!.at < h[l]!.at ? r : l;
        if (h[c]!.at >= last.at) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}
