/**
 * WireGuard's handshake messages on top of the Noise_IKpsk2 functions: the
 * per-peer handshake state, creating and consuming initiations and responses,
 * and deriving the transport keys. MACs are added by the cookie module.
 * @module
 */

import type { CryptoProvider } from '../crypto/provider.js';
import { bytesEqual, isZeroKey } from '../crypto/keys.js';
import { compareTai64n } from '../crypto/tai64n.js';
import { CONSTRUCTION, HANDSHAKE_INITIATION_RATE, IDENTIFIER } from './constants.js';
import { cloneState, initialState, readMessageAPayload, readMessageB, split, writeMessageA, type NoiseState } from './ikpsk2.js';
import { encodeInitiation, encodeResponse, INIT, readU32, RESP } from './messages.js';
import { initiationSteps, responseSteps, type InitiationStepJob, type InitiationStepResult, type ResponseStepJob, type ResponseStepResult } from './steps.js';

const IDENTIFIER_BYTES = new TextEncoder().encode(IDENTIFIER);
/** Shared initial values of every handshake (fields holding them are replaced, never written in place). */
const ZERO_TIMESTAMP = new Uint8Array(12);
const ZERO_PSK = new Uint8Array(32);

/** Where a peer's handshake stands. */
export enum HandshakeStage {
  /** No handshake in progress. */
  Zeroed = 0,
  /** We sent an initiation and await the response. */
  InitiationCreated = 1,
  /** We accepted an initiation and must answer it. */
  InitiationConsumed = 2,
  /** We sent a response; keys are derived. */
  ResponseCreated = 3,
  /** We accepted a response; keys are derivable. */
  ResponseConsumed = 4,
}

/** The device's static identity as the handshake needs it. */
export interface LocalIdentity {
  /** Static private key. */
  readonly privateKey: Uint8Array;
  /** Static public key. */
  readonly publicKey: Uint8Array;
  /** Initial Noise state for messages addressed to us. */
  readonly responderState: NoiseState;
}

/** Build a {@link LocalIdentity} from a private key. */
export function makeIdentity(p: CryptoProvider, privateKey: Uint8Array): LocalIdentity {
  const publicKey = p.publicKey(privateKey);
  return { privateKey, publicKey, responderState: initialState(p, CONSTRUCTION, IDENTIFIER_BYTES, publicKey) };
}

/** Per-peer handshake state. */
export class Handshake {
  /** Current stage. */
  stage = HandshakeStage.Zeroed;
  /** Noise chaining key and hash while a handshake is in flight. */
  state: NoiseState | null = null;
  /** Our ephemeral private key while a handshake is in flight. */
  ephemeralPrivate: Uint8Array | null = null;
  /** The remote ephemeral public key. */
  remoteEphemeral: Uint8Array | null = null;
  /** Our index for this handshake (0 when none). */
  localIndex = 0;
  /** The remote side's index. */
  remoteIndex = 0;
  /** Greatest TAI64N timestamp accepted from this peer (replaced, never written in place). */
  lastTimestamp: Uint8Array = ZERO_TIMESTAMP;
  /** Monotonic ms of the last accepted initiation (flood protection). */
  lastInitiationConsumed = -Infinity;
  /** Preshared key (all zero when none; replaced, never written in place). */
  presharedKey: Uint8Array = ZERO_PSK;
  /** The transport keys [k1, k2] of Split, once a response step computed them (responder). */
  transportKeys: [Uint8Array, Uint8Array] | null = null;
  /** Called with our index when the handshake releases it (to free it in the index table). */
  onReleaseIndex: ((index: number) => void) | null = null;
  readonly #p: CryptoProvider;
  #local: LocalIdentity | null = null;
  /** The static-static DH; undefined until first needed (a hub holds many peers that never call). */
  #staticStatic: Uint8Array | null | undefined = null;
  #initiatorState: NoiseState | null = null;

  /** @param remoteStatic the peer's public key */
  constructor(
    p: CryptoProvider,
    readonly remoteStatic: Uint8Array,
  ) {
    this.#p = p;
  }

  /** DH(our static, peer static), or null without a private key or for a low-order result; computed on first use. */
  get staticStatic(): Uint8Array | null {
    if (this.#staticStatic === undefined) this.#staticStatic = this.#local === null ? null : this.#p.dh(this.#local.privateKey, this.remoteStatic);
    return this.#staticStatic;
  }

  /** Initial Noise state for messages addressed to the peer; computed on first use. */
  get initiatorState(): NoiseState {
    return (this.#initiatorState ??= initialState(this.#p, CONSTRUCTION, IDENTIFIER_BYTES, this.remoteStatic));
  }

  /** Use `local` (our identity, after it changed) from now on: the static-static DH is redone on its next use. */
  precompute(p: CryptoProvider, local: LocalIdentity | null): void {
    if (p !== this.#p) throw new Error('Handshake.precompute: a different crypto provider than the one the handshake was made with');
    this.#local = local;
    this.#staticStatic = local === null ? null : undefined;
  }

  /** Forget the in-flight handshake (keeps replay state and keys). */
  clear(): void {
    this.stage = HandshakeStage.Zeroed;
    this.state = null;
    this.ephemeralPrivate?.fill(0);
    this.ephemeralPrivate = null;
    this.remoteEphemeral = null;
    this.transportKeys = null;
    if (this.localIndex !== 0) this.onReleaseIndex?.(this.localIndex);
    this.localIndex = 0;
    this.remoteIndex = 0;
  }
}

/**
 * Create an initiation (MACs left zero) for `hs`, with sender index `sender`
 * and payload `timestamp`. Returns null if the peer's key is unusable
 * (low-order, or we have no private key).
 */
export function createInitiation(
  p: CryptoProvider,
  local: LocalIdentity,
  hs: Handshake,
  sender: number,
  timestamp: Uint8Array,
  ephemeralPrivate: Uint8Array = p.generatePrivateKey(),
): Uint8Array | null {
  if (hs.staticStatic === null || isZeroKey(hs.staticStatic)) return null;
  const st = cloneState(hs.initiatorState);
  const ephemeralPublic = p.publicKey(ephemeralPrivate);
  const a = writeMessageA(p, st, ephemeralPrivate, ephemeralPublic, local.publicKey, hs.remoteStatic, hs.staticStatic, timestamp);
  if (a === null) return null;
  hs.clear();
  hs.state = st;
  hs.ephemeralPrivate = ephemeralPrivate;
  hs.localIndex = sender;
  hs.stage = HandshakeStage.InitiationCreated;
  return encodeInitiation(sender, a.ephemeral, a.encryptedStatic, a.encryptedPayload);
}

/** Why an initiation was refused (for counters). */
export type InitiationRefusal = 'decrypt' | 'unknown-peer' | 'replay' | 'flood';

/** An initiation's fields for its first step ({@link initiationSteps}): views of `msg`. */
export function initiationStepJob(msg: Uint8Array): InitiationStepJob {
  return { ephemeral: msg.subarray(INIT.ephemeral, INIT.ephemeral + 32), encryptedStatic: msg.subarray(INIT.static, INIT.static + 48) };
}

/**
 * Consume an initiation whose mac1 was already checked. `lookup` maps the
 * decrypted static key to the peer's handshake. `first` is the message's
 * first step ({@link initiationSteps}, null when it failed) when the caller
 * computed it already (for a batch of initiations at once), else it is
 * computed here. On success the peer's handshake moves to
 * {@link HandshakeStage.InitiationConsumed}.
 */
export function consumeInitiation(
  p: CryptoProvider,
  local: LocalIdentity,
  msg: Uint8Array,
  now: number,
  lookup: (staticKey: Uint8Array) => Handshake | undefined,
  first: InitiationStepResult | null = initiationSteps(p, local.privateKey, local.responderState, [initiationStepJob(msg)])[0]!,
): { handshake: Handshake } | { refused: InitiationRefusal } {
  if (first === null) return { refused: 'decrypt' };
  const hs = lookup(first.initiatorStatic);
  if (hs === undefined) return { refused: 'unknown-peer' };
  const ss = hs.staticStatic;
  if (ss === null) return { refused: 'decrypt' };
  const st = { ck: first.ck, h: first.h };
  const payload = readMessageAPayload(p, st, ss, msg.subarray(INIT.timestamp, INIT.timestamp + 28));
  if (payload === null) return { refused: 'decrypt' };
  if (!bytesEqual(hs.remoteStatic, first.initiatorStatic)) return { refused: 'unknown-peer' };
  if (compareTai64n(payload, hs.lastTimestamp) <= 0) return { refused: 'replay' };
  if (now - hs.lastInitiationConsumed <= HANDSHAKE_INITIATION_RATE) return { refused: 'flood' };
  hs.clear();
  hs.state = st;
  hs.remoteEphemeral = msg.slice(INIT.ephemeral, INIT.ephemeral + 32);
  hs.remoteIndex = readU32(msg, INIT.sender);
  hs.lastTimestamp = payload;
  hs.lastInitiationConsumed = now;
  hs.stage = HandshakeStage.InitiationConsumed;
  return { handshake: hs };
}

/** The sender index of an initiation or response. */
export function senderOf(msg: Uint8Array): number {
  return readU32(msg, 4);
}

/** Whether `hs` holds a consumed initiation that a response can answer. */
function answerable(hs: Handshake): hs is Handshake & { state: NoiseState; remoteEphemeral: Uint8Array } {
  return hs.stage === HandshakeStage.InitiationConsumed && hs.state !== null && hs.remoteEphemeral !== null;
}

/**
 * The response step's job ({@link responseSteps}) for a consumed initiation,
 * or null if the handshake is not in that stage. Without `ephemeralPrivate`
 * the step draws our ephemeral key itself.
 */
export function responseStepJob(hs: Handshake, ephemeralPrivate?: Uint8Array): ResponseStepJob | null {
  if (!answerable(hs)) return null;
  return {
    ck: hs.state.ck,
    h: hs.state.h,
    ...(ephemeralPrivate === undefined ? {} : { ephemeralPrivate }),
    initiatorEphemeral: hs.remoteEphemeral,
    initiatorStatic: hs.remoteStatic,
    psk: hs.presharedKey,
  };
}

/**
 * Create the response (MACs left zero) to a consumed initiation, with our new
 * index `sender` and a fresh ephemeral key (or `ephemeralPrivate`, which is
 * zeroed after; test vectors). `step` is the response step of
 * {@link responseStepJob} for this handshake as it is now (null when it
 * failed) when the caller computed it already, else it is computed here.
 * Returns null if the handshake is not in the right stage or a DH result is
 * zero.
 */
export function createResponse(
  p: CryptoProvider,
  hs: Handshake,
  sender: number,
  ephemeralPrivate?: Uint8Array,
  step?: ResponseStepResult | null,
): Uint8Array | null {
  if (!answerable(hs)) return null;
  const b = step === undefined ? responseSteps(p, [responseStepJob(hs, ephemeralPrivate)!])[0]! : step;
  ephemeralPrivate?.fill(0);
  if (b === null) return null;
  hs.state = { ck: b.ck, h: b.h };
  hs.transportKeys = [b.k1, b.k2];
  hs.localIndex = sender;
  hs.stage = HandshakeStage.ResponseCreated;
  return encodeResponse(sender, hs.remoteIndex, b.ephemeralPublic, b.encryptedEmpty);
}

/**
 * Consume a response whose mac1 was already checked. `lookup` maps the
 * receiver index to the handshake that sent the matching initiation.
 */
export function consumeResponse(
  p: CryptoProvider,
  local: LocalIdentity,
  msg: Uint8Array,
  lookup: (receiverIndex: number) => Handshake | undefined,
): Handshake | null {
  const hs = lookup(readU32(msg, RESP.receiver));
  if (hs === undefined || hs.stage !== HandshakeStage.InitiationCreated || hs.state === null || hs.ephemeralPrivate === null) {
    return null;
  }
  const st = cloneState(hs.state);
  const pt = readMessageB(
    p,
    st,
    hs.ephemeralPrivate,
    local.privateKey,
    {
      ephemeral: msg.subarray(RESP.ephemeral, RESP.ephemeral + 32),
      encryptedPayload: msg.subarray(RESP.empty, RESP.empty + 16),
    },
    hs.presharedKey,
  );
  if (pt === null || pt.length !== 0) return null;
  hs.state = st;
  hs.remoteIndex = readU32(msg, RESP.sender);
  hs.ephemeralPrivate.fill(0);
  hs.ephemeralPrivate = null;
  hs.stage = HandshakeStage.ResponseConsumed;
  return hs;
}

/** Transport keys of a completed handshake. */
export interface SessionKeys {
  /** Key for messages we send. */
  send: Uint8Array;
  /** Key for messages we receive. */
  receive: Uint8Array;
  /** True if we were the initiator. */
  isInitiator: boolean;
  /** Our index for the session. */
  localIndex: number;
  /** The peer's index for the session. */
  remoteIndex: number;
}

/**
 * Derive the transport keys once the handshake reached ResponseCreated
 * (responder) or ResponseConsumed (initiator), then clear the handshake.
 */
export function deriveSession(p: CryptoProvider, hs: Handshake): SessionKeys | null {
  const stage = hs.stage;
  if ((stage !== HandshakeStage.ResponseCreated && stage !== HandshakeStage.ResponseConsumed) || hs.state === null) {
    return null;
  }
  const [k1, k2] = hs.transportKeys ?? split(p, hs.state);
  const isInitiator = stage === HandshakeStage.ResponseConsumed;
  const keys: SessionKeys = {
    send: isInitiator ? k1 : k2,
    receive: isInitiator ? k2 : k1,
    isInitiator,
    localIndex: hs.localIndex,
    remoteIndex: hs.remoteIndex,
  };
  hs.localIndex = 0; // the index now belongs to the session's keypair
  hs.clear();
  return keys;
}

/** The final handshake hash (for tests). */
export function handshakeHash(hs: Handshake): Uint8Array | null {
  return hs.state?.h ?? null;
}
