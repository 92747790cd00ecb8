// A throw-away PostgreSQL server from Debian's `postgresql` package (/usr/lib/postgresql/<version>/bin),
// shared by the tests (test/helpers/postgres.ts) and the benchmark (bench/micro-registry.mjs):
// initdb in a temporary directory, listening only on a unix socket in it (no TCP), trust
// authentication for its own user; as root the server runs as the `postgres` user (it refuses root).
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { run } from './proc.mjs';

const PG_ROOT = '/usr/lib/postgresql';

/** The bin directory of the newest installed PostgreSQL, or null. */
export function postgresBin() {
  if (!existsSync(PG_ROOT)) return null;
  const versions = readdirSync(PG_ROOT)
    .filter((v) => existsSync(join(PG_ROOT, v, 'bin', 'initdb')) && existsSync(join(PG_ROOT, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? join(PG_ROOT, versions[0], 'bin') : null;
}

/** A running throw-away server. */
export class TestPostgres {
  #n = 0;

  constructor(dir, bin, asUser) {
    /** Its directory (data, socket, log). */
    this.dir = dir;
    this.bin = bin;
    this.asUser = asUser;
  }

  /** The unix socket directory (what `?host=` names). */
  get socketDir() {
    return join(this.dir, 'sock');
  }

  /** initdb + start. Options: fsync (default false: a test server needs no durability). */
  static async start(opts = {}) {
    const bin = postgresBin();
    if (bin === null) throw new Error(`PostgreSQL binaries not found in ${PG_ROOT}/*/bin`);
    const dir = mkdtempSync(join(tmpdir(), 'tsguard-pg-'));
    const root = typeof process.getuid === 'function' && process.getuid() === 0;
    const s = new TestPostgres(dir, bin, root ? 'postgres' : null);
    s.fsync = opts.fsync === true;
    mkdirSync(join(dir, 'sock'));
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

  async #pg(tool, args) {
    const cmd = join(this.bin, tool);
    if (this.asUser) await run('runuser', ['-u', this.asUser, '--', cmd, ...args], { timeoutMs: 90_000, cwd: this.dir });
    else await run(cmd, args, { timeoutMs: 90_000, cwd: this.dir });
  }

  /** Start (or restart after {@link stopServer}) the server; resolves when it accepts connections. */
  async startServer() {
    const opts = `-c listen_addresses='' -c unix_socket_directories='${this.socketDir}' -c max_connections=200 -c fsync=${this.fsync ? 'on' : 'off'}`;
    await this.#pg('pg_ctl', ['-D', join(this.dir, 'data'), '-l', join(this.dir, 'log'), '-o', opts, '-w', '-t', '60', 'start']);
  }

  /** Stop the server (fast shutdown: open connections are closed). */
  async stopServer() {
    await this.#pg('pg_ctl', ['-D', join(this.dir, 'data'), '-m', 'fast', '-w', 'stop']);
  }

  /** URL of database `db` over the unix socket. */
  url(db) {
    return `postgresql://tsguard@localhost/${db}?host=${encodeURIComponent(this.socketDir)}`;
  }

  /** Create a new empty database; resolves with its URL. */
  async newDatabase(prefix = 'reg') {
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
  async destroy() {
    await this.stopServer().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
