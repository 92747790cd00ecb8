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
    return this.#map.get(index);
  }

  /** Point an index at a keypair (when a handshake turns into a session). */
  bindKeypair(index: number, peer: P, keypair: Keypair): void {
    this.#map.set(index, { peer, keypair });
  }

  /** Free an index. */
  delete(index: number): void {
    this.#map.delete(index);
  }

  /** Number of live indices. */
  get size(): number {
    return this.#map.size;
  }
}
