/**
 * The device's timer, rekey, MTU and queue constants (the whitepaper's §6
 * table and wireguard-go's device/constants.go). Times are in milliseconds.
 * Wire-format constants live in `noise/constants.ts`.
 * @module
 */

/** The initiator rekeys after sending 2^60 messages with one key: the high 32 bits of that counter. */
export const REKEY_AFTER_MESSAGES_HI = 2 ** 28;
/** Rekey (initiator) when a key is this old. */
export const REKEY_AFTER_TIME = 120_000;
/** Never use a key older than this. */
export const REJECT_AFTER_TIME = 180_000;
/** Give up a handshake after trying for this long. */
export const REKEY_ATTEMPT_TIME = 90_000;
/** Retransmit an unanswered initiation after this (+ jitter). */
export const REKEY_TIMEOUT = 5_000;
/** Max random jitter added to REKEY_TIMEOUT. */
export const REKEY_TIMEOUT_JITTER_MAX = 334;
/** Passive keepalive delay. */
export const KEEPALIVE_TIMEOUT = 10_000;
/** Handshakes retried at most this many times (REKEY_ATTEMPT_TIME / REKEY_TIMEOUT). */
export const MAX_TIMER_HANDSHAKES = REKEY_ATTEMPT_TIME / REKEY_TIMEOUT;
/** Default interface MTU. */
export const DEFAULT_MTU = 1420;
/** Packets staged per peer while no session exists (oldest dropped beyond). */
export const MAX_STAGED_PACKETS = 128;
/** Handshake messages waiting at most (wireguard-go's QueueHandshakeSize); more are dropped. */
export const HANDSHAKE_QUEUE_SIZE = 1024;
/** How long the device stays under load after its handshake queue was an eighth full (UnderLoadAfterTime). */
export const UNDER_LOAD_AFTER_TIME = 1_000;
