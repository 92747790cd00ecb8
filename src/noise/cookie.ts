/**
 * WireGuard's DoS cookies (whitepaper §5.4.7): mac1 on every handshake
 * message, mac2 and cookie replies when the responder is under load.
 * @module
 */

import type { CryptoProvider } from '../crypto/provider.js';
import { MAC_LEN, XNONCE_LEN } from '../crypto/provider.js';
import { bytesEqual } from '../crypto/keys.js';
import { COOKIE_REFRESH_TIME, LABEL_COOKIE, LABEL_MAC1 } from './constants.js';
import { COOKIE, encodeCookieReply, mac1Input, mac1Of, mac2Input, mac2Of, readU32 } from './messages.js';

const encoder = new TextEncoder();
const MAC1_LABEL = encoder.encode(LABEL_MAC1);
const COOKIE_LABEL = encoder.encode(LABEL_COOKIE);

/** HASH("mac1----" ‖ public key): the key of mac1 for messages sent to that key's owner. */
export function mac1Key(p: CryptoProvider, publicKey: Uint8Array): Uint8Array {
  return p.hash(MAC1_LABEL, publicKey);
}

/** HASH("cookie--" ‖ public key): the key that encrypts cookies sent by that key's owner. */
export function cookieKey(p: CryptoProvider, publicKey: Uint8Array): Uint8Array {
  return p.hash(COOKIE_LABEL, publicKey);
}

/**
 * The responder side: checks mac1/mac2 of incoming handshake messages and
 * makes cookie replies. One per device, keyed on the device's public key.
 */
export class CookieChecker {
  #mac1Key: Uint8Array | null = null;
  #encKey: Uint8Array | null = null;
  #secret: Uint8Array;
  #secretSetAt = -Infinity;

  /** @param p crypto provider @param now monotonic clock in ms */
  constructor(
    private readonly p: CryptoProvider,
    private readonly now: () => number,
  ) {
    this.#secret = new Uint8Array(32);
  }

  /** Set (or clear) the device's public key. */
  init(publicKey: Uint8Array | null): void {
    if (publicKey === null) {
      this.#mac1Key = this.#encKey = null;
      return;
    }
    this.#mac1Key = mac1Key(this.p, publicKey);
    this.#encKey = cookieKey(this.p, publicKey);
  }

  /** True if mac1 of `msg` is valid for our public key. */
  checkMac1(msg: Uint8Array): boolean {
    if (this.#mac1Key === null) return false;
    return bytesEqual(this.p.mac(this.#mac1Key, mac1Input(msg)), mac1Of(msg));
  }

  /** True if mac2 of `msg` carries a valid, current cookie for `src` (IP ‖ port bytes). */
  checkMac2(msg: Uint8Array, src: Uint8Array): boolean {
    if (this.now() - this.#secretSetAt > COOKIE_REFRESH_TIME) return false;
    const cookie = this.p.mac(this.#secret, src);
    return bytesEqual(this.p.mac(cookie, mac2Input(msg)), mac2Of(msg));
  }

  /**
   * A 64-byte cookie reply to `msg` (whose sender index is `receiver`) from
   * source `src`. Rotates the secret when it is older than two minutes.
   */
  createReply(msg: Uint8Array, receiver: number, src: Uint8Array, nonce?: Uint8Array): Uint8Array | null {
    if (this.#encKey === null) return null;
    const t = this.now();
    if (t - this.#secretSetAt > COOKIE_REFRESH_TIME) {
      this.#secret = this.p.randomBytes(32);
      this.#secretSetAt = t;
    }
    const cookie = this.p.mac(this.#secret, src);
    const n = nonce ?? this.p.randomBytes(XNONCE_LEN);
    const enc = this.p.xseal(this.#encKey, n, cookie, mac1Of(msg));
    return encodeCookieReply(receiver, n, enc);
  }

  /** For tests and vectors: install a fixed secret as if generated now. */
  setSecretForTesting(secret: Uint8Array): void {
    this.#secret = secret;
    this.#secretSetAt = this.now();
  }
}

/**
 * The initiator side, one per peer: adds mac1 (and mac2 when it holds a
 * fresh cookie) to outgoing handshake messages and accepts cookie replies.
 */
export class CookieGenerator {
  /** Derived from the peer's key on first use (a hub holds many peers that never call). */
  #mac1Key: Uint8Array | null = null;
  #decKey: Uint8Array | null = null;
  #lastMac1: Uint8Array | null = null;
  #cookie: Uint8Array | null = null;
  #cookieSetAt = -Infinity;

  /** @param remoteStatic the peer's public key */
  constructor(
    private readonly p: CryptoProvider,
    private readonly now: () => number,
    private readonly remoteStatic: Uint8Array,
  ) {}

  /** Fill in mac1 and mac2 of a handshake message in place. */
  addMacs(msg: Uint8Array): void {
    const mac1 = this.p.mac((this.#mac1Key ??= mac1Key(this.p, this.remoteStatic)), mac1Input(msg));
    msg.set(mac1, msg.length - 2 * MAC_LEN);
    this.#lastMac1 = mac1;
    if (this.#cookie !== null && this.now() - this.#cookieSetAt < COOKIE_REFRESH_TIME) {
      msg.set(this.p.mac(this.#cookie, mac2Input(msg)), msg.length - MAC_LEN);
    } else {
      msg.fill(0, msg.length - MAC_LEN);
    }
  }

  /**
   * Decrypt a cookie reply that answers our last handshake message.
   * Returns false if it does not authenticate.
   */
  consumeReply(reply: Uint8Array): boolean {
    if (this.#lastMac1 === null) return false;
    const nonce = reply.subarray(COOKIE.nonce, COOKIE.nonce + XNONCE_LEN);
    const cookie = this.p.xopen((this.#decKey ??= cookieKey(this.p, this.remoteStatic)), nonce, reply.subarray(COOKIE.cookie), this.#lastMac1);
    if (cookie === null) return false;
    this.#cookie = cookie;
    this.#cookieSetAt = this.now();
    this.#lastMac1 = null;
    return true;
  }

  /** The receiver index a cookie reply is addressed to. */
  static receiverOf(reply: Uint8Array): number {
    return readU32(reply, COOKIE.receiver);
  }
}
