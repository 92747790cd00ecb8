/**
 * WireGuard's wire format and handshake constants (whitepaper §5–6): message
 * types and sizes, labels, counter limits, cookie and initiation timing.
 * Times are in milliseconds. The device's timer, MTU and queue constants are
 * in `device/constants.ts`.
 * @module
 */

/** Noise construction name. */
export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
/** WireGuard identifier, mixed into the hash as the Noise prologue. */
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
/** Label for the mac1 key. */
export const LABEL_MAC1 = 'mac1----';
/** Label for the cookie encryption key. */
export const LABEL_COOKIE = 'cookie--';

/** Message type numbers (first byte; the next three bytes are zero). */
export const MSG_INITIATION = 1;
/** Handshake response. */
export const MSG_RESPONSE = 2;
/** Cookie reply. */
export const MSG_COOKIE_REPLY = 3;
/** Transport data. */
export const MSG_TRANSPORT = 4;

/** Size of a handshake initiation. */
export const INITIATION_SIZE = 148;
/** Size of a handshake response. */
export const RESPONSE_SIZE = 92;
/** Size of a cookie reply. */
export const COOKIE_REPLY_SIZE = 64;
/** Size of the transport header (type, receiver, counter). */
export const TRANSPORT_HEADER_SIZE = 16;
/** Size of a keepalive: header plus an empty ciphertext's tag. */
export const KEEPALIVE_SIZE = 32;
/** Smallest valid transport message. */
export const MIN_TRANSPORT_SIZE = KEEPALIVE_SIZE;
/** Largest datagram we accept (an IPv6 jumbo payload cannot reach us over UDP). */
export const MAX_DATAGRAM_SIZE = 65535;
/** Transport plaintexts are padded to a multiple of this. */
export const PADDING_MULTIPLE = 16;

/** Offsets of mac1 and mac2 inside handshake messages (from the end). */
export const MAC_SIZE = 16;

/** 2^64 − 2^13 − 1, as 32-bit halves: a key never sends or accepts this counter or beyond. */
export const REJECT_AFTER_MESSAGES_HI = 0xffffffff;
/** Low half of REJECT_AFTER_MESSAGES. */
export const REJECT_AFTER_MESSAGES_LO = 0xffffffff - 2 ** 13; // 2^32 − 2^13 − 1

/** Cookie secret lifetime and cookie validity. */
export const COOKIE_REFRESH_TIME = 120_000;
/** Minimum spacing of initiations accepted from one peer (flood protection). */
export const HANDSHAKE_INITIATION_RATE = 20;
