/**
 * Per-peer state of the sans-IO device: configuration, handshake, keypairs,
 * staged packets, timers and counters. The protocol logic lives in the
 * device's modules (send.ts, receive.ts, timers.ts, sessions.ts).
 * @module
 */

import type { CryptoProvider } from '../crypto/provider.js';
import { keyToBase64 } from '../crypto/keys.js';
import { CookieGenerator } from '../noise/cookie.js';
import { Handshake } from '../noise/handshake.js';
import type { Keypair } from '../session/keypair.js';
import type { KeypairSlots } from '../session/keypairs.js';
import type { TimerOwner } from './timer-queue.js';
import type { Endpoint } from './types.js';

/** Timer slots of a peer (the five timers of the kernel's timers.c). */
export const Timer = {
  RetransmitHandshake: 0,
  SendKeepalive: 1,
  NewHandshake: 2,
  ZeroKeyMaterial: 3,
  PersistentKeepalive: 4,
} as const;
const TIMER_COUNT = 5;

/** A peer of the device. Read its public fields; change it only through the device. */
export class Peer implements TimerOwner, KeypairSlots {
  /** Base64 public key (the peer's name in maps and events). */
  readonly id: string;
  /** Handshake state. */
  readonly handshake: Handshake;
  /** mac1/mac2 for messages to this peer. */
  readonly cookies: CookieGenerator;
  /** Current endpoint (configured or learned by roaming). */
  endpoint: Endpoint | null = null;
  /** The endpoint last set by configuration (UAPI/API), as opposed to learned by roaming. */
  configuredEndpoint: Endpoint | null = null;
  /** Persistent keepalive interval in seconds (0 = off). */
  persistentKeepalive = 0;
  /** Session in use for sending. */
  current: Keypair | null = null;
  /** Session kept for packets still in flight from before the last rekey. */
  previous: Keypair | null = null;
  /** Responder's new session, promoted to current on the first packet received with it. */
  next: Keypair | null = null;
  /** IP packets waiting for a session (oldest first). */
  staged: Uint8Array[] = [];
  /** Initiations sent in the current handshake attempt. */
  handshakeAttempts = 0;
  /** A keepalive is owed once the pending one is sent. */
  needAnotherKeepalive = false;
  /** The receive-side rekey near REJECT_AFTER_TIME was already done for this session. */
  sentLastMinuteHandshake = false;
  /** Monotonic ms of our last handshake message (initiation or response). */
  lastSentHandshake = -Infinity;
  /** Wall-clock ms of the last completed handshake (0 = never). */
  lastHandshakeWall = 0;
  /** Bytes of UDP payload received from / sent to this peer. */
  rxBytes = 0;
  /** See {@link Peer.rxBytes}. */
  txBytes = 0;
  /** Packets from this peer dropped after authentication (bad inner packet, source not allowed). */
  rxDropped = 0;
  /** Packets to this peer dropped (staged overflow, no endpoint). */
  txDropped = 0;
  /** Set when removed from its device. */
  removed = false;
  /** Timer deadlines (see {@link TimerOwner}). */
  readonly timerAt = new Float64Array(TIMER_COUNT).fill(Infinity);
  /** Timer generations (see {@link TimerOwner}). */
  readonly timerGen = new Uint32Array(TIMER_COUNT);

  /** @param publicKey the peer's static public key */
  constructor(
    p: CryptoProvider,
    now: () => number,
    readonly publicKey: Uint8Array,
  ) {
    this.id = keyToBase64(publicKey);
    this.handshake = new Handshake(p, publicKey);
    this.cookies = new CookieGenerator(p, now, publicKey);
  }
}
