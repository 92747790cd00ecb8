/**
 * The PostgreSQL store: a `pg` pool (every call bounded by connection,
 * statement and query timeouts, so an unreachable or stalled server answers
 * `STORE_UNAVAILABLE` quickly) plus one dedicated connection that LISTENs for
 * change notifications and reconnects by itself. Nothing here blocks the
 * event loop: `pg` is asynchronous.
 *
 * The password never comes from the command line: a URL carrying one is
 * refused; it is read from `passwordFile`, `PGPASSWORD`, or `PGPASSFILE` /
 * `~/.pgpass` (the libpq rules, through the `pgpass` module).
 * @module
 */

import { readFileSync } from 'node:fs';
import pg from 'pg';
import pgpass from 'pgpass';
import { RegistryError } from './types.js';
import { NOTIFY_CHANNEL } from './schema-postgres.js';
import { Gate, storeError, type RegistryStore, type SqlValue, type Statement, type Tx, type WriteOptions } from './store.js';

/** Connections of the pool (calls beyond it queue in a {@link Gate}). */
const POOL_SIZE = 8;


const INT8_OID = 20;
const types = {
  getTypeParser: (oid: number, format?: string) => (oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')),
};

/** SQLSTATE classes that mean "the request was wrong", not "the store is unavailable". */
const REQUEST_ERROR_CLASSES = ['22', '23', '42'];

function isRequestError(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'string' && code.length === 5 && REQUEST_ERROR_CLASSES.includes(code.slice(0, 2));
}

/** Serialization failures and deadlocks: the transaction is retried. */
function isRetryable(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return code === '40001' || code === '40P01';
}

/** `?` placeholders → `$1, $2, …` (the SQL of this registry has no `?` inside literals). */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/** A value as an SQL literal (for statements sent in one simple-query message, which takes no parameters). */
function literal(client: pg.PoolClient, v: SqlValue | undefined): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new TypeError(`registry statement value ${v} is not a finite number`);
    return String(v);
  }
  if (typeof v === 'string') return client.escapeLiteral(v);
  return `decode('${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}', 'hex')`;
}

/** `sql` with its `?` placeholders replaced by the literals of `params`. */
function inline(client: pg.PoolClient, sql: string, params?: readonly SqlValue[]): string {
  let n = 0;
  const text = sql.replace(/\?/g, () => literal(client, params?.[n++]));
  if (n !== (params?.length ?? 0)) throw new TypeError(`registry statement has ${n} placeholders for ${params?.length ?? 0} values: ${sql}`);
  return text;
}

/** A session's statements and the call that sends what is still held (with `last`, e.g. COMMIT). */
interface PgSession {
  tx: Tx;
  finish(last: string | null): Promise<void>;
}

/** Check a registry URL and describe it without secrets. @throws RegistryError `INVALID_VALUE` */
export function checkPostgresUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RegistryError('INVALID_VALUE', `--registry "${url}" is not a URL; use postgresql://USER@HOST:PORT/DATABASE (or ?host=/socket/dir)`);
  }
  if (u.protocol !== 'postgresql:' && u.protocol !== 'postgres:') {
    throw new RegistryError('INVALID_VALUE', `--registry must be a postgresql:// URL (or omitted for the SQLite file in --data-dir), not ${u.protocol}//…`);
  }
  if (u.password !== '' || u.searchParams.has('password')) {
    throw new RegistryError(
      'INVALID_VALUE',
      'the registry URL carries a password, and command lines are visible to every user of the machine: remove it and put it in a file (--registry-password-file PATH, mode 0600) or in PGPASSFILE / ~/.pgpass',
    );
  }
  return url;
}

/** {@link RegistryStore} on PostgreSQL. */
export class PostgresStore implements RegistryStore {
  readonly backend = 'postgresql' as const;
  readonly where: string;
  readonly #pool: pg.Pool;
  readonly #config: pg.PoolConfig;
  readonly #gate: Gate;
  /** Writers of this process go one at a time: they would only queue on the change counter's row lock inside the server (and time out there). */
  readonly #writers: Gate;
  #closed = false;
  #listeners = new Set<() => Promise<void>>();

  private constructor(url: string, config: pg.PoolConfig, timeoutMs: number) {
    this.where = url;
    this.#config = config;
    const stalled = () => new Error(`no answer from the server within ${timeoutMs} ms`);
    this.#gate = new Gate(POOL_SIZE, timeoutMs + 500, stalled);
    this.#writers = new Gate(1, timeoutMs + 500, stalled);
    this.#pool = new pg.Pool({ ...config, max: POOL_SIZE, idleTimeoutMillis: 30_000 });
    // A connection that breaks (server stopped or restarted) must not crash the hub. The pool only
    // listens on idle clients; one checked out by a transaction emits 'error' on itself, which without
    // a listener is an uncaught exception. The call using it fails on its next statement instead.
    this.#pool.on('error', () => undefined);
    this.#pool.on('connect', (client) => client.on('error', () => undefined));
  }

  /**
   * Connect to the server at `url` (checked with a first query).
   * @throws RegistryError `INVALID_VALUE` (bad URL), `STORE_UNAVAILABLE`
   */
  static async open(url: string, opts: { passwordFile?: string; timeoutMs: number }): Promise<PostgresStore> {
    checkPostgresUrl(url);
    let password: pg.PoolConfig['password'];
    if (opts.passwordFile !== undefined) {
      try {
        password = readFileSync(opts.passwordFile, 'utf8').replace(/\r?\n$/, '');
      } catch (e) {
        throw new RegistryError('STORE_UNAVAILABLE', `cannot read the registry password file ${opts.passwordFile}: ${(e as Error).message}`);
      }
    } else if (process.env.PGPASSWORD === undefined) {
      const info = new URL(url);
      password = () =>
        new Promise<string>((resolve) =>
          pgpass(
            {
              host: info.searchParams.get('host') ?? (decodeURIComponent(info.hostname) || 'localhost'),
              port: info.port || '5432',
              database: decodeURIComponent(info.pathname.slice(1)) || decodeURIComponent(info.username),
              user: decodeURIComponent(info.username) || process.env.PGUSER || '',
            },
            (p?: string) => resolve(p ?? ''),
          ),
        );
    }
    const t = opts.timeoutMs;
    const config: pg.PoolConfig = {
      connectionString: url,
      ...(password !== undefined ? { password } : {}),
      connectionTimeoutMillis: t,
      statement_timeout: t,
      lock_timeout: t,
      query_timeout: t + 500,
      idle_in_transaction_session_timeout: 10 * t + 10_000,
      application_name: 'tsguard',
      types,
    };
    const store = new PostgresStore(url, config, t);
    try {
      await store.read('connect', (tx) => tx.get('SELECT 1 AS one'));
    } catch (e) {
      await store.close();
      throw e;
    }
    return store;
  }

  #map(e: unknown, what: string): unknown {
    if (e instanceof RegistryError) return e;
    if (isRequestError(e)) return e;
    return storeError(e, what, this.where);
  }

  /**
   * Statements of one session on `client`. Writes whose result nobody reads
   * ({@link Tx.later}), savepoint statements and `opening` (the BEGIN) are
   * held and sent, with their values inlined as literals, in one simple-query
   * message together with the next statement, the end of the savepoint or
   * the commit ({@link PgSession.finish}): one round trip instead of several.
   * A savepoint's held statements go out before it ends, so a failure is
   * always reported inside the change that caused it.
   */
  #tx(client: pg.PoolClient, opening: string | null): PgSession {
    const held: string[] = opening === null ? [] : [opening];
    let sends = 0;
    let sp = 0;
    /** Send what is held and `statements` in one message; resolves with the results of `statements`. */
    const sendAll = async (statements: readonly Statement[]): Promise<pg.QueryResult[]> => {
      sends++;
      let r: pg.QueryResult[];
      if (held.length === 0 && statements.length === 1) {
        r = [await client.query(numbered(statements[0]!.sql), statements[0]!.params as unknown[] | undefined)];
      } else {
        const text = [...held.splice(0), ...statements.map((st) => inline(client, st.sql, st.params))].join(';\n');
        const all = (await client.query(text)) as pg.QueryResult | pg.QueryResult[];
        r = (Array.isArray(all) ? all : [all]).slice(-statements.length);
      }
      this.#gate.progress();
      this.#writers.progress();
      return r;
    };
    const send = async (sql: string, params?: readonly SqlValue[]) => (await sendAll([{ sql, ...(params ? { params } : {}) }]))[0]!;
    const tx: Tx = {
      get: async <T>(sql: string, params?: readonly SqlValue[]) => (await send(sql, params)).rows[0] as T | undefined,
      all: async <T>(sql: string, params?: readonly SqlValue[]) => (await send(sql, params)).rows as T[],
      run: async (sql: string, params?: readonly SqlValue[]) => (await send(sql, params)).rowCount ?? 0,
      later: async (sql: string, params?: readonly SqlValue[]) => void held.push(inline(client, sql, params)),
      batch: async (statements) => (statements.length === 0 ? [] : (await sendAll(statements)).map((r) => r.rows as unknown[])),
      savepoint: async <T>(fn: () => Promise<T>) => {
        const name = `sp${++sp}`;
        const mark = held.length;
        held.push(`SAVEPOINT ${name}`);
        const before = sends;
        let r: T;
        try {
          r = await fn();
        } catch (e) {
          if (!(e instanceof RegistryError)) throw e;
          // Nothing sent since: the savepoint and what followed it were never sent, just drop them.
          if (sends === before) held.length = mark;
          else {
            held.length = 0; // statements of the savepoint not sent yet: undone anyway
            await send(`ROLLBACK TO SAVEPOINT ${name}; RELEASE SAVEPOINT ${name}`);
          }
          throw e;
        }
        if (sends === before && held.length === mark + 1) held.length = mark; // it ran no statement
        else await send(`RELEASE SAVEPOINT ${name}`);
        return r;
      },
    };
    return { tx, finish: async (last) => void (held.length > 0 || last !== null ? await send(last ?? 'SELECT 1') : undefined) };
  }

  async #session<T>(what: string, write: boolean, fn: (tx: Tx) => Promise<T>, durable = true): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      let client: pg.PoolClient;
      const leave = await this.#gate.admit(what, this.#closed, (e) => this.#map(e, what));
      try {
        client = await this.#pool.connect();
      } catch (e) {
        leave();
        throw this.#map(e, what);
      }
      let broken: Error | undefined;
      try {
        const session = this.#tx(client, write ? (durable ? 'BEGIN' : "BEGIN; SET LOCAL synchronous_commit = 'off'") : null);
        const r = await fn(session.tx);
        await session.finish(write ? 'COMMIT' : null);
        this.#gate.progress();
        return r;
      } catch (e) {
        // (A BEGIN still held was never sent: ROLLBACK outside a transaction is only a warning.)
        if (write) await client.query('ROLLBACK').catch((err: Error) => (broken = err));
        if (!isRequestError(e) && !(e instanceof RegistryError) && !isRetryable(e)) broken ??= e as Error;
        if (isRetryable(e) && attempt < 4) continue;
        throw this.#map(e, what);
      } finally {
        client.release(broken);
        leave();
      }
    }
  }

  async write<T>(what: string, fn: (tx: Tx) => Promise<T>, opts: WriteOptions = {}): Promise<T> {
    const leave = await this.#writers.admit(what, this.#closed, (e) => this.#map(e, what));
    try {
      return await this.#session(what, true, fn, opts.durable !== false);
    } finally {
      leave();
    }
  }

  read<T>(what: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.#session(what, false, fn);
  }

  async listen(onNotify: () => void): Promise<() => Promise<void>> {
    let client: pg.Client | null = null;
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    let backoff = 250;
    const connect = async (): Promise<void> => {
      if (stopped) return;
      const c = new pg.Client(this.#config);
      c.on('error', () => undefined);
      c.on('notification', (n) => {
        if (n.channel === NOTIFY_CHANNEL) onNotify();
      });
      c.on('end', () => {
        if (client !== c) return;
        client = null;
        if (!stopped) timer = setTimeout(() => void connect(), backoff);
      });
      try {
        await c.connect();
        await c.query(`LISTEN ${NOTIFY_CHANNEL}`);
        client = c;
        backoff = 250;
        onNotify(); // catch up on what happened while not listening
      } catch {
        await c.end().catch(() => undefined);
        backoff = Math.min(backoff * 2, 5000);
        if (!stopped) timer = setTimeout(() => void connect(), backoff);
      }
    };
    await connect();
    const stop = async () => {
      stopped = true;
      clearTimeout(timer);
      this.#listeners.delete(stop);
      await client?.end().catch(() => undefined);
    };
    this.#listeners.add(stop);
    return stop;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const stop of [...this.#listeners]) await stop();
    await this.#pool.end().catch(() => undefined);
  }
}
