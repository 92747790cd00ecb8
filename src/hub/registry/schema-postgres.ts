/**
 * Schema and in-place migrations of the PostgreSQL registry, versioned by
 * `meta.schema_version`. Concurrent hubs starting at once serialise on a
 * transaction-level advisory lock, so each migration runs once. Names sort
 * byte-wise (`COLLATE "C"`), as in SQLite.
 * @module
 */

import { RegistryError } from './types.js';
import type { Tx } from './store.js';

/** The schema version this code writes. */
export const POSTGRES_SCHEMA_VERSION = 1;

/** Advisory lock key of schema migrations ("tsguard" in ASCII). */
const MIGRATION_LOCK = 0x747367756172;

const MIGRATIONS: ReadonlyArray<readonly string[]> = [
  // 1: the tables of SQLite schema 3.
  [
    `CREATE TABLE peers (
      id              BIGSERIAL PRIMARY KEY,
      kind            TEXT COLLATE "C" NOT NULL CHECK (kind IN ('device', 'client', 'agent')),
      name            TEXT COLLATE "C" NOT NULL,
      public_key      TEXT NOT NULL UNIQUE,
      ipv4            TEXT NOT NULL UNIQUE,
      ipv4_int        BIGINT NOT NULL UNIQUE,
      ipv6            TEXT UNIQUE,
      routes          TEXT NOT NULL DEFAULT '[]',
      labels          TEXT NOT NULL DEFAULT '{}',
      source          TEXT NOT NULL CHECK (source IN ('cli', 'clients-file', 'fleet-api', 'registration')),
      enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
      comment         TEXT,
      created_at      BIGINT NOT NULL,
      updated_at      BIGINT NOT NULL,
      last_seen       BIGINT,
      last_endpoint   TEXT,
      credential_hash BYTEA,
      rekey_allowed   INTEGER NOT NULL DEFAULT 0,
      home_hub        BIGINT,
      UNIQUE (kind, name)
    )`,
    `CREATE INDEX peers_source ON peers (source)`,
    `CREATE INDEX peers_with_routes ON peers (id) WHERE routes <> '[]'`,
    `CREATE TABLE quarantine (
      ipv4_int  BIGINT PRIMARY KEY,
      until_ms  BIGINT NOT NULL,
      former    TEXT NOT NULL
    )`,
    `CREATE INDEX quarantine_until ON quarantine (until_ms)`,
    `CREATE TABLE tokens (
      id          TEXT COLLATE "C" PRIMARY KEY,
      secret_hash BYTEA NOT NULL,
      created_at  BIGINT NOT NULL,
      expires_at  BIGINT,
      max_uses    BIGINT,
      uses        BIGINT NOT NULL DEFAULT 0,
      revoked_at  BIGINT,
      comment     TEXT
    )`,
    `CREATE TABLE enrollments (
      name        TEXT PRIMARY KEY,
      token_id    TEXT NOT NULL,
      public_key  TEXT NOT NULL,
      at          BIGINT NOT NULL
    )`,
    `CREATE TABLE registry_state (
      id          INTEGER PRIMARY KEY CHECK (id = 1),
      change_seq  BIGINT NOT NULL,
      alloc_hint  BIGINT NOT NULL
    )`,
    `INSERT INTO registry_state (id, change_seq, alloc_hint) VALUES (1, 0, 0)`,
    `CREATE TABLE changes (
      id    BIGSERIAL PRIMARY KEY,
      seq   BIGINT NOT NULL,
      kind  TEXT NOT NULL,
      name  TEXT NOT NULL,
      at    BIGINT NOT NULL
    )`,
    `CREATE INDEX changes_seq ON changes (seq)`,
    `CREATE TABLE hubs (
      id          BIGSERIAL PRIMARY KEY,
      public_key  TEXT NOT NULL UNIQUE,
      endpoint    TEXT,
      api_url     TEXT,
      cert_pin    TEXT,
      last_seen   BIGINT NOT NULL
    )`,
  ],
];

/**
 * Bring the schema to {@link POSTGRES_SCHEMA_VERSION} inside the open transaction.
 * @throws RegistryError `STORE_UNAVAILABLE` for a schema newer than this code
 */
export async function migratePostgres(tx: Tx, where: string): Promise<void> {
  await tx.get('SELECT pg_advisory_xact_lock(?)', [MIGRATION_LOCK]);
  await tx.run(`CREATE TABLE IF NOT EXISTS meta (key TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL)`);
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
