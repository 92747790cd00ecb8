/**
 * Schema and in-place migrations of the PostgreSQL registry, versioned by
 * `meta.schema_version`. Concurrent hubs starting at once serialise on a
 * transaction-level advisory lock, so each migration runs once. The tables
 * are SQLite's (`./schema-sqlite.ts`) in PostgreSQL's types; names sort
 * byte-wise (`COLLATE "C"`), as in SQLite.
 * @module
 */

import { RegistryError } from './types.js';
import type { Tx } from './store.js';
import { V1, V2, V3 } from './schema-sqlite.js';

/** The channel change notifications are sent on. */
export const NOTIFY_CHANNEL = 'tsguard_registry';

/** The schema version this code writes. */
export const POSTGRES_SCHEMA_VERSION = 1;

/** Advisory lock key of schema migrations ("tsguard" in ASCII). */
const MIGRATION_LOCK = 0x747367756172;

/**
 * The SQLite statements in PostgreSQL's types: 64-bit integers, BYTEA,
 * identity columns, and byte-wise ordering of names.
 */
function fromSqlite(sql: string): string {
  return sql
    .replace(/INTEGER PRIMARY KEY AUTOINCREMENT/g, 'BIGSERIAL PRIMARY KEY')
    .replace(/\bINTEGER\b/g, 'BIGINT')
    .replace(/\bBLOB\b/g, 'BYTEA')
    .replace(/^(\s*(?:kind|name|id|key)\s+)TEXT\b/gm, '$1TEXT COLLATE "C"');
}

const MIGRATIONS: ReadonlyArray<readonly string[]> = [
  // 1: the tables of SQLite schema 3, and a NOTIFY (delivered on commit) for every statement that logs changes.
  [
    ...[...V1, ...V2, ...V3].map(fromSqlite),
    `CREATE OR REPLACE FUNCTION tsguard_registry_notify() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN PERFORM pg_notify('${NOTIFY_CHANNEL}', ''); RETURN NULL; END $$`,
    `CREATE TRIGGER changes_notify AFTER INSERT ON changes FOR EACH STATEMENT EXECUTE FUNCTION tsguard_registry_notify()`,
  ],
];

/**
 * Bring the schema to {@link POSTGRES_SCHEMA_VERSION} inside the open transaction.
 * @throws RegistryError `STORE_UNAVAILABLE` for a schema newer than this code
 */
export async function migratePostgres(tx: Tx, where: string): Promise<void> {
  await tx.get('SELECT pg_advisory_xact_lock(?)', [MIGRATION_LOCK]);
  await tx.run(fromSqlite(V1[0]!));
  const row = await tx.get<{ value: string }>(`SELECT value FROM meta WHERE key = 'schema_version'`);
  const ver = row === undefined ? 0 : Number(row.value);
  if (ver > POSTGRES_SCHEMA_VERSION) {
    throw new RegistryError('STORE_UNAVAILABLE', `the registry ${where} was written by a newer tsguard (schema ${ver}, this one knows ${POSTGRES_SCHEMA_VERSION}); upgrade tsguard`);
  }
  for (let v = ver; v < POSTGRES_SCHEMA_VERSION; v++) for (const s of MIGRATIONS[v]!) await tx.run(s);
  if (ver < POSTGRES_SCHEMA_VERSION) {
    await tx.run(`INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [String(POSTGRES_SCHEMA_VERSION)]);
  }
}
