/**
 * The executor that owns the SQLite connections (see `./sqlite-store.ts`): in
 * the worker thread of a hub ({@link serve}, the module the worker loads), or
 * inline in a CLI process (which carries no packets).
 *
 * Protocol: requests `{ id, op, sql?, params?, durable?, read?, pre? }`,
 * answers `{ id, result }` or `{ id, error: { message, code } }`, strictly in
 * order. Ops: `get`, `all`, `run` (a prepared statement, cached by text),
 * `exec` (statements without parameters), `begin` (`BEGIN IMMEDIATE`, with
 * `synchronous = NORMAL` when `durable` is false), `commit`, `rollback`,
 * `close`. `pre` lists requests (without ids) run first, in order, on the
 * write connection (statements whose answer the caller does not wait for,
 * such as savepoints: one message instead of several); the first that fails
 * fails the request. `read` runs `get`/`all`/`run` on a second, read-only
 * connection, which sees committed data only and so needs no turn between
 * the writer's transactions (WAL lets it read while a write is open).
 * `group` runs `jobs` (named changes, `./procedures.ts`) in one durable
 * transaction, each in a savepoint, and commits once (group commit, see
 * `./group-commit.ts`); it answers one outcome per job, or an error with the
 * index of the job at fault (`failed`; the group size: at the commit), after
 * rolling everything back. A group still running at `deadline` (Unix ms) is
 * rolled back instead of committed: whoever gave up waiting was told that
 * nothing was stored.
 * The worker posts `{ ready: true }` or `{ ready: false, error }` at start.
 * @module
 */

import { createRequire } from 'node:module';
import type { MessagePort } from 'node:worker_threads';
import { isRefusal } from './group-commit.js';
import { refusalToWire, runProcedure, type Geometry, type ProcedureJob, type WireRefusal } from './procedures.js';
import type { SqlValue, Tx } from './store.js';

/** A request to the executor. */
export interface ExecutorRequest {
  id: number;
  op: string;
  sql?: string;
  params?: unknown[];
  durable?: boolean;
  /** Run on the read-only connection (`get`, `all`). */
  read?: boolean;
  /** Requests run first, in order (see the module documentation). */
  pre?: Array<Omit<ExecutorRequest, 'id' | 'pre' | 'jobs'>>;
  /** `group`: the changes to run, their geometry (kept for the next groups: sent once) and deadline. */
  jobs?: ProcedureJob[];
  geometry?: Geometry;
  deadline?: number;
}

/** What became of one job of a committed group (refusals as {@link WireRefusal}). */
export type WireOutcome = { ok: true; value: unknown } | { ok: false; refusal: WireRefusal };

/** An answer of the executor. */
export interface ExecutorAnswer {
  id: number;
  result?: unknown;
  error?: { message: string; code: string | null };
  /** `group`: the job at fault when the transaction failed. */
  failed?: number;
}

/** Options of {@link sqliteExecutor}. */
export interface ExecutorOptions {
  /** The database file (must exist). */
  path: string;
  /** Path of the better-sqlite3 module. */
  driver: string;
  /** SQLite's busy_timeout, ms. */
  busyTimeoutMs: number;
}

/** Open the database; returns the request handler (answers `group` asynchronously), or why it could not open. */
export function sqliteExecutor(
  require: (id: string) => unknown,
  data: ExecutorOptions,
): { ready: true; handle: (m: ExecutorRequest) => ExecutorAnswer | Promise<ExecutorAnswer> } | { ready: false; error: { message: string; code: string | null } } {
  type Stmt = { reader: boolean; get(...p: unknown[]): unknown; all(...p: unknown[]): unknown[]; run(...p: unknown[]): { changes: number } };
  type Db = { prepare(sql: string): Stmt; exec(sql: string): void; pragma(sql: string, o?: { simple: boolean }): unknown; close(): void };
  const errorOf = (e: unknown) => ({ message: e instanceof Error ? e.message : String(e), code: ((e as { code?: unknown })?.code as string | undefined) ?? null });
  let db: Db;
  let rdb: Db;
  try {
    const Database = require(data.driver) as new (path: string, o: object) => Db;
    db = new Database(data.path, { fileMustExist: true, timeout: data.busyTimeoutMs });
    db.pragma(`busy_timeout = ${data.busyTimeoutMs}`);
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (String(mode).toLowerCase() !== 'wal') throw new Error(`cannot switch ${data.path} to WAL mode (got ${String(mode)})`);
    db.pragma('synchronous = FULL');
    rdb = new Database(data.path, { fileMustExist: true, timeout: data.busyTimeoutMs });
    rdb.pragma(`busy_timeout = ${data.busyTimeoutMs}`);
    rdb.pragma('query_only = 1');
  } catch (e) {
    return { ready: false, error: errorOf(e) };
  }
  const caches = new Map<Db, Map<string, Stmt>>([
    [db, new Map()],
    [rdb, new Map()],
  ]);
  const stmt = (sql: string, on: Db = db) => {
    const cache = caches.get(on)!;
    let st = cache.get(sql);
    if (st === undefined) {
      st = on.prepare(sql);
      cache.set(sql, st);
    }
    return st;
  };
  // Structured clone turns Buffers into Uint8Arrays; the driver binds Buffers.
  const bind = (p: unknown[] | undefined) => (p ?? []).map((v) => (v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v));
  let relaxed = false;
  const restore = () => {
    if (relaxed) db.pragma('synchronous = FULL');
    relaxed = false;
  };
  const run = (m: Omit<ExecutorRequest, 'id'>): unknown => {
    let result: unknown = null;
    switch (m.op) {
      case 'get':
        result = stmt(m.sql!, m.read === true ? rdb : db).get(...bind(m.params)) ?? null;
        break;
      case 'all':
        result = stmt(m.sql!, m.read === true ? rdb : db).all(...bind(m.params));
        break;
      case 'run': {
        const st = stmt(m.sql!, m.read === true ? rdb : db);
        result = st.reader ? st.all(...bind(m.params)).length : st.run(...bind(m.params)).changes;
        break;
      }
      case 'exec':
        db.exec(m.sql!);
        break;
      case 'begin':
        if (m.durable === false) {
          db.pragma('synchronous = NORMAL');
          relaxed = true;
        }
        try {
          db.exec('BEGIN IMMEDIATE');
        } catch (e) {
          restore();
          throw e;
        }
        break;
      case 'commit':
        try {
          db.exec('COMMIT');
        } finally {
          restore();
        }
        break;
      case 'rollback':
        try {
          db.exec('ROLLBACK');
        } catch {
          // no transaction was open (BEGIN failed): nothing to undo
        } finally {
          restore();
        }
        break;
      case 'close':
        rdb.close();
        db.close();
        break;
      default:
        throw new Error(`unknown op ${m.op}`);
    }
    return result;
  };
  // Statements of a group's jobs, on the write connection, answered at once.
  const tx: Tx = {
    get: async <T>(sql: string, params?: readonly SqlValue[]) => (run({ op: 'get', sql, params: params as unknown[] }) ?? undefined) as T | undefined,
    all: async <T>(sql: string, params?: readonly SqlValue[]) => run({ op: 'all', sql, params: params as unknown[] }) as T[],
    run: async (sql: string, params?: readonly SqlValue[]) => run({ op: 'run', sql, params: params as unknown[] }) as number,
    later: async (sql: string, params?: readonly SqlValue[]) => void run({ op: 'run', sql, params: params as unknown[] }),
    batch: async (statements) => statements.map((st) => run({ op: 'all', sql: st.sql, params: (st.params ?? []) as unknown[] }) as unknown[]),
    savepoint: async <T>(fn: () => Promise<T>) => {
      db.exec('SAVEPOINT sp');
      try {
        const r = await fn();
        db.exec('RELEASE sp');
        return r;
      } catch (e) {
        if (!isRefusal(e)) throw e;
        db.exec('ROLLBACK TO sp');
        db.exec('RELEASE sp');
        throw e;
      }
    },
  };
  const rollback = () => run({ op: 'rollback' });
  let geometry: Geometry | undefined;
  const group = async (m: ExecutorRequest): Promise<ExecutorAnswer> => {
    const jobs = m.jobs ?? [];
    geometry = m.geometry ?? geometry;
    if (geometry === undefined) return { id: m.id, error: { message: 'group: no subnet geometry was sent', code: null }, failed: 0 };
    try {
      run({ op: 'begin', durable: true });
    } catch (e) {
      rollback();
      return { id: m.id, error: errorOf(e), failed: 0 };
    }
    const outcomes: WireOutcome[] = [];
    for (let i = 0; i < jobs.length; i++) {
      try {
        outcomes.push({ ok: true, value: await tx.savepoint(() => runProcedure(tx, geometry!, jobs[i]!)) });
      } catch (e) {
        if (isRefusal(e)) {
          outcomes.push({ ok: false, refusal: refusalToWire(e) });
          continue;
        }
        rollback();
        return { id: m.id, error: errorOf(e), failed: i };
      }
    }
    if (m.deadline !== undefined && Date.now() > m.deadline) {
      rollback();
      return { id: m.id, error: { message: 'the transaction did not finish within the store timeout and was rolled back', code: 'SQLITE_BUSY' }, failed: jobs.length };
    }
    try {
      run({ op: 'commit' });
    } catch (e) {
      rollback();
      return { id: m.id, error: errorOf(e), failed: jobs.length };
    }
    return { id: m.id, result: outcomes };
  };
  const handle = (m: ExecutorRequest): ExecutorAnswer | Promise<ExecutorAnswer> => {
    if (m.op === 'group') return group(m);
    try {
      if (m.pre !== undefined) for (const p of m.pre) run(p);
      return { id: m.id, result: run(m) };
    } catch (e) {
      return { id: m.id, error: errorOf(e) };
    }
  };
  return { ready: true, handle };
}

/**
 * The worker thread's side: open the database (`workerData` is the
 * {@link ExecutorOptions}), then answer requests from `port` strictly in order.
 */
export function serve(port: MessagePort, data: ExecutorOptions): void {
  const ex = sqliteExecutor(createRequire(import.meta.url), data);
  if (!ex.ready) {
    port.postMessage({ ready: false, error: ex.error });
    return;
  }
  let chain: Promise<void> = Promise.resolve();
  port.on('message', (m: ExecutorRequest) => {
    chain = chain.then(async () => {
      port.postMessage(await ex.handle(m));
      if (m.op === 'close') port.close();
    });
  });
  port.postMessage({ ready: true });
}

/**
 * Source text of the worker thread: loads this module (`workerData.module`,
 * its URL) and {@link serve}s the parent port.
 */
export const sqliteWorkerSource = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.module).then(
  (m) => m.serve(parentPort, workerData),
  (e) => parentPort.postMessage({ ready: false, error: { message: 'cannot load ' + workerData.module + ': ' + e.message, code: null } }),
);`;
