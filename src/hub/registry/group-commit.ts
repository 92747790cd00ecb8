/**
 * Group commit: write jobs that arrive while a transaction is running wait,
 * and the next transaction runs all of them (up to {@link MAX_GROUP}), each in
 * its own savepoint, and commits once — one disk flush for the whole group,
 * as databases do for concurrent commits.
 *
 * - A job that fails with a `RegistryError` (a refusal: its savepoint is
 *   rolled back, so it consumed nothing) is rejected; the others go on.
 * - A job that fails otherwise (a constraint violation, a bug) aborts the
 *   transaction; it is rejected and the other jobs of the group run again in
 *   a new one (those before it were rolled back with it).
 * - When the transaction fails (the store is locked, slow or gone, the commit
 *   fails), every job of the group is rejected: none was committed.
 * - A job's promise settles only after its group's commit (or rollback).
 * - A group run statement by statement from this thread stops taking jobs
 *   after {@link GROUP_BUDGET_MS}; the rest go into the next group.
 *
 * Who runs a group is a {@link GroupRunner}: {@link storeRunner} on this
 * thread over any store, or the SQLite worker (`./sqlite-store.ts`), which
 * runs a whole group of registrations in one message.
 * @module
 */

import type { RegistryStore, Tx } from './store.js';
import { RegistryError } from './types.js';

/** Jobs per transaction at most (bounds the time a group holds the store and a job waits for its answer). */
export const MAX_GROUP = 64;

/**
 * A transaction of {@link storeRunner} takes no further job once it has run this long, ms: it holds
 * the writers' lock meanwhile (on PostgreSQL, that of every hub), and the others wait at most their
 * statement timeout for it.
 */
export const GROUP_BUDGET_MS = 100;

/** What became of one job of a committed group (`later`: not run, it goes into the next group). */
export type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown } | { later: true };

/** The transaction of a group failed while job `failed` ran (`failed` = the group size: at the commit). */
export class GroupAbort extends Error {
  constructor(
    readonly error: unknown,
    readonly failed: number,
  ) {
    super(error instanceof Error ? error.message : String(error));
  }
}

/**
 * Runs `jobs` in one transaction, each in a savepoint; resolves with one
 * outcome per job once committed. Rejects with a {@link GroupAbort} naming
 * the job at fault, or with a `STORE_UNAVAILABLE` error (none committed).
 */
export type GroupRunner<J> = (what: string, jobs: readonly J[]) => Promise<Outcome[]>;

/** True for a refusal of one job (rolled back to its savepoint), false for a failure of the transaction. */
export function isRefusal(e: unknown): e is RegistryError {
  return e instanceof RegistryError && e.code !== 'STORE_UNAVAILABLE';
}

interface Queued<J> {
  what: string;
  job: J;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** The group-commit queue in front of a {@link GroupRunner}. */
export class GroupCommit<J> {
  readonly #runner: GroupRunner<J>;
  readonly #queue: Queued<J>[] = [];
  #running = false;

  constructor(runner: GroupRunner<J>) {
    this.#runner = runner;
  }

  /** Run `job` in the next group's transaction; settles after that transaction commits or rolls back. */
  run<T>(what: string, job: J): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ what, job, resolve: resolve as (v: unknown) => void, reject });
      if (!this.#running) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#running = true;
    await null; // jobs submitted in the same tick form the first group
    try {
      while (this.#queue.length > 0) await this.#runGroup(this.#queue.splice(0, MAX_GROUP));
    } finally {
      this.#running = false;
    }
  }

  async #runGroup(group: Queued<J>[]): Promise<void> {
    const what = group.length === 1 ? group[0]!.what : `${group[0]!.what} and ${group.length - 1} more in one transaction`;
    let outcomes: Outcome[];
    try {
      outcomes = await this.#runner(
        what,
        group.map((q) => q.job),
      );
    } catch (e) {
      if (e instanceof GroupAbort && !(e.error instanceof RegistryError && e.error.code === 'STORE_UNAVAILABLE') && e.failed < group.length) {
        // Only that job was at fault: reject it, run the others again (in front of later arrivals).
        group[e.failed]!.reject(e.error);
        this.#queue.unshift(...group.slice(0, e.failed), ...group.slice(e.failed + 1));
        return;
      }
      const err = e instanceof GroupAbort ? e.error : e;
      for (const q of group) q.reject(err);
      return;
    }
    const later: Queued<J>[] = [];
    group.forEach((q, i) => {
      const o = outcomes[i]!;
      if ('later' in o) later.push(q);
      else if (o.ok) q.resolve(o.value);
      else q.reject(o.error);
    });
    this.#queue.unshift(...later);
  }
}

/**
 * A {@link GroupRunner} on this thread for jobs that are functions of a transaction, on any store.
 * A job alone in its group runs without a savepoint: its refusal rolls the transaction back.
 */
export function storeRunner(store: RegistryStore): GroupRunner<(tx: Tx) => Promise<unknown>> {
  return async (what, jobs) => {
    const outcomes: Outcome[] = [];
    if (jobs.length === 1) {
      try {
        return [{ ok: true, value: await store.write(what, jobs[0]!) }];
      } catch (e) {
        if (isRefusal(e)) return [{ ok: false, error: e }];
        throw new GroupAbort(e, 0);
      }
    }
    try {
      await store.write(what, async (tx) => {
        outcomes.length = 0; // a store may run this again (PostgreSQL retries a serialization failure)
        const t0 = Date.now();
        for (const job of jobs) {
          if (outcomes.length > 0 && Date.now() - t0 > GROUP_BUDGET_MS) {
            outcomes.push({ later: true });
            continue;
          }
          try {
            outcomes.push({ ok: true, value: await tx.savepoint(() => job(tx)) });
          } catch (e) {
            if (isRefusal(e)) outcomes.push({ ok: false, error: e }); // rolled back to its savepoint
            else throw e; // aborts the transaction
          }
        }
      });
    } catch (e) {
      throw new GroupAbort(e, outcomes.length);
    }
    return outcomes;
  };
}
