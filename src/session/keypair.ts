/**
 * A transport session: the two keys derived from a handshake, the send
 * counter (as two exact 32-bit halves) and the receive replay window.
 * @module
 */

import { REJECT_AFTER_MESSAGES_HI, REJECT_AFTER_MESSAGES_LO } from '../noise/constants.js';
import { ReplayWindow } from './replay.js';

/** One transport keypair. */
export class Keypair {
  /** Low 32 bits of the next send counter. */
  sendLo = 0;
  /** High 32 bits of the next send counter. */
  sendHi = 0;
  /** Window of counters received with this keypair. */
  readonly replay = new ReplayWindow();

  /**
   * @param send key for sending
   * @param receive key for receiving
   * @param isInitiator whether we initiated the handshake that made it
   * @param created monotonic ms at creation
   * @param localIndex our index (the receiver index of messages to us)
   * @param remoteIndex the peer's index (we put it in messages we send)
   */
  constructor(
    readonly send: Uint8Array,
    readonly receive: Uint8Array,
    readonly isInitiator: boolean,
    readonly created: number,
    readonly localIndex: number,
    readonly remoteIndex: number,
  ) {}

  /** True when the send counter reached REJECT_AFTER_MESSAGES. */
  get exhausted(): boolean {
    return this.sendHi === REJECT_AFTER_MESSAGES_HI && this.sendLo >= REJECT_AFTER_MESSAGES_LO;
  }

  /** Advance the send counter after using the current value. */
  advance(): void {
    if (this.sendLo === 0xffffffff) {
      this.sendLo = 0;
      this.sendHi++;
    } else {
      this.sendLo++;
    }
  }

  /** Make the keypair unusable for sending (keeps receiving possible). */
  expireSending(): void {
    this.sendHi = REJECT_AFTER_MESSAGES_HI;
    this.sendLo = REJECT_AFTER_MESSAGES_LO;
  }

  /** Overwrite the keys with zeros. */
  zero(): void {
    this.send.fill(0);
    this.receive.fill(0);
  }
}
