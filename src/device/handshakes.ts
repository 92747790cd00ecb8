/**
 * The handshake worker (wireguard-go RoutineHandshake): queued initiations,
 * responses and cookie replies, with the initiations of one call processed
 * as batches whose Noise steps are computed together
 * ({@link CryptoProvider.initiationSteps} and
 * {@link CryptoProvider.responseSteps}, `src/noise/steps.ts`: the X25519,
 * KDF chain, hashes and AEAD of a message step in one job, which the native
 * provider spreads over the addon's crypto threads). Every decision stays
 * here, in queue order and as the one-at-a-time path makes it: the
 * cookie/under-load rule per message, the peer lookup, the replay and flood
 * checks, index allocation, session install and the order of the datagrams
 * sent. A batch only changes when the steps are computed:
 *
 * 1. each initiation that passed mac1 (and, under load, mac2 and the rate
 *    limit) joins the run; a message of another kind, or one that needs a
 *    cookie reply, first finishes the run;
 * 2. finishing: the first step (`e, es, s`: up to the decrypted static key)
 *    of every initiation of the run at once, then each is consumed in order
 *    (peer, `ss`, timestamp, replay and flood) and, if accepted, its
 *    response's index is drawn; then the response steps (a fresh ephemeral
 *    key, `e, ee, se, psk`, the empty payload, the transport keys) of all
 *    those responses at once; then each response is completed, its session
 *    installed and sent, in order.
 *
 * An initiation whose peer already has an accepted one pending in the run
 * completes that one first (from inside the lookup), so a peer's state moves
 * exactly as it would one message at a time.
 *
 * With {@link CryptoProvider.initiationStepsAsync} the two batches of a run
 * are computed off the event loop and the runs are pipelined: the MAC
 * checks of each message still happen when it leaves the queue, everything
 * after them becomes a step of `DeviceState.hsSteps`, and the steps are
 * processed strictly in queue order, each once its batch is in (a later
 * run's first steps are computed while an earlier run is consumed or
 * answered). What can change between a batch's submission and its
 * completion is re-checked then: a changed private key makes each
 * initiation of the run be taken as it would be now (mac1 again, its first
 * step recomputed); a peer removed, or whose handshake moved on (our own
 * initiation), gets no response (as wireguard-go's CreateMessageResponse
 * refuses a handshake that is no longer "initiation consumed"); a response
 * pending when the key changed is abandoned; one whose preshared key
 * changed meanwhile is computed again with the new one. A single initiation
 * with nothing in flight takes the synchronous path, so an idle responder
 * answers as fast as before.
 * @module
 */

import type { InitiationStepResult, ResponseStepJob, ResponseStepResult } from '../crypto/provider.js';
import { keyToBase64 } from '../crypto/keys.js';
import { MSG_COOKIE_REPLY, MSG_INITIATION } from '../noise/constants.js';
import { CookieGenerator } from '../noise/cookie.js';
import {
  consumeInitiation,
  consumeResponse,
  HandshakeStage,
  initiationStepJob,
  responseStepJob,
  senderOf,
  type Handshake,
  type LocalIdentity,
} from '../noise/handshake.js';
import { initiationSteps, responseSteps } from '../noise/steps.js';
import { parseIp } from '../routing/ip.js';
import type { Peer } from './peer.js';
import { authenticatedFrom, sourceBytes } from './receive.js';
import { beginResponse, finishResponse, sendKeepalive, type PendingResponse } from './send.js';
import { beginSession } from './sessions.js';
import { drop, type DeviceState } from './state.js';
import { timersHandshakeComplete } from './timers.js';
import type { Endpoint } from './types.js';

/** An initiation that passed the MAC checks, waiting for its run to be finished. */
interface Queued {
  readonly data: Uint8Array;
  readonly from: Endpoint;
}

/**
 * A step of the asynchronous pipeline (see the module comment): processed
 * when it reaches the head of `DeviceState.hsSteps` and is `ready`.
 * @internal
 */
export interface HandshakeStep {
  /** False while its batch is being computed. */
  ready: boolean;
  /** The step's protocol work (may put a new, not yet ready step at the head). */
  process(): void;
}

/** Queue a step that needs no batch, or do it now when nothing is in flight. */
function inOrder(d: DeviceState, process: () => void): void {
  if (d.hsSteps.length === 0) process();
  else d.hsSteps.push({ ready: true, process });
}

/**
 * Start `compute` (an asynchronous batch of the provider) and `use` its
 * results (null when it failed) when the step is reached; the step goes at
 * the head (`first`, for the responses of the run being processed) or the
 * tail of the pipeline.
 */
function asyncStep<T>(d: DeviceState, compute: () => Promise<T>, first: boolean, use: (r: T | null) => void): void {
  let result: T | null = null;
  const step: HandshakeStep = { ready: false, process: () => use(result) };
  if (first) d.hsSteps.unshift(step);
  else d.hsSteps.push(step);
  const done = (r: T | null): void => {
    if (d.closed || !d.hsSteps.includes(step)) return;
    const go = (): void => {
      result = r;
      step.ready = true;
      drainSteps(d);
    };
    if (d.io.resume !== undefined) d.io.resume(go);
    else go();
  };
  compute().then(done, () => done(null));
}

/** Process the ready steps at the head of the pipeline, in order. */
export function drainSteps(d: DeviceState): void {
  const steps = d.hsSteps;
  while (steps.length > 0 && steps[0]!.ready && !d.closed) {
    try {
      steps.shift()!.process();
    } catch {
      drop(d, 'exception');
    }
  }
}

/** Drop every pipelined step (device closed). */
export function abandonHandshakes(d: DeviceState): void {
  d.hsSteps.length = 0; // a batch still out finds its step gone and is dropped
}

/** Process up to `max` queued handshake messages. Returns how many were taken from the queue. */
export function workHandshakes(d: DeviceState, max: number): number {
  const q = d.handshakes;
  const run: Queued[] = [];
  const batching = d.p.initiationSteps !== undefined || d.p.initiationStepsAsync !== undefined;
  let n = 0;
  try {
    for (; n < max && q.length > 0; n++) {
      const data = q.peekData();
      const from = q.peekFrom();
      q.shift();
      try {
        if (!batching) {
          if (data[0] === MSG_COOKIE_REPLY) receiveCookieReply(d, data);
          else if (data[0] === MSG_INITIATION) receiveInitiation(d, data, from);
          else receiveResponse(d, data, from);
          continue;
        }
        if (data[0] === MSG_COOKIE_REPLY) {
          finishRun(d, run);
          inOrder(d, () => receiveCookieReply(d, data));
          continue;
        }
        const verdict = checkMacs(d, data, from, true);
        if (verdict === 'pass' && data[0] === MSG_INITIATION) {
          run.push({ data, from });
          continue;
        }
        finishRun(d, run);
        if (verdict === 'cookie') inOrder(d, () => sendCookieReply(d, data, from));
        else if (verdict === 'pass') inOrder(d, () => consumeResponseMessage(d, data, from));
      } catch {
        drop(d, 'exception');
      }
    }
  } finally {
    try {
      finishRun(d, run);
    } catch {
      drop(d, 'exception');
    }
  }
  return n;
}

/**
 * The checks before any Noise work: mac1; under load, mac2 (else a cookie
 * reply is due) and the per-source rate limit. Drops count here. With
 * `deferCookie` the cookie reply is left to the caller (verdict `cookie`).
 */
function checkMacs(d: DeviceState, data: Uint8Array, from: Endpoint, deferCookie: boolean): 'pass' | 'cookie' | 'dropped' {
  const underLoad = d.handshakes.underLoad(d.clock.now());
  if (d.local === null) {
    drop(d, 'noPrivateKey');
    return 'dropped';
  }
  if (!d.cookieChecker.checkMac1(data)) {
    drop(d, 'badMac1');
    return 'dropped';
  }
  if (underLoad) {
    const ip = from.ip ?? parseIp(from.host).bytes;
    if (!d.cookieChecker.checkMac2(data, sourceBytes(ip, from.port))) {
      if (deferCookie) return 'cookie';
      sendCookieReply(d, data, from);
      return 'dropped';
    }
    if (!d.rateLimiter.allow(ip)) {
      drop(d, 'rateLimited');
      return 'dropped';
    }
  }
  return 'pass';
}

/** Answer a handshake message without a valid mac2 (under load) with a cookie reply. */
function sendCookieReply(d: DeviceState, data: Uint8Array, from: Endpoint): void {
  const ip = from.ip ?? parseIp(from.host).bytes;
  const reply = d.cookieChecker.createReply(data, senderOf(data), sourceBytes(ip, from.port));
  if (reply !== null) d.io.sendDatagram(reply, from);
  drop(d, 'cookieReplySent');
}

/** One initiation, start to finish (providers without batched steps). */
function receiveInitiation(d: DeviceState, data: Uint8Array, from: Endpoint): void {
  if (checkMacs(d, data, from, false) !== 'pass') return;
  const peer = consumeOne(d, data, from, undefined, (key) => d.peers.get(keyToBase64(key)));
  if (peer !== null) finishResponse(d, beginResponse(d, peer));
}

/**
 * Consume one initiation (its first step precomputed, or undefined to
 * compute it; `lookup` maps the initiator's static key to its peer) and note
 * the authenticated source; the accepted peer, or null (counted).
 */
function consumeOne(
  d: DeviceState,
  data: Uint8Array,
  from: Endpoint,
  first: InitiationStepResult | null | undefined,
  lookup: (key: Uint8Array) => Peer | undefined,
): Peer | null {
  let found: Peer | undefined;
  const r = consumeInitiation(d.p, d.local!, data, d.clock.now(), (key) => (found = lookup(key))?.handshake, first);
  if ('refused' in r) {
    drop(d, r.refused === 'replay' || r.refused === 'flood' ? 'handshakeReplay' : 'handshakeFailed');
    return null;
  }
  const peer = found!; // the peer whose handshake consumeInitiation accepted
  authenticatedFrom(d, peer, from, data.length);
  return peer;
}

/**
 * Finish a run of initiations (see the module comment) and empty it: the
 * first step of all of them at once, asynchronously when the provider can
 * and there is more than one initiation or something in flight already.
 */
function finishRun(d: DeviceState, run: Queued[]): void {
  if (run.length === 0) return;
  const local = d.local;
  const items = run.splice(0);
  if (local === null) {
    for (let i = 0; i < items.length; i++) drop(d, 'noPrivateKey');
    return;
  }
  const jobs = items.map((q) => initiationStepJob(q.data));
  const st0 = local.responderState;
  if (d.p.initiationStepsAsync !== undefined && (items.length > 1 || d.hsSteps.length > 0)) {
    const compute = () => d.p.initiationStepsAsync!(local.privateKey, st0.ck, st0.h, jobs);
    asyncStep(d, compute, false, (firsts) => consumeRun(d, items, local, firsts, true));
    return;
  }
  consumeRun(d, items, local, initiationSteps(d.p, local.privateKey, st0, jobs), false);
}

/**
 * Consume the initiations of a run in order (their first steps computed with
 * `local`'s key, or null when that failed), then answer the accepted ones:
 * their response steps asynchronously (a step at the head) when `async`.
 */
function consumeRun(d: DeviceState, items: Queued[], local: LocalIdentity, firsts: (InitiationStepResult | null)[] | null, async: boolean): void {
  // The key changed since the MAC checks (or the batch failed): each message as it would be taken now.
  const redo = d.local !== local || firsts === null;
  const pending: PendingResponse[] = [];
  const pendingPeers = new Set<Handshake>();
  const lookup = (key: Uint8Array): Peer | undefined => {
    const peer = d.peers.get(keyToBase64(key));
    if (peer !== undefined && pendingPeers.has(peer.handshake)) {
      completeResponses(d, pending, false);
      pendingPeers.clear();
    }
    return peer;
  };
  try {
    for (let i = 0; i < items.length; i++) {
      try {
        const { data, from } = items[i]!;
        if (redo && d.local === null) {
          drop(d, 'noPrivateKey');
          continue;
        }
        if (redo && !d.cookieChecker.checkMac1(data)) {
          drop(d, 'badMac1');
          continue;
        }
        const peer = consumeOne(d, data, from, redo ? undefined : firsts![i]!, lookup);
        if (peer === null) continue;
        pending.push(beginResponse(d, peer));
        pendingPeers.add(peer.handshake);
      } catch {
        drop(d, 'exception');
      }
    }
  } finally {
    completeResponses(d, pending, async);
  }
}

/**
 * The response steps of every pending response in one batch (asynchronously
 * when `async`), then each completed and sent in order; empties `pending`.
 */
function completeResponses(d: DeviceState, pending: PendingResponse[], async: boolean): void {
  if (pending.length === 0) return;
  const items = pending.splice(0);
  const local = d.local;
  const jobs: ResponseStepJob[] = [];
  const at: number[] = [];
  for (const r of items) {
    const job = responseStepJob(r.peer.handshake);
    at.push(job === null ? -1 : jobs.length);
    if (job !== null) jobs.push(job);
  }
  const complete = (steps: (ResponseStepResult | null)[] | null): void => {
    for (let i = 0; i < items.length; i++) {
      const r = items[i]!;
      try {
        const j = at[i]!;
        if (!current(d, r, local) || (j >= 0 && steps === null)) abandonResponse(d, r);
        else finishResponse(d, r, j >= 0 && unchanged(r.peer.handshake, jobs[j]!) ? steps![j]! : undefined);
      } catch {
        drop(d, 'exception');
      }
    }
  };
  if (async && d.p.responseStepsAsync !== undefined && jobs.length > 0) {
    asyncStep(d, () => d.p.responseStepsAsync!(jobs), true, complete);
  } else complete(responseSteps(d.p, jobs));
}

/** Whether `job` was made from the handshake as it is now (else its response is computed again, from the current state and key). */
function unchanged(hs: Handshake, job: ResponseStepJob): boolean {
  return hs.state?.ck === job.ck && hs.state.h === job.h && hs.presharedKey === job.psk && hs.remoteEphemeral === job.initiatorEphemeral;
}

/**
 * Whether a begun response can still be completed: same private key, the
 * peer still configured and its handshake still at the consumed initiation
 * (our own initiation, or the peer's removal, moves it on).
 */
function current(d: DeviceState, r: PendingResponse, local: LocalIdentity | null): boolean {
  return d.local === local && !r.peer.removed && r.peer.handshake.stage === HandshakeStage.InitiationConsumed;
}

/** A begun response that will not be sent: free its index and count it. */
function abandonResponse(d: DeviceState, r: PendingResponse): void {
  d.indices.delete(r.index);
  drop(d, 'handshakeFailed');
}

function receiveResponse(d: DeviceState, data: Uint8Array, from: Endpoint): void {
  if (checkMacs(d, data, from, false) === 'pass') consumeResponseMessage(d, data, from);
}

/** A response whose MACs passed: the Noise part, the session and the confirming keepalive. */
function consumeResponseMessage(d: DeviceState, data: Uint8Array, from: Endpoint): void {
  if (d.local === null) return drop(d, 'noPrivateKey');
  const hs = consumeResponse(d.p, d.local, data, (index) => {
    const e = d.indices.get(index);
    return e !== undefined && e.keypair === null ? e.peer.handshake : undefined;
  });
  if (hs === null) return drop(d, 'unexpectedResponse');
  const peer = d.peers.get(keyToBase64(hs.remoteStatic))!;
  authenticatedFrom(d, peer, from, data.length);
  if (!beginSession(d, peer)) return;
  timersHandshakeComplete(d, peer, true);
  sendKeepalive(d, peer);
}

function receiveCookieReply(d: DeviceState, data: Uint8Array): void {
  const e = d.indices.get(CookieGenerator.receiverOf(data));
  if (e === undefined) return drop(d, 'unknownIndex');
  if (!e.peer.cookies.consumeReply(data)) return drop(d, 'badCookieReply');
}
