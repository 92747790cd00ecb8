/**
 * Schema and in-place migrations of the SQLite registry, versioned by
 * `PRAGMA user_version`: 1 the first release, 2 `peers.last_endpoint`,
 * 3 the change log, the allocation hint, agent credentials, the hubs table
 * and the peers' home hub. The statements are also the source of the
 * PostgreSQL schema (`./schema-postgres.ts`), so both define the same tables.
 * @module
 */

import { RegistryError } from './types.js';
import type { Tx } from './store.js';

/** The schema version this code writes. */
export const SQLITE_SCHEMA_VERSION = 3;

/** Schema 1 (tables as first released). */
export const V1: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS peers (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL CHECK (kind IN ('device', 'client', 'agent')),
    name       TEXT NOT NULL,
    public_key TEXT NOT NULL UNIQUE,
    ipv4       TEXT NOT NULL UNIQUE,
    ipv4_int   INTEGER NOT NULL UNIQUE,
    ipv6       TEXT UNIQUE,
    routes     TEXT NOT NULL DEFAULT '[]',
    labels     TEXT NOT NULL DEFAULT '{}',
    source     TEXT NOT NULL CHECK (source IN ('cli', 'clients-file', 'fleet-api', 'registration')),
    enabled    INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    comment    TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_seen  INTEGER,
    UNIQUE (kind, name)
  )`,
  `CREATE INDEX IF NOT EXISTS peers_source ON peers (source)`,
  `CREATE TABLE IF NOT EXISTS quarantine (
    ipv4_int    INTEGER PRIMARY KEY,
    until_ms    INTEGER NOT NULL,
    former      TEXT NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS tokens (
    id          TEXT PRIMARY KEY,
    secret_hash BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    max_uses    INTEGER,
    uses        INTEGER NOT NULL DEFAULT 0,
    revoked_at  INTEGER,
    comment     TEXT
  )`,
  `CREATE TABLE IF NOT EXISTS enrollments (
    name        TEXT PRIMARY KEY,
    token_id    TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    at          INTEGER NOT NULL
  )`,
];

/** Schema 2: the last endpoint seen, so that a restarted hub can reach its peers at once. */
export const V2: readonly string[] = ['ALTER TABLE peers ADD COLUMN last_endpoint TEXT'];

/** Schema 3. */
export const V3: readonly string[] = [
  `ALTER TABLE peers ADD COLUMN credential_hash BLOB`,
  `ALTER TABLE peers ADD COLUMN rekey_allowed INTEGER NOT NULL DEFAULT 0`,
  `ALTER TABLE peers ADD COLUMN home_hub INTEGER`,
  `CREATE INDEX IF NOT EXISTS peers_with_routes ON peers (id) WHERE routes <> '[]'`,
  `CREATE INDEX IF NOT EXISTS quarantine_until ON quarantine (until_ms)`,
  `CREATE TABLE IF NOT EXISTS registry_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    change_seq  INTEGER NOT NULL,
    alloc_hint  INTEGER NOT NULL
  )`,
  `INSERT INTO registry_state (id, change_seq, alloc_hint) VALUES (1, 0, 0) ON CONFLICT DO NOTHING`,
  `CREATE TABLE IF NOT EXISTS changes (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    seq   INTEGER NOT NULL,
    kind  TEXT NOT NULL,
    name  TEXT NOT NULL,
    at    INTEGER NOT NULL
  )`,
  `CREATE INDEX IF NOT EXISTS changes_seq ON changes (seq)`,
  `CREATE TABLE IF NOT EXISTS hubs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    public_key  TEXT NOT NULL UNIQUE,
    endpoint    TEXT,
    api_url     TEXT,
    cert_pin    TEXT,
    last_seen   INTEGER NOT NULL
  )`,
];

/**
 * Bring the schema to {@link SQLITE_SCHEMA_VERSION} inside the open
 * (IMMEDIATE) transaction; a newer schema is refused.
 * @throws RegistryError `STORE_UNAVAILABLE` for a schema newer than this code
 */
export async function migrateSqlite(tx: Tx, path: string): Promise<void> {
  const ver = (await tx.get<{ user_version: number }>('PRAGMA user_version'))!.user_version;
  if (ver > SQLITE_SCHEMA_VERSION) {
    throw new RegistryError('STORE_UNAVAILABLE', `${path} was written by a newer tsguard (schema ${ver}, this one knows ${SQLITE_SCHEMA_VERSION}); upgrade tsguard`);
  }
  if (ver === SQLITE_SCHEMA_VERSION) return;
  for (const s of V1) await tx.run(s);
  const cols = new Set((await tx.all<{ name: string }>('PRAGMA table_info(peers)')).map((c) => c.name));
  // 1 → 2 → 3 (an ADD COLUMN is skipped when the column exists: a schema 1 file may have been touched by a later release).
  for (const s of [...V2, ...V3]) {
    const col = /ADD COLUMN (\w+)/.exec(s)?.[1];
    if (col === undefined || !cols.has(col)) await tx.run(s);
  }
  await tx.run(`PRAGMA user_version = ${SQLITE_SCHEMA_VERSION}`);
}
