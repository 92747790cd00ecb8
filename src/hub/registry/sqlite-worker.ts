/**
 * The executor that owns a SQLite connection (see `./sqlite-store.ts`): in
 * the worker thread of a hub, or inline in a CLI process (which carries no
 * packets). It is passed to the worker as source text
 * (`sqliteWorkerSource`), so it must be self-contained: it uses only the
 * `require` and the options it is given, nothing from the module scope.
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
 * The worker posts `{ ready: true }` or `{ ready: false, error }` at start.
 * @module
 */

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
  pre?: Array<Omit<ExecutorRequest, 'id' | 'pre'>>;
}

/** An answer of the executor. */
export interface ExecutorAnswer {
  id: number;
  result?: unknown;
  error?: { message: string; code: string | null };
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

/** Open the database; returns the request handler, or why it could not open. Self-contained (see the module documentation). */
export function sqliteExecutor(
  require: (id: string) => unknown,
  data: ExecutorOptions,
): { ready: true; handle: (m: ExecutorRequest) => ExecutorAnswer } | { ready: false; error: { message: string; code: string | null } } {
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
  const handle = (m: ExecutorRequest): ExecutorAnswer => {
    try {
      if (m.pre !== undefined) for (const p of m.pre) run(p);
      return { id: m.id, result: run(m) };
    } catch (e) {
      return { id: m.id, error: errorOf(e) };
    }
  };
  return { ready: true, handle };
}

/** Source text of the worker thread: the executor behind the worker's message port. */
export const sqliteWorkerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const ex = (${sqliteExecutor.toString()})(require, workerData);
if (!ex.ready) parentPort.postMessage({ ready: false, error: ex.error });
else {
  parentPort.on('message', (m) => {
    parentPort.postMessage(ex.handle(m));
    if (m.op === 'close') parentPort.close();
  });
  parentPort.postMessage({ ready: true });
}`;
