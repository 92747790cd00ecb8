/**
 * Changes a store can run by name, with serialisable arguments: the SQLite
 * worker runs a whole group of them in one message (`./sqlite-store.ts`),
 * so a registration costs one round trip between the threads per group
 * instead of one per statement. They are the same functions the registry
 * runs on this thread for the other backends (one implementation), in the
 * same change frame ({@link runChange}).
 * @module
 */

import { runChange } from './changes.js';
import { registerAgentTx, registrationReads, type Registration } from './enrollment.js';
import type { Tx } from './store.js';
import type { Net4, Net6 } from './subnet.js';
import { RegistryError, type RegistryErrorCode } from './types.js';

/** One change to run by name. */
export interface ProcedureJob {
  proc: 'registerAgent';
  /** A validated registration. */
  args: Registration;
  /** The time of the change, Unix ms (the registry's clock). */
  now: number;
}

/** The subnet geometry a group runs with. */
export interface Geometry {
  v4: Net4;
  v6: Net6 | null;
}

/** Each procedure: the reads it starts with (sent with the change sequence number's update) and its body. */
const PROCEDURES = {
  registerAgent: { first: registrationReads, run: registerAgentTx },
} as const;

/** Run `job` as one change in the open transaction `tx`. */
export function runProcedure(tx: Tx, geo: Geometry, job: ProcedureJob): Promise<unknown> {
  const p = PROCEDURES[job.proc];
  if (p === undefined) throw new Error(`unknown registry procedure ${String(job.proc)}`);
  return runChange(tx, geo.v4, geo.v6, job.now, (ctx, first) => p.run(ctx, job.args, first), p.first(job.args, job.now));
}

/** A `RegistryError` as it crosses a thread boundary. */
export interface WireRefusal {
  code: RegistryErrorCode;
  message: string;
  owner?: string;
}

/** @see WireRefusal */
export function refusalToWire(e: RegistryError): WireRefusal {
  return { code: e.code, message: e.message, ...(e.owner !== undefined ? { owner: e.owner } : {}) };
}

/** @see WireRefusal */
export function refusalFromWire(w: WireRefusal): RegistryError {
  return new RegistryError(w.code, w.message, w.owner);
}
