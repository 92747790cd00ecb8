/**
 * The SQLite store: `registry.sqlite` in the data directory, opened by
 * better-sqlite3 in a worker thread that owns the connections. Every
 * statement, lock wait (`busy_timeout`) and fsync happens on that thread, so
 * the engine's thread never waits for the disk or for another process's write
 * lock; it only posts messages. Writes are serialised (one write transaction
 * at a time; a group of registrations is one of them, run in the worker by
 * {@link SqliteStore.procedureRunner}) and every call is bounded: one that
 * cannot finish within the store timeout fails with `STORE_UNAVAILABLE`
 * while the worker finishes or rolls back behind it.
 *
 * WAL mode lets readers run while one writer commits: reads go to a second,
 * read-only connection of the worker and do not wait for the writer's turn.
 * Every write is a `BEGIN IMMEDIATE` transaction (the write lock is taken
 * before anything is read, so nobody can take the chosen address before the
 * insert); `synchronous = FULL` (an address handed out must survive a power
 * cut), except for bookkeeping writes (`durable: false`). Statements whose
 * answer nobody waits for (savepoints) travel with the next request.
 * @module
 */

import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { RegistryError } from './types.js';
import { Gate, storeError, type RegistryStore, type SqlValue, type Tx, type WriteOptions } from './store.js';
import { sqliteExecutor, sqliteWorkerSource, type ExecutorAnswer, type ExecutorRequest, type WireOutcome } from './sqlite-worker.js';
import { GroupAbort, type GroupRunner, type Outcome } from './group-commit.js';
import { refusalFromWire, type Geometry, type ProcedureJob } from './procedures.js';

/** How requests reach the executor: a worker thread, or (CLI processes, which carry no packets) this thread. */
interface Channel {
  post(m: ExecutorRequest): void;
  onAnswer(f: (m: ExecutorAnswer) => void): void;
  onFail(f: (e: Error) => void): void;
  terminate(): Promise<unknown>;
}

/** The executor in a worker thread. */
async function workerChannel(path: string, driver: string, busyTimeoutMs: number): Promise<Channel> {
  // The worker loads ./sqlite-worker.js beside this module (in the CLI bundle: its launcher beside the bundle).
  const module = new URL('./sqlite-worker.js', import.meta.url).href;
  const worker = new Worker(sqliteWorkerSource, { eval: true, workerData: { path, driver, busyTimeoutMs, module } });
  worker.unref();
  const limit = busyTimeoutMs + 5000;
  const ready = await new Promise<{ ready: boolean; error?: { message: string } }>((resolve) => {
    const timer = setTimeout(() => resolve({ ready: false, error: { message: `the registry worker did not start within ${limit} ms` } }), limit);
    worker.once('message', (m: { ready: boolean; error?: { message: string } }) => {
      clearTimeout(timer);
      resolve(m);
    });
    worker.once('error', (e) => {
      clearTimeout(timer);
      resolve({ ready: false, error: { message: e.message } });
    });
  });
  if (!ready.ready) {
    await worker.terminate();
    throw storeError(new Error(ready.error?.message ?? 'unknown error'), 'open', path);
  }
  return {
    post: (m) => worker.postMessage(m),
    onAnswer: (f) => worker.on('message', (m: ExecutorAnswer) => m.id !== undefined && f(m)),
    onFail: (f) => {
      worker.on('error', f);
      worker.on('exit', () => f(new Error('the registry worker thread stopped')));
    },
    terminate: () => worker.terminate(),
  };
}

/** The executor on this thread (answers asynchronously, in order). */
function inlineChannel(path: string, driver: string, busyTimeoutMs: number): Channel {
  const ex = sqliteExecutor(createRequire(import.meta.url), { path, driver, busyTimeoutMs });
  if (!ex.ready) throw storeError(new Error(ex.error.message), 'open', path);
  let answer: (m: ExecutorAnswer) => void = () => undefined;
  let chain: Promise<void> = Promise.resolve();
  return {
    post: (m) => {
      const a = ex.handle(m);
      chain = chain.then(async () => {
        const done = await a;
        setImmediate(() => answer(done));
      });
    },
    onAnswer: (f) => (answer = f),
    onFail: () => undefined,
    terminate: async () => undefined,
  };
}

/** Reads in flight at most (they queue in the worker behind each other and the writer's statements). */
const READERS = 16;

/** A request whose answer nobody waits for: sent with the next one. */
type Deferred = NonNullable<ExecutorRequest['pre']>[number];

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  timer: NodeJS.Timeout | null;
  /** Resolves when the worker has answered (even after the caller timed out). */
  done: () => void;
}

class SqliteFailure extends Error {
  constructor(
    message: string,
    readonly code: string | null,
    /** `group`: the job at fault. */
    readonly failed?: number,
  ) {
    super(message);
  }
}

/** True for failures of the store itself (I/O, locks, closed), false for constraint violations and programming errors. */
function isStoreFailure(e: unknown): boolean {
  if (e instanceof SqliteFailure) return e.code === null ? /not open|closed/i.test(e.message) : e.code.startsWith('SQLITE_') && !e.code.startsWith('SQLITE_CONSTRAINT');
  return false;
}

/** {@link RegistryStore} on a SQLite file. */
export class SqliteStore implements RegistryStore {
  readonly backend = 'sqlite' as const;
  readonly where: string;
  readonly #channel: Channel;
  readonly #timeoutMs: number;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  /** Writers: one transaction at a time on the write connection. */
  readonly #gate: Gate;
  /** Readers (the read connection): bounded only so that a stuck worker is noticed. */
  readonly #readGate: Gate;
  #closed = false;
  #dead: Error | null = null;

  private constructor(channel: Channel, path: string, timeoutMs: number) {
    this.#channel = channel;
    this.where = path;
    this.#timeoutMs = timeoutMs;
    const stalled = () => new Error(`the database was busy for ${timeoutMs} ms (a lock held by another process, or a slow disk)`);
    this.#gate = new Gate(1, timeoutMs + 500, stalled);
    this.#readGate = new Gate(READERS, timeoutMs + 500, stalled);
    channel.onAnswer((m) => {
      const p = this.#pending.get(m.id);
      if (p === undefined) return;
      this.#pending.delete(m.id);
      if (!m.error) {
        this.#gate.progress();
        this.#readGate.progress();
      }
      if (p.timer) clearTimeout(p.timer);
      if (m.error) p.reject(new SqliteFailure(m.error.message, m.error.code, m.failed));
      else p.resolve(m.result);
      p.done();
    });
    const fail = (e: Error) => {
      this.#dead ??= e;
      for (const [id, p] of this.#pending) {
        this.#pending.delete(id);
        if (p.timer) clearTimeout(p.timer);
        p.reject(e);
        p.done();
      }
    };
    channel.onFail(fail);
  }

  /**
   * Open `path` (which must exist) in a worker thread, or with `inline` on
   * this thread (for CLI processes: no packets to delay, no worker to start).
   * @param timeoutMs bound of every call (lock waits included)
   * @throws RegistryError `STORE_UNAVAILABLE`
   */
  static async open(path: string, timeoutMs: number, inline = false): Promise<SqliteStore> {
    let driver: string;
    try {
      driver = createRequire(import.meta.url).resolve('better-sqlite3');
    } catch (e) {
      // An optional dependency: an install without a compiler (and without its prebuilt binary) leaves it out.
      throw new RegistryError(
        'STORE_UNAVAILABLE',
        'the SQLite registry needs better-sqlite3, an optional dependency that is not installed: install g++, make and python3 ' +
          'and run "npm install better-sqlite3" where tsguard is installed, or use a PostgreSQL registry (--registry postgresql://…)',
        undefined,
        { cause: e },
      );
    }
    const channel = inline ? inlineChannel(path, driver, timeoutMs) : await workerChannel(path, driver, timeoutMs);
    return new SqliteStore(channel, path, timeoutMs);
  }

  /** Post one request; `deadline` (ms since epoch) bounds the wait for its answer. */
  #send(
    op: string,
    deadline: number,
    extra: { sql?: string; params?: readonly SqlValue[]; durable?: boolean; read?: boolean; pre?: Deferred[]; jobs?: ProcedureJob[]; geometry?: Geometry; deadline?: number } = {},
  ): { result: Promise<unknown>; answered: Promise<void> } {
    if (this.#dead) {
      const failed = Promise.reject(this.#dead);
      failed.catch(() => undefined); // callers that only wait for `answered` (rollbacks) do not look at it
      return { result: failed, answered: Promise.resolve() };
    }
    const id = this.#nextId++;
    let done!: () => void;
    const answered = new Promise<void>((r) => (done = r));
    const result = new Promise<unknown>((resolve, reject) => {
      const wait = Math.max(0, deadline - Date.now());
      const entry: Pending = { resolve, reject, timer: null, done };
      entry.timer = setTimeout(() => {
        // The answer will still arrive (and be dropped); `answered` waits for it.
        entry.resolve = () => undefined;
        entry.reject = () => undefined;
        reject(new Error(`no answer from the database within ${this.#timeoutMs} ms (a lock held by another process, or a slow disk)`));
      }, wait);
      this.#pending.set(id, entry);
      this.#channel.post({ id, op, ...extra } as ExecutorRequest);
    });
    result.catch(() => undefined); // see above: a rollback's result may go unobserved
    return { result, answered };
  }

  /** Wait for the connection (one transaction at a time; `read`: a reader's slot); the release function may wait for a promise first. */
  async #acquire(what: string, read = false): Promise<(after?: Promise<unknown>) => void> {
    const release = await (read ? this.#readGate : this.#gate).admit(what, this.#closed, (e) => this.#map(e, what));
    return (after) => {
      if (after) void after.then(release, release);
      else release();
    };
  }

  /**
   * Statements of one session; `read`: on the read connection. Savepoint
   * statements are deferred: `take()` returns those not sent yet (the
   * commit carries them).
   */
  #tx(deadline: number, read: boolean): { tx: Tx; take: () => Deferred[] | undefined } {
    let deferred: Deferred[] = [];
    const take = () => {
      if (deferred.length === 0) return undefined;
      const d = deferred;
      deferred = [];
      return d;
    };
    const call = async (op: string, sql: string, params?: readonly SqlValue[]) => {
      const pre = take();
      return this.#send(op, deadline, { sql, params: params ?? [], ...(read ? { read } : {}), ...(pre ? { pre } : {}) }).result;
    };
    const later = (sql: string) => deferred.push({ op: 'exec', sql });
    const tx: Tx = {
      get: async <T>(sql: string, params?: readonly SqlValue[]) => ((await call('get', sql, params)) ?? undefined) as T | undefined,
      all: async <T>(sql: string, params?: readonly SqlValue[]) => (await call('all', sql, params)) as T[],
      run: async (sql: string, params?: readonly SqlValue[]) => (await call('run', sql, params)) as number,
      later: async (sql: string, params?: readonly SqlValue[]) => void (await call('run', sql, params)),
      batch: async (statements) => {
        const rows: unknown[][] = [];
        for (const st of statements) rows.push((await call('all', st.sql, st.params)) as unknown[]);
        return rows;
      },
      savepoint: async <T>(fn: () => Promise<T>) => {
        later('SAVEPOINT sp');
        try {
          const r = await fn();
          later('RELEASE sp');
          return r;
        } catch (e) {
          if (isStoreFailure(e) || !(e instanceof RegistryError)) throw e;
          later('ROLLBACK TO sp');
          later('RELEASE sp');
          throw e;
        }
      },
    };
    return { tx, take };
  }

  #map(e: unknown, what: string): unknown {
    if (e instanceof RegistryError) return e;
    if (e instanceof SqliteFailure && !isStoreFailure(e)) return e;
    return storeError(e, what, this.where);
  }

  async write<T>(what: string, fn: (tx: Tx) => Promise<T>, opts: WriteOptions = {}): Promise<T> {
    const release = await this.#acquire(what);
    const deadline = Date.now() + this.#timeoutMs + 500;
    try {
      await this.#send('begin', deadline, { durable: opts.durable !== false }).result;
    } catch (e) {
      release(this.#send('rollback', Date.now() + 60_000).answered);
      throw this.#map(e, what);
    }
    try {
      const session = this.#tx(deadline, false);
      const r = await fn(session.tx);
      const pre = session.take();
      await this.#send('commit', deadline, pre ? { pre } : {}).result;
      release();
      return r;
    } catch (e) {
      // Release once the worker has really rolled back (it may still be busy with a timed-out statement).
      release(this.#send('rollback', Date.now() + 60_000).answered);
      throw this.#map(e, what);
    }
  }

  async read<T>(what: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
    const release = await this.#acquire(what, true);
    const deadline = Date.now() + this.#timeoutMs + 500;
    try {
      return await fn(this.#tx(deadline, true).tx);
    } catch (e) {
      throw this.#map(e, what);
    } finally {
      release();
    }
  }

  /**
   * A {@link GroupRunner} that runs a whole group of named changes in the
   * worker, in one message (see `./sqlite-worker.ts`, op `group`).
   */
  procedureRunner(geometry: Geometry): GroupRunner<ProcedureJob> {
    let geometrySent = false; // the worker keeps it: cloning it costs more than a job
    return async (what, jobs) => {
      const release = await this.#acquire(what);
      const deadline = Date.now() + this.#timeoutMs + 500;
      // The worker rolls back rather than commit a group this side may already have given up on.
      const sent = this.#send('group', deadline, { jobs: [...jobs], ...(geometrySent ? {} : { geometry }), deadline: deadline - 250 });
      geometrySent = true;
      let answer: WireOutcome[];
      try {
        answer = (await sent.result) as WireOutcome[];
      } catch (e) {
        throw new GroupAbort(this.#map(e, what), e instanceof SqliteFailure && e.failed !== undefined ? e.failed : 0);
      } finally {
        // After a timeout, the next writer waits until the worker has finished (and rolled back) this group.
        release(sent.answered);
      }
      return answer.map((o): Outcome => (o.ok ? o : { ok: false, error: refusalFromWire(o.refusal) }));
    };
  }

  async listen(): Promise<null> {
    return null;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      const release = await this.#acquire('close');
      await this.#send('close', Date.now() + this.#timeoutMs + 500).result.catch(() => undefined);
      release();
    } catch {
      // busy: terminate below
    }
    await this.#channel.terminate();
  }
}
