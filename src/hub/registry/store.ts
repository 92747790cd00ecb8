/**
 * The asynchronous store interface the registry runs on, implemented by
 * `./sqlite-store.ts` (better-sqlite3 in a worker thread) and
 * `./postgres-store.ts` (`pg` pool). SQL is written once, in the subset both
 * engines share, with `?` placeholders (the PostgreSQL store numbers them).
 * @module
 */

import type { GroupRunner } from './group-commit.js';
import type { Geometry, ProcedureJob } from './procedures.js';
import { RegistryError } from './types.js';

/** A value bound to a placeholder. Booleans are stored as 0/1. */
export type SqlValue = string | number | null | Uint8Array;

/** One statement of {@link Tx.batch}. */
export interface Statement {
  sql: string;
  params?: readonly SqlValue[];
}

/** Statements inside one transaction (or, for {@link RegistryStore.read}, one snapshot-less read session). */
export interface Tx {
  /** The first row, or undefined. */
  get<T>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined>;
  /** Every row. */
  all<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  /** Run a statement; resolves with the number of rows it changed. */
  run(sql: string, params?: readonly SqlValue[]): Promise<number>;
  /**
   * Run statements that do not depend on each other's results, in order;
   * resolves with the rows of each. A store may send them in one round trip.
   */
  batch(statements: readonly Statement[]): Promise<unknown[][]>;
  /**
   * Run a write whose result nobody reads. A store may hold it and send it
   * with the next statement, the end of the enclosing savepoint or the commit
   * (one round trip instead of two); a failure then fails that one.
   */
  later(sql: string, params?: readonly SqlValue[]): Promise<void>;
  /** Run `fn` in a savepoint: its statements are undone when it throws (the transaction goes on). */
  savepoint<T>(fn: () => Promise<T>): Promise<T>;
}

/** Options of {@link RegistryStore.write}. */
export interface WriteOptions {
  /** False for bookkeeping (last-seen stamps): committed without waiting for the disk. Default true. */
  durable?: boolean;
}

/** A registry backend. Every call fails with `STORE_UNAVAILABLE` rather than wait longer than its timeout. */
export interface RegistryStore {
  /** Backend name. */
  readonly backend: 'sqlite' | 'postgresql';
  /** Where it is (file path, or URL without credentials), for messages. */
  readonly where: string;
  /** Run `fn` in a write transaction, serialised with every other writer of this store. */
  write<T>(what: string, fn: (tx: Tx) => Promise<T>, opts?: WriteOptions): Promise<T>;
  /** Run `fn` with read access (statements see committed data). */
  read<T>(what: string, fn: (tx: Tx) => Promise<T>): Promise<T>;
  /**
   * Call `onNotify` whenever another connection commits a change (PostgreSQL
   * LISTEN/NOTIFY; after a reconnect too). Returns a function that stops it;
   * null when the backend has no notifications (SQLite: the CLI tells the
   * hub over its control socket instead).
   */
  listen(onNotify: () => void): Promise<(() => Promise<void>) | null>;
  /**
   * Optional: a runner for groups of named changes (`./procedures.ts`)
   * cheaper than running them statement by statement from this thread
   * (SQLite: the whole group in one message to its worker).
   */
  procedureRunner?(geometry: Geometry): GroupRunner<ProcedureJob>;
  /** Close every connection. Idempotent. */
  close(): Promise<void>;
}

/** A `STORE_UNAVAILABLE` error for a failure of `what`. */
export function storeError(e: unknown, what: string, where: string): RegistryError {
  const msg = e instanceof Error ? e.message : String(e);
  return new RegistryError(
    'STORE_UNAVAILABLE',
    `registry ${what} (${where}): ${msg}; nothing was changed — check that the registry is reachable and writable and that no other process holds it locked for long, then retry`,
    undefined,
    { cause: e },
  );
}

/**
 * A semaphore in front of a store's connections whose waiters give up only
 * when the store makes no progress: a caller queued behind many quick
 * transactions waits its turn, a caller behind a stuck one (a lock held by
 * another process, an unreachable server) fails after `timeoutMs` without a
 * completed operation.
 */
export class Gate {
  #free: number;
  #last = Date.now();
  readonly #waiters: Array<{ grant: () => void; fail: (e: Error) => void }> = [];

  /** @param capacity concurrent holders; @param timeoutMs stall bound; @param stalled the error for a waiter that gives up */
  constructor(
    capacity: number,
    readonly timeoutMs: number,
    private readonly stalled: () => Error,
  ) {
    this.#free = capacity;
  }

  /** Note that an operation completed. */
  progress(): void {
    this.#last = Date.now();
  }

  /**
   * {@link enter} for a store call named `what`: refused at once when the store is `closed`;
   * a stall is reported through `map` (the store's error translation).
   */
  async admit(what: string, closed: boolean, map: (e: unknown) => unknown): Promise<() => void> {
    if (closed) throw new RegistryError('STORE_UNAVAILABLE', `registry ${what}: the registry is closed`);
    try {
      return await this.enter();
    } catch (e) {
      throw map(e);
    }
  }

  /** Wait for a slot; resolves with its release function. @throws the `stalled` error */
  enter(): Promise<() => void> {
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const next = this.#waiters.shift();
      if (next) next.grant();
      else this.#free++;
    };
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve(release);
    }
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout;
      const w = {
        grant: () => {
          clearTimeout(timer);
          resolve(release);
        },
        fail: reject,
      };
      const watch = () => {
        const idle = Date.now() - this.#last;
        if (idle < this.timeoutMs) {
          timer = setTimeout(watch, this.timeoutMs - idle);
          return;
        }
        const i = this.#waiters.indexOf(w);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(this.stalled());
      };
      this.#waiters.push(w);
      timer = setTimeout(watch, this.timeoutMs);
    });
  }
}
