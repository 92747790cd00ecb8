/**
 * A real PostgreSQL server for the tests (see bench/lib/postgres.mjs: initdb
 * in a temporary directory, unix socket only, started and stopped by the
 * test, run as `postgres` when we are root). Without the binaries the tests
 * skip with a message, except under CI (`CI=true`), where that is a failure.
 */
import { afterAll, beforeAll } from 'vitest';
import { postgresBin, TestPostgres } from '../../bench/lib/postgres.mjs';

export { postgresBin, TestPostgres } from '../../bench/lib/postgres.mjs';

/**
 * Whether the PostgreSQL tests of `file` must be skipped (binaries missing,
 * not under CI). Under CI a missing server throws.
 */
export function skipPostgres(file: string): boolean {
  if (postgresBin() !== null) return false;
  const why = 'PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin (install Debian\'s "postgresql" package)';
  if (process.env.CI === 'true') throw new Error(`[${file}] ${why}; CI must run the PostgreSQL tests`);
  console.warn(`[${file}] PostgreSQL tests SKIPPED: ${why}`);
  return true;
}

/**
 * One server for the tests of `file`, started before them and destroyed after
 * them (vitest hooks registered here); `available` is false when they skip.
 */
export function usePostgres(file: string): { available: boolean; server: () => TestPostgres } {
  const available = !skipPostgres(file);
  let server: TestPostgres | null = null;
  beforeAll(async () => {
    if (available) server = await TestPostgres.start();
  }, 120_000);
  afterAll(async () => {
    await server?.destroy();
  });
  return {
    available,
    server: () => {
      if (server === null) throw new Error(`[${file}] the PostgreSQL server is not running`);
      return server;
    },
  };
}
