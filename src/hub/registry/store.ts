/**
 * The asynchronous store interface the registry runs on, implemented by
 * `./sqlite-store.ts` (better-sqlite3 in a worker thread) and
 * `./postgres-store.ts` (`pg` pool). SQL is written once, in the subset both
 * engines share, with `?` placeholders (the PostgreSQL store numbers them).
 * @module
 */

import { RegistryError } from './types.js';

/** A value bound to a placeholder. Booleans are stored as 0/1. */
export type SqlValue = string | number | null | Uint8Array;

/** Statements inside one transaction (or, for {@link RegistryStore.read}, one snapshot-less read session). */
export interface Tx {
  /** The first row, or undefined. */
  get<T>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined>;
  /** Every row. */
  all<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  /** Run a statement; resolves with the number of rows it changed. */
  run(sql: string, params?: readonly SqlValue[]): Promise<number>;
  /** Run `fn` in a savepoint: its statements are undone when it throws (the transaction goes on). */
  savepoint<T>(fn: () => Promise<T>): Promise<T>;
  /** Tell listeners of other connections that the change sequence moved (delivered on commit); no-op on SQLite. */
  notify(seq: number): Promise<void>;
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
