/**
 * Random 32-bit receiver indices → the handshake or keypair they name.
 * @module
 */

import type { Keypair } from '../session/keypair.js';

/** What an index refers to. */
export interface IndexEntry<P> {
  /** The peer. */
  readonly peer: P;
  /** The keypair, or null while the index belongs to an in-flight handshake. */
  keypair: Keypair | null;
}

/** Table of local indices. */
export class IndexTable<P> {
  #map = new Map<number, IndexEntry<P>>();
  /** The last index looked up and its entry: consecutive datagrams of a flow name the same index. */
  #lastIndex = -1;
  #lastEntry: IndexEntry<P> | undefined = undefined;

  /** @param random32 source of random 32-bit values */
  constructor(private readonly random32: () => number) {}

  /** Allocate a fresh non-zero index for an in-flight handshake of `peer`. */
  allocate(peer: P): number {
    for (;;) {
      const i = this.random32() >>> 0;
      if (i !== 0 && !this.#map.has(i)) {
        this.#map.set(i, { peer, keypair: null });
        return i;
      }
    }
  }

  /** Look an index up. */
  get(index: number): IndexEntry<P> | undefined {
    if (index === this.#lastIndex) return this.#lastEntry;
    const e = this.#map.get(index);
    if (e !== undefined) {
      this.#lastIndex = index;
      this.#lastEntry = e;
    }
    return e;
  }

  /** Point an index at a keypair (when a handshake turns into a session). */
  bindKeypair(index: number, peer: P, keypair: Keypair): void {
    this.#map.set(index, { peer, keypair });
    if (index === this.#lastIndex) this.#forget();
  }

  /** Free an index. */
  delete(index: number): void {
    this.#map.delete(index);
    if (index === this.#lastIndex) this.#forget();
  }

  #forget(): void {
    this.#lastIndex = -1;
    this.#lastEntry = undefined;
  }

  /** Number of live indices. */
  get size(): number {
    return this.#map.size;
  }
}
