/**
 * Group commit: write jobs that arrive while a transaction is running wait,
 * and the next transaction runs all of them (up to {@link MAX_GROUP}), each in
 * its own savepoint, and commits once — one disk flush for the whole group,
 * as databases do for concurrent commits.
 *
 * - A job that fails with a `RegistryError` (a refusal: its savepoint is
 *   rolled back, so it consumed nothing) is rejected; the others go on.
 * - A job that fails otherwise (a constraint violation, a bug) aborts the
 *   transaction; it is rejected and the jobs after it run again in a new one
 *   (those before it, rolled back with it, too).
 * - When the transaction fails (the store is locked, slow or gone, the commit
 *   fails), every job of the group is rejected: none was committed.
 * - A job's promise settles only after its group's commit (or rollback).
 * @module
 */

import type { RegistryStore, Tx } from './store.js';
import { RegistryError } from './types.js';

/** Jobs per transaction at most (bounds the time a group holds the store and a job waits for its answer). */
export const MAX_GROUP = 64;

interface Job<T> {
  what: string;
  fn: (tx: Tx) => Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** The group-commit queue in front of a store's writers. */
export class GroupCommit {
  readonly #store: RegistryStore;
  readonly #queue: Job<unknown>[] = [];
  #running = false;

  constructor(store: RegistryStore) {
    this.#store = store;
  }

  /** Run `fn` in the next group's transaction; settles after that transaction commits or rolls back. */
  run<T>(what: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ what, fn, resolve, reject } as Job<unknown>);
      if (!this.#running) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0) await this.#runGroup(this.#queue.splice(0, MAX_GROUP));
    } finally {
      this.#running = false;
    }
  }

  async #runGroup(group: Job<unknown>[]): Promise<void> {
    const outcomes: Outcome[] = [];
    const what = group.length === 1 ? group[0]!.what : `${group[0]!.what} and ${group.length - 1} more in one transaction`;
    try {
      await this.#store.write(what, async (tx) => {
        outcomes.length = 0; // a store may run this again (PostgreSQL retries a serialization failure)
        for (const job of group) {
          try {
            outcomes.push({ ok: true, value: await tx.savepoint(() => job.fn(tx)) });
          } catch (e) {
            // A refusal was rolled back to its savepoint; anything else aborts the transaction.
            if (e instanceof RegistryError && e.code !== 'STORE_UNAVAILABLE') outcomes.push({ ok: false, error: e });
            else throw e;
          }
        }
      });
    } catch (e) {
      const failed = outcomes.length; // the job that was running when the transaction failed
      const storeDown = e instanceof RegistryError && e.code === 'STORE_UNAVAILABLE';
      if (storeDown || failed >= group.length) {
        for (const job of group) job.reject(e);
        return;
      }
      // Only that job was at fault: reject it, run the others again (in front of later arrivals).
      group[failed]!.reject(e);
      this.#queue.unshift(...group.slice(0, failed), ...group.slice(failed + 1));
      return;
    }
    group.forEach((job, i) => {
      const o = outcomes[i]!;
      if (o.ok) job.resolve(o.value);
      else job.reject(o.error);
    });
  }
}
