/**
 * The native provider's batched Noise steps ({@link CryptoProvider.initiationSteps},
 * {@link CryptoProvider.responseSteps} and their asynchronous forms) on the
 * addon's `noiseInitiations` / `noiseResponses` (`native/noise_steps.cc`):
 * a whole step per job in C++, the jobs of a batch packed into one buffer
 * each way and spread over the crypto pool (or libuv worker threads). The
 * self-test compares them with the definitions in `src/noise/steps.ts` on
 * node:crypto before they are used.
 * @internal
 * @module
 */

import { CONSTRUCTION } from '../noise/constants.js';
import { initialState, readMessageB, split, writeMessageA } from '../noise/ikpsk2.js';
import { initiationStep, responseStep } from '../noise/steps.js';
import { bytesEqual } from './keys.js';
import { nodeCrypto } from './node.js';
import type { CryptoProvider, InitiationStepJob, InitiationStepResult, ResponseStepJob, ResponseStepResult } from './provider.js';
import { checkKeyLen, KEY_LEN } from './provider.js';

/** An OpenSSL X25519 private key held by the addon (an N-API External). */
type NativeKey = object;

const INIT_IN = 80;
const INIT_OUT = 96;
const RESP_IN = 160;
const RESP_OUT = 176;

/** The addon's step functions (see `native/noise_steps.cc` for the row layouts). */
export interface StepsBinding {
  noiseInitiations(key: NativeKey, ck: Uint8Array, h: Uint8Array, input: Uint8Array, out: Uint8Array, ok: Uint8Array): void;
  /** A key `undefined`: the addon draws a fresh key pair for that job (its private key stays in the addon). */
  noiseResponses(keys: (NativeKey | undefined)[], input: Uint8Array, out: Uint8Array, ok: Uint8Array): void;
  noiseInitiationsAsync?(key: NativeKey, ck: Uint8Array, h: Uint8Array, input: Uint8Array, out: Uint8Array, ok: Uint8Array, done: () => void): void;
  noiseResponsesAsync?(keys: (NativeKey | undefined)[], input: Uint8Array, out: Uint8Array, ok: Uint8Array, done: () => void): void;
}

type Steps = Pick<CryptoProvider, 'initiationSteps' | 'initiationStepsAsync' | 'responseSteps' | 'responseStepsAsync'>;

const view = (b: Uint8Array, at: number, len = KEY_LEN): Uint8Array => b.subarray(at, at + len);

function packInitiations(jobs: readonly InitiationStepJob[]): { input: Uint8Array; out: Uint8Array; ok: Uint8Array } {
  const input = new Uint8Array(jobs.length * INIT_IN);
  jobs.forEach((j, i) => {
    checkKeyLen(j.ephemeral, `initiationSteps job ${i} ephemeral`);
    if (j.encryptedStatic.length !== 48) throw new RangeError(`initiationSteps job ${i}: encrypted static must be 48 bytes, got ${j.encryptedStatic.length}`);
    input.set(j.ephemeral, i * INIT_IN);
    input.set(j.encryptedStatic, i * INIT_IN + KEY_LEN);
  });
  return { input, out: new Uint8Array(jobs.length * INIT_OUT), ok: new Uint8Array(jobs.length) };
}

function initiationResults(out: Uint8Array, ok: Uint8Array): (InitiationStepResult | null)[] {
  return Array.from(ok, (v, i) => {
    const r = i * INIT_OUT;
    return v === 1 ? { ck: view(out, r), h: view(out, r + 32), initiatorStatic: view(out, r + 64) } : null;
  });
}

function packResponses(jobs: readonly ResponseStepJob[], keyOf: (raw: Uint8Array) => NativeKey) {
  const input = new Uint8Array(jobs.length * RESP_IN);
  const keys = jobs.map((j, i) => {
    const r = i * RESP_IN;
    const fields = [j.ck, j.h, j.initiatorEphemeral, j.initiatorStatic, j.psk];
    fields.forEach((f, k) => {
      checkKeyLen(f, `responseSteps job ${i} field ${k}`);
      input.set(f, r + k * KEY_LEN);
    });
    if (j.ephemeralPrivate === undefined) return undefined;
    checkKeyLen(j.ephemeralPrivate, `responseSteps job ${i} ephemeral private key`);
    return keyOf(j.ephemeralPrivate);
  });
  return { keys, input, out: new Uint8Array(jobs.length * RESP_OUT), ok: new Uint8Array(jobs.length) };
}

function responseResults(out: Uint8Array, ok: Uint8Array): (ResponseStepResult | null)[] {
  return Array.from(ok, (v, i) => {
    const r = i * RESP_OUT;
    if (v !== 1) return null;
    return { ck: view(out, r), h: view(out, r + 32), k1: view(out, r + 64), k2: view(out, r + 96), ephemeralPublic: view(out, r + 128), encryptedEmpty: view(out, r + 160, 16) };
  });
}

/** Cut `n` jobs into at most `parts` slices, run `start(a, b, done)` for each, resolve once all called done. */
function sliced(n: number, parts: number, start: (a: number, b: number, done: () => void) => void): Promise<void> {
  const slices = Math.min(parts, n);
  if (slices === 0) return Promise.resolve();
  return new Promise((resolve) => {
    let left = slices;
    const done = (): void => {
      if (--left === 0) resolve();
    };
    for (let j = 0; j < slices; j++) start(Math.floor((j * n) / slices), Math.floor(((j + 1) * n) / slices), done);
  });
}

/**
 * The step methods on `b`; `keyOf` gives the addon's key object of a raw
 * private key (the provider's key cache), `parts` the slices an
 * asynchronous batch is cut into (one libuv thread each).
 */
export function nativeSteps(b: StepsBinding, keyOf: (raw: Uint8Array) => NativeKey, parts: number): Steps {
  const initAsync = b.noiseInitiationsAsync?.bind(b);
  const respAsync = b.noiseResponsesAsync?.bind(b);
  const staticKey = (k: Uint8Array): NativeKey => {
    checkKeyLen(k, 'initiationSteps static private key');
    return keyOf(k);
  };
  return {
    initiationSteps(staticPrivate, ck, h, jobs) {
      const { input, out, ok } = packInitiations(jobs);
      if (jobs.length > 0) b.noiseInitiations(staticKey(staticPrivate), ck, h, input, out, ok);
      return initiationResults(out, ok);
    },
    responseSteps(jobs) {
      const { keys, input, out, ok } = packResponses(jobs, keyOf);
      if (jobs.length > 0) b.noiseResponses(keys, input, out, ok);
      return responseResults(out, ok);
    },
    ...(initAsync === undefined || respAsync === undefined
      ? {}
      : {
          async initiationStepsAsync(staticPrivate: Uint8Array, ck: Uint8Array, h: Uint8Array, jobs: readonly InitiationStepJob[]) {
            const { input, out, ok } = packInitiations(jobs);
            const key = staticKey(staticPrivate);
            await sliced(jobs.length, parts, (a, z, done) =>
              initAsync(key, ck, h, input.subarray(a * INIT_IN, z * INIT_IN), out.subarray(a * INIT_OUT, z * INIT_OUT), ok.subarray(a, z), done),
            );
            return initiationResults(out, ok);
          },
          async responseStepsAsync(jobs: readonly ResponseStepJob[]) {
            const { keys, input, out, ok } = packResponses(jobs, keyOf);
            await sliced(jobs.length, parts, (a, z, done) =>
              respAsync(keys.slice(a, z), input.subarray(a * RESP_IN, z * RESP_IN), out.subarray(a * RESP_OUT, z * RESP_OUT), ok.subarray(a, z), done),
            );
            return responseResults(out, ok);
          },
        }),
  };
}

function sameResult<T extends object>(got: T | null, want: T | null): boolean {
  if (got === null || want === null) return got === want;
  return Object.keys(want).every((k) => bytesEqual((got as Record<string, Uint8Array>)[k]!, (want as Record<string, Uint8Array>)[k]!));
}

/**
 * Whether `r` is a valid response step for `job` as the initiator, who holds
 * the ephemeral and static private keys `e` and `s`, reads it: the empty
 * payload opens and the final hash and transport keys agree (the check for a
 * step whose ephemeral key the provider drew itself).
 */
export function initiatorAccepts(p: CryptoProvider, job: ResponseStepJob, e: Uint8Array, s: Uint8Array, r: ResponseStepResult): boolean {
  const st = { ck: job.ck, h: job.h };
  const payload = readMessageB(p, st, e, s, { ephemeral: r.ephemeralPublic, encryptedPayload: r.encryptedEmpty }, job.psk);
  if (payload === null || payload.length !== 0 || !bytesEqual(st.h, r.h)) return false;
  const [k1, k2] = split(p, st);
  return bytesEqual(k1, r.k1) && bytesEqual(k2, r.k2) && bytesEqual(st.ck, r.ck);
}

/**
 * Eight jobs of each step (enough for the pool's threads) against `src/noise/steps.ts`
 * on node:crypto: valid initiations, a tampered one and a low-order
 * ephemeral; responses with and without a preshared key and a low-order
 * initiator key, with our ephemeral key given (compared exactly) or drawn by
 * the provider (checked as the initiator reads it). `provider` is the native
 * provider being built (its key generation and cache feed the jobs).
 */
export function stepsSelfTest(steps: Steps, provider: Pick<CryptoProvider, 'generatePrivateKey'>): boolean {
  const n = nodeCrypto;
  const bytes = (seed: number) => Uint8Array.from({ length: KEY_LEN }, (_, j) => (seed * 29 + j * 13 + 7) & 255);
  const responder = provider.generatePrivateKey();
  const st0 = initialState(n, CONSTRUCTION, bytes(1), n.publicKey(responder));
  const initiations: InitiationStepJob[] = [];
  const responses: ResponseStepJob[] = [];
  const initiators: [Uint8Array, Uint8Array][] = [];
  for (let i = 0; i < 8; i++) {
    const e = n.generatePrivateKey();
    const s = n.generatePrivateKey();
    initiators.push([e, s]);
    const a = writeMessageA(n, { ...st0 }, e, n.publicKey(e), n.publicKey(s), n.publicKey(responder), n.dh(s, n.publicKey(responder))!, bytes(i))!;
    const encryptedStatic = a.encryptedStatic.slice();
    if (i === 3) encryptedStatic[3]! ^= 1;
    initiations.push({ ephemeral: i === 5 ? new Uint8Array(KEY_LEN) : a.ephemeral, encryptedStatic });
    responses.push({
      ck: bytes(i + 40),
      h: bytes(i + 80),
      ...(i % 3 === 0 ? {} : { ephemeralPrivate: provider.generatePrivateKey() }),
      initiatorEphemeral: i === 4 ? new Uint8Array(KEY_LEN) : n.publicKey(e),
      initiatorStatic: n.publicKey(s),
      psk: i % 2 === 0 ? new Uint8Array(KEY_LEN) : bytes(i + 120),
    });
  }
  const gotI = steps.initiationSteps!(responder, st0.ck, st0.h, initiations);
  const gotR = steps.responseSteps!(responses);
  return (
    gotI[3] === null &&
    gotI[5] === null &&
    gotR[4] === null &&
    initiations.every((j, i) => sameResult(gotI[i]!, initiationStep(n, responder, st0, j))) &&
    responses.every((j, i) =>
      i === 4 || j.ephemeralPrivate !== undefined ? sameResult(gotR[i]!, responseStep(n, j)) : gotR[i] !== null && initiatorAccepts(n, j, ...initiators[i]!, gotR[i]!),
    )
  );
}
