/**
 * The responder's two message steps of WireGuard's Noise_IKpsk2 as units of
 * work that a provider may compute for many handshakes at once
 * ({@link CryptoProvider.initiationSteps}, {@link CryptoProvider.responseSteps}):
 *
 * - **initiation step**: `e, es, s` of an initiation — up to the decrypted
 *   initiator static key, which is where the handshake worker must decide
 *   (which peer, its static-static DH);
 * - **response step**: all of the response (`e, ee, se, psk`, the empty
 *   payload) and Split, the transport keys.
 *
 * The functions here are the definitions, built on `ikpsk2.ts` and the
 * provider's primitives: the one-at-a-time path computes them, providers
 * without the batch methods compute them job by job through
 * {@link initiationSteps} and {@link responseSteps}, and the native
 * provider's self-test and tests compare its batches with them.
 * @module
 */

import type { CryptoProvider, InitiationStepJob, InitiationStepResult, ResponseStepJob, ResponseStepResult } from '../crypto/provider.js';
import { readMessageAStatic, split, writeMessageB, type NoiseState } from './ikpsk2.js';

export type { InitiationStepJob, InitiationStepResult, ResponseStepJob, ResponseStepResult };

/** An initiation's first step from the initial state `st0` of messages addressed to us; null when it fails. */
export function initiationStep(p: CryptoProvider, staticPrivate: Uint8Array, st0: NoiseState, job: InitiationStepJob): InitiationStepResult | null {
  const st = { ck: st0.ck, h: st0.h };
  const initiatorStatic = readMessageAStatic(p, st, staticPrivate, job.ephemeral, job.encryptedStatic);
  return initiatorStatic === null ? null : { ck: st.ck, h: st.h, initiatorStatic };
}

/**
 * A response's step (message B with the empty payload, then Split) with the
 * job's ephemeral key or, without one, a fresh one that is erased after;
 * null when a DH result is zero.
 */
export function responseStep(p: CryptoProvider, job: ResponseStepJob): ResponseStepResult | null {
  const st = { ck: job.ck, h: job.h };
  const e = job.ephemeralPrivate ?? p.generatePrivateKey();
  const ephemeralPublic = p.publicKey(e);
  const b = writeMessageB(p, st, e, ephemeralPublic, job.initiatorEphemeral, job.initiatorStatic, job.psk);
  if (job.ephemeralPrivate === undefined) e.fill(0);
  if (b === null) return null;
  const [k1, k2] = split(p, st);
  return { ck: st.ck, h: st.h, ephemeralPublic, encryptedEmpty: b.encryptedPayload, k1, k2 };
}

/** Every job's {@link initiationStep}: the provider's batch when it has one (one call even for one job), else one by one. */
export function initiationSteps(p: CryptoProvider, staticPrivate: Uint8Array, st0: NoiseState, jobs: readonly InitiationStepJob[]): (InitiationStepResult | null)[] {
  if (p.initiationSteps !== undefined && jobs.length > 0) return p.initiationSteps(staticPrivate, st0.ck, st0.h, jobs);
  return jobs.map((j) => initiationStep(p, staticPrivate, st0, j));
}

/** Every job's {@link responseStep}: the provider's batch when it has one, else one by one. */
export function responseSteps(p: CryptoProvider, jobs: readonly ResponseStepJob[]): (ResponseStepResult | null)[] {
  if (p.responseSteps !== undefined && jobs.length > 0) return p.responseSteps(jobs);
  return jobs.map((j) => responseStep(p, j));
}
