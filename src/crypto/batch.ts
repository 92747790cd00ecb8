/**
 * A batch of ChaCha20-Poly1305 operations done in place in one provider
 * call ({@link CryptoProvider.aeadBatch}): the data path records one job per
 * packet (key, counter, buffer, range) and seals or opens the whole batch at
 * once, which the native provider does in one addon call spread over its
 * crypto threads. Keys, nonces and counters are decided by the caller; a
 * batch only does the cipher work, in job order (results land in each
 * job's own buffer, so order is kept whatever runs them).
 * @module
 */

import type { CryptoProvider } from './provider.js';
import { StoreTable } from '../util/store-table.js';
import { KEY_LEN, TAG_LEN } from './provider.js';

/**
 * Numbers per job in {@link AeadBatch.table}: key index, counter lo, counter
 * hi, offset (in the job's buffer), length, store index, offset in the store.
 */
export const AEAD_ROW = 7;

const INITIAL_JOBS = 128;

/**
 * Jobs of one kind (all seals or all opens), reused from batch to batch.
 * Job `i` works on `bufs[i]` from `table[5i+3]` for `table[5i+4]` bytes:
 * sealing encrypts that plaintext in place and writes the 16-byte tag after
 * it; opening takes ciphertext ‖ tag there and leaves the plaintext in place
 * (zeroed when it does not authenticate). `ok[i]` is 1 on success.
 *
 * {@link AeadBatch.add} snapshots each distinct key once per batch, so a
 * keypair erased before the batch runs does not change what its jobs do;
 * {@link AeadBatch.clear} zeroes the snapshots.
 */
export class AeadBatch {
  /** Number of jobs. */
  length = 0;
  /** Key snapshots; `table[5i]` indexes this (entries past the batch's keys are zeroed spares). */
  readonly keys: Uint8Array[] = [];
  /** The buffer of each job. */
  readonly bufs: Uint8Array[] = [];
  readonly #stores = new StoreTable();
  /** Rows of {@link AEAD_ROW} numbers per job. */
  table = new Uint32Array(INITIAL_JOBS * AEAD_ROW);
  /** Per job, after the batch ran: 1 sealed / authentic, 0 failed. */
  ok = new Uint8Array(INITIAL_JOBS);
  #keyCount = 0;
  readonly #keyIndex = new Map<Uint8Array, number>();
  #lastKey: Uint8Array | null = null;
  #lastK = 0;

  /** @param seal true: a batch of seals; false: of opens */
  constructor(readonly seal: boolean) {}

  /**
   * Record a job and return its index. `len` is the plaintext length
   * (seal: `buf` needs 16 more bytes after it) or the ciphertext ‖ tag
   * length (open: at least 16).
   */
  add(key: Uint8Array, lo: number, hi: number, buf: Uint8Array, offset: number, len: number): number {
    if (key.length !== KEY_LEN) throw new RangeError(`AeadBatch.add: key must be ${KEY_LEN} bytes, got ${key.length}`);
    if (offset < 0 || offset + len + (this.seal ? TAG_LEN : 0) > buf.length || (!this.seal && len < TAG_LEN)) {
      throw new RangeError(`AeadBatch.add: range ${offset}+${len} does not fit a ${buf.length}-byte buffer`);
    }
    // Consecutive jobs mostly share a key: check the previous one before the map.
    let k = key === this.#lastKey ? this.#lastK : this.#keyIndex.get(key);
    if (k === undefined) {
      k = this.#keyCount++;
      if (k === this.keys.length) this.keys.push(new Uint8Array(KEY_LEN));
      this.keys[k]!.set(key);
      this.#keyIndex.set(key, k);
    }
    this.#lastKey = key;
    this.#lastK = k;
    const st = this.#stores.indexOf(buf);
    const i = this.length++;
    if (i === this.ok.length) this.#grow();
    const r = i * AEAD_ROW;
    const t = this.table;
    t[r] = k;
    t[r + 1] = lo;
    t[r + 2] = hi;
    t[r + 3] = offset;
    t[r + 4] = len;
    t[r + 5] = st;
    t[r + 6] = buf.byteOffset + offset;
    this.bufs.push(buf);
    return i;
  }

  /**
   * One view of the whole backing buffer of each distinct job buffer
   * (`table[7i+5]` indexes this, `table[7i+6]` is the job's offset in it):
   * a batch whose packets share a few buffers crosses to the addon as those
   * few views and a table of numbers, not an object per packet.
   */
  get stores(): readonly Uint8Array[] {
    return this.#stores.stores;
  }

  /** Forget every job and zero the key snapshots (the arrays are kept for the next batch). */
  clear(): void {
    for (let k = 0; k < this.#keyCount; k++) this.keys[k]!.fill(0);
    this.#keyCount = 0;
    this.#keyIndex.clear();
    this.#lastKey = null;
    this.#stores.clear();
    this.bufs.length = 0;
    this.length = 0;
  }

  #grow(): void {
    const table = new Uint32Array(this.table.length * 2);
    table.set(this.table);
    this.table = table;
    const ok = new Uint8Array(this.ok.length * 2);
    ok.set(this.ok);
    this.ok = ok;
  }
}

/**
 * Run every job of `b` with `p`'s single-packet seal/open: how providers
 * without a batch primitive implement {@link CryptoProvider.aeadBatch}.
 * Returns the number of failed jobs.
 */
export function loopAeadBatch(p: CryptoProvider, b: AeadBatch): number {
  const t = b.table;
  let failed = 0;
  for (let i = 0, r = 0; i < b.length; i++, r += AEAD_ROW) {
    const key = b.keys[t[r]!]!;
    const buf = b.bufs[i]!;
    const off = t[r + 3]!;
    const len = t[r + 4]!;
    const input = buf.subarray(off, off + len);
    if (b.seal) {
      buf.set(p.seal(key, t[r + 1]!, t[r + 2]!, input), off);
      b.ok[i] = 1;
      continue;
    }
    const plain = p.open(key, t[r + 1]!, t[r + 2]!, input);
    if (plain === null) {
      buf.fill(0, off, off + len - TAG_LEN);
      b.ok[i] = 0;
      failed++;
    } else {
      buf.set(plain, off);
      b.ok[i] = 1;
    }
  }
  return failed;
}

/** Seal or open the batch with `p`: its own {@link CryptoProvider.aeadBatch}, else {@link loopAeadBatch}. */
export function runAeadBatch(p: CryptoProvider, b: AeadBatch): number {
  if (b.length === 0) return 0;
  return p.aeadBatch !== undefined ? p.aeadBatch(b) : loopAeadBatch(p, b);
}
