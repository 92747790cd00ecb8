/**
 * The bounded queue of handshake messages (initiations, responses, cookie
 * replies) and the device's one "under load" rule, as in wireguard-go: the
 * device is under load while the queue holds at least an eighth of its
 * capacity, and for {@link UNDER_LOAD_AFTER_TIME} after. Under load it
 * demands cookies (mac2) and rate-limits initiators per source.
 * @module
 */

import { HANDSHAKE_QUEUE_SIZE, UNDER_LOAD_AFTER_TIME } from './constants.js';
import type { Endpoint } from './types.js';

/** A ring buffer of handshake messages with their sources. */
export class HandshakeQueue {
  readonly #data: (Uint8Array | undefined)[];
  readonly #from: (Endpoint | undefined)[];
  #head = 0;
  #length = 0;
  #underLoadUntil = -Infinity;

  /** @param capacity messages held at most */
  constructor(readonly capacity = HANDSHAKE_QUEUE_SIZE) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`handshake queue capacity must be a positive integer, got ${capacity}`);
    this.#data = new Array<Uint8Array | undefined>(capacity).fill(undefined);
    this.#from = new Array<Endpoint | undefined>(capacity).fill(undefined);
  }

  /** Messages waiting. */
  get length(): number {
    return this.#length;
  }

  /** Append a message; false (and nothing queued) when the queue is full. */
  push(data: Uint8Array, from: Endpoint): boolean {
    if (this.#length === this.capacity) return false;
    const i = (this.#head + this.#length) % this.capacity;
    this.#data[i] = data;
    this.#from[i] = from;
    this.#length++;
    return true;
  }

  /** The oldest message (call only when {@link HandshakeQueue.length} > 0). */
  peekData(): Uint8Array {
    return this.#data[this.#head]!;
  }

  /** The source of the oldest message. */
  peekFrom(): Endpoint {
    return this.#from[this.#head]!;
  }

  /** Remove the oldest message. */
  shift(): void {
    if (this.#length === 0) return;
    this.#data[this.#head] = undefined;
    this.#from[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.capacity;
    this.#length--;
  }

  /** Drop every waiting message. */
  clear(): void {
    while (this.#length > 0) this.shift();
  }

  /**
   * wireguard-go's IsUnderLoad: true while at least an eighth of the
   * capacity is waiting (which also extends the state), and until
   * {@link UNDER_LOAD_AFTER_TIME} after the last time it was.
   * @param now monotonic ms
   */
  underLoad(now: number): boolean {
    if (this.#length >= this.capacity / 8) {
      this.#underLoadUntil = now + UNDER_LOAD_AFTER_TIME;
      return true;
    }
    return now < this.#underLoadUntil;
  }
}
