/**
 * A cache of imported keys (OpenSSL key objects) per key array, shared by the
 * node and native providers: importing an X25519 private key costs a scalar
 * multiplication (OpenSSL derives the public key), and a handshake uses the
 * static key and each ephemeral key more than once.
 * @internal
 * @module
 */

/**
 * Keys of type `K` per 32-byte key array. An entry lives exactly as long as its
 * array (WeakMap) and is used only while the array still holds the same bytes,
 * so a key zeroed or rewritten in place is never served stale.
 */
export class KeyCache<K> {
  readonly #entries = new WeakMap<Uint8Array, { bytes: Uint8Array; key: K }>();

  /** The cached key of `raw`, or `make(raw)`, remembered for next time. */
  get(raw: Uint8Array, make: (raw: Uint8Array) => K): K {
    const hit = this.#entries.get(raw);
    if (hit !== undefined && hit.bytes.length === raw.length) {
      let diff = 0;
      for (let i = 0; i < raw.length; i++) diff |= hit.bytes[i]! ^ raw[i]!;
      if (diff === 0) return hit.key;
    }
    const key = make(raw);
    this.set(raw, key);
    return key;
  }

  /** Remember `key` as the imported form of `raw` (e.g. a key pair generated together). */
  set(raw: Uint8Array, key: K): void {
    this.#entries.set(raw, { bytes: raw.slice(), key });
  }
}
