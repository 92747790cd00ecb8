/**
 * A real PostgreSQL server for the tests, from Debian's `postgresql` package
 * (`/usr/lib/postgresql/<version>/bin`): `initdb` in a temporary directory,
 * listening only on a unix socket in that directory (no TCP), started and
 * stopped (also on failure, from `afterAll`) by the test. As root the server
 * runs as the `postgres` user (it refuses to run as root).
 *
 * Without the binaries the tests skip with a message, except under CI
 * (`CI=true`), where a missing server is a failure.
 */
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { run } from '../net/netns.js';

const PG_ROOT = '/usr/lib/postgresql';

/** The bin directory of the newest installed PostgreSQL, or null. */
export function postgresBin(): string | null {
  if (!existsSync(PG_ROOT)) return null;
  const versions = readdirSync(PG_ROOT)
    .filter((v) => existsSync(join(PG_ROOT, v, 'bin', 'initdb')) && existsSync(join(PG_ROOT, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? join(PG_ROOT, versions[0]!, 'bin') : null;
}

/**
 * Whether the PostgreSQL tests of `file` must be skipped (binaries missing,
 * not under CI). Under CI a missing server throws.
 */
export function skipPostgres(file: string): boolean {
  if (postgresBin() !== null) return false;
  const why = `PostgreSQL server binaries not found in ${PG_ROOT}/*/bin (install Debian's "postgresql" package)`;
  if (process.env.CI === 'true') throw new Error(`[${file}] ${why}; CI must run the PostgreSQL tests`);
  console.warn(`[${file}] PostgreSQL tests SKIPPED: ${why}`);
  return true;
}

/** A running test server. */
export class TestPostgres {
  #n = 0;
  private constructor(
    readonly dir: string,
    readonly bin: string,
    readonly asUser: string | null,
  ) {}

  /** The unix socket directory (what `?host=` names). */
  get socketDir(): string {
    return join(this.dir, 'sock');
  }

  /** initdb + start. */
  static async start(): Promise<TestPostgres> {
    const bin = postgresBin();
    if (bin === null) throw new Error('PostgreSQL binaries not found');
    const dir = mkdtempSync(join(tmpdir(), 'tsguard-pg-'));
    const root = typeof process.getuid === 'function' && process.getuid() === 0;
    const s = new TestPostgres(dir, bin, root ? 'postgres' : null);
    await run('mkdir', ['-p', join(dir, 'sock')]);
    if (root) {
      const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
      const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
      chownSync(dir, uid, gid);
      chownSync(join(dir, 'sock'), uid, gid);
    }
    await s.#pg('initdb', ['-D', join(dir, 'data'), '-U', 'tsguard', '-A', 'trust', '--locale=C', '-E', 'UTF8', '--no-sync']);
    await s.startServer();
    return s;
  }

  async #pg(tool: string, args: string[], timeoutMs = 60_000): Promise<void> {
    const cmd = join(this.bin, tool);
    if (this.asUser) await run('runuser', ['-u', this.asUser, '--', cmd, ...args], { timeoutMs, cwd: this.dir });
    else await run(cmd, args, { timeoutMs, cwd: this.dir });
  }

  /** Start (or restart after {@link stopServer}) the server and wait until it accepts connections. */
  async startServer(): Promise<void> {
    const opts = `-c listen_addresses='' -c unix_socket_directories='${this.socketDir}' -c fsync=off -c max_connections=200`;
    await this.#pg('pg_ctl', ['-D', join(this.dir, 'data'), '-l', join(this.dir, 'log'), '-o', opts, '-w', '-t', '60', 'start']);
  }

  /** Stop the server (fast shutdown: open connections are closed). */
  async stopServer(): Promise<void> {
    await this.#pg('pg_ctl', ['-D', join(this.dir, 'data'), '-m', 'fast', '-w', 'stop']);
  }

  /** URL of database `db` over the unix socket. */
  url(db: string): string {
    return `postgresql://tsguard@localhost/${db}?host=${encodeURIComponent(this.socketDir)}`;
  }

  /** Create a new empty database; resolves with its URL. */
  async newDatabase(prefix = 'reg'): Promise<string> {
    const name = `${prefix}_${process.pid}_${++this.#n}`;
    const c = new pg.Client({ connectionString: this.url('postgres') });
    await c.connect();
    try {
      await c.query(`CREATE DATABASE ${name}`);
    } finally {
      await c.end();
    }
    return this.url(name);
  }

  /** Stop the server and remove its directory. */
  async destroy(): Promise<void> {
    await this.stopServer().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
