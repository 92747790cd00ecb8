/**
 * The body of the worker thread that owns the SQLite connection (see
 * `./sqlite-store.ts`). It is passed to the worker as source text
 * (`sqliteWorkerSource`), so it must be self-contained: it uses only
 * `require` and what arrives in `workerData`, nothing from the module scope.
 *
 * Protocol: the parent posts `{ id, op, sql?, params?, durable? }`; the worker
 * answers `{ id, result }` or `{ id, error: { message, code } }`, strictly in
 * order. Ops: `get`, `all`, `run` (a prepared statement, cached by text),
 * `exec` (statements without parameters), `begin` (`BEGIN IMMEDIATE`, with
 * `synchronous = NORMAL` when `durable` is false), `commit`, `rollback`,
 * `close`. At start it posts `{ ready: true }` or `{ ready: false, error }`.
 * @module
 */

/* eslint-disable @typescript-eslint/no-require-imports */
declare const require: (id: string) => unknown;

/** The worker's main function; runs inside the worker thread only. */
function sqliteWorkerMain(): void {
  type Stmt = { reader: boolean; get(...p: unknown[]): unknown; all(...p: unknown[]): unknown[]; run(...p: unknown[]): { changes: number } };
  type Db = { prepare(sql: string): Stmt; exec(sql: string): void; pragma(sql: string, o?: { simple: boolean }): unknown; close(): void };
  type Msg = { id: number; op: string; sql?: string; params?: unknown[]; durable?: boolean };
  const wt = require('node:worker_threads') as {
    parentPort: { postMessage(m: unknown): void; on(ev: 'message', f: (m: Msg) => void): void; close(): void };
    workerData: { path: string; driver: string; busyTimeoutMs: number };
  };
  const port = wt.parentPort;
  const data = wt.workerData;
  const errorOf = (e: unknown) => ({ message: e instanceof Error ? e.message : String(e), code: (e as { code?: unknown })?.code ?? null });
  let db: Db;
  try {
    const Database = require(data.driver) as new (path: string, o: object) => Db;
    db = new Database(data.path, { fileMustExist: true, timeout: data.busyTimeoutMs });
    db.pragma(`busy_timeout = ${data.busyTimeoutMs}`);
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (String(mode).toLowerCase() !== 'wal') throw new Error(`cannot switch ${data.path} to WAL mode (got ${String(mode)})`);
    db.pragma('synchronous = FULL');
  } catch (e) {
    port.postMessage({ ready: false, error: errorOf(e) });
    return;
  }
  const cache = new Map<string, Stmt>();
  const stmt = (sql: string) => {
    let s = cache.get(sql);
    if (s === undefined) {
      s = db.prepare(sql);
      cache.set(sql, s);
    }
    return s;
  };
  // Structured clone turns Buffers into Uint8Arrays; the driver binds Buffers.
  const bind = (p: unknown[] | undefined) => (p ?? []).map((v) => (v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v));
  let relaxed = false;
  const restore = () => {
    if (relaxed) db.pragma('synchronous = FULL');
    relaxed = false;
  };
  port.on('message', (m: Msg) => {
    try {
      let result: unknown = null;
      switch (m.op) {
        case 'get':
          result = stmt(m.sql!).get(...bind(m.params)) ?? null;
          break;
        case 'all':
          result = stmt(m.sql!).all(...bind(m.params));
          break;
        case 'run': {
          const s = stmt(m.sql!);
          result = s.reader ? (s.all(...bind(m.params)).length as number) : s.run(...bind(m.params)).changes;
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
          db.close();
          port.postMessage({ id: m.id, result: null });
          port.close();
          return;
        default:
          throw new Error(`unknown op ${m.op}`);
      }
      port.postMessage({ id: m.id, result });
    } catch (e) {
      port.postMessage({ id: m.id, error: errorOf(e) });
    }
  });
  port.postMessage({ ready: true });
}

/** Source text of the worker (an immediately invoked {@link sqliteWorkerMain}). */
export const sqliteWorkerSource = `(${sqliteWorkerMain.toString()})();`;
