/**
 * Per-source token bucket for handshake messages while under load
 * (the same parameters as wireguard-go: 20 per second, burst of 5).
 * IPv4 sources are limited per address, IPv6 sources per /64.
 * @module
 */

import { keyToHex } from '../crypto/keys.js';

/** Handshakes allowed per second per source. */
export const RATE_PER_SECOND = 20;
/** Burst size per source. */
export const BURST = 5;
const COST = 1000 / RATE_PER_SECOND; // ms of tokens per packet
const MAX_TOKENS = COST * BURST;
const GC_AFTER = 1000;

interface Bucket {
  tokens: number;
  last: number;
}

/** Token-bucket rate limiter keyed by source address, driven by an injected clock. */
export class RateLimiter {
  #buckets = new Map<string, Bucket>();
  #lastGc = 0;

  /** @param now monotonic clock in ms */
  constructor(private readonly now: () => number) {}

  /** Bucket key for an address: the whole IPv4 address, or the /64 of an IPv6 address. */
  static keyOf(ip: Uint8Array): string {
    return keyToHex(ip.length === 16 ? ip.subarray(0, 8) : ip);
  }

  /** True if a handshake from address `ip` (4 or 16 bytes) may be processed now; takes a token. */
  allow(ip: Uint8Array): boolean {
    const t = this.now();
    if (t - this.#lastGc > GC_AFTER) this.gc(t);
    const key = RateLimiter.keyOf(ip);
    let b = this.#buckets.get(key);
    if (b === undefined) {
      b = { tokens: MAX_TOKENS - COST, last: t };
      this.#buckets.set(key, b);
      return true;
    }
    b.tokens = Math.min(MAX_TOKENS, b.tokens + (t - b.last));
    b.last = t;
    if (b.tokens >= COST) {
      b.tokens -= COST;
      return true;
    }
    return false;
  }

  /** Drop buckets idle for more than a second. */
  gc(t = this.now()): void {
    this.#lastGc = t;
    for (const [k, b] of this.#buckets) if (t - b.last > GC_AFTER) this.#buckets.delete(k);
  }

  /** Number of tracked sources. */
  get size(): number {
    return this.#buckets.size;
  }
}
