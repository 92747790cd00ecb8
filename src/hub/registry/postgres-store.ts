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
import { Gate, storeError, type RegistryStore, type SqlValue, type Tx, type WriteOptions } from './store.js';

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

  #tx(client: pg.PoolClient): Tx {
    let sp = 0;
    const q = async (sql: string, params?: readonly SqlValue[]) => {
      const r = await client.query(numbered(sql), params as unknown[] | undefined);
      this.#gate.progress();
      this.#writers.progress();
      return r;
    };
    return {
      get: async <T>(sql: string, params?: readonly SqlValue[]) => (await q(sql, params)).rows[0] as T | undefined,
      all: async <T>(sql: string, params?: readonly SqlValue[]) => (await q(sql, params)).rows as T[],
      run: async (sql: string, params?: readonly SqlValue[]) => (await q(sql, params)).rowCount ?? 0,
      savepoint: async <T>(fn: () => Promise<T>) => {
        const name = `sp${++sp}`;
        await client.query(`SAVEPOINT ${name}`);
        try {
          const r = await fn();
          await client.query(`RELEASE SAVEPOINT ${name}`);
          return r;
        } catch (e) {
          if (!(e instanceof RegistryError)) throw e;
          await client.query(`ROLLBACK TO SAVEPOINT ${name}`);
          await client.query(`RELEASE SAVEPOINT ${name}`);
          throw e;
        }
      },
    };
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
        if (write) await client.query(durable ? 'BEGIN' : "BEGIN; SET LOCAL synchronous_commit = 'off'");
        const r = await fn(this.#tx(client));
        if (write) await client.query('COMMIT');
        this.#gate.progress();
        return r;
      } catch (e) {
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
