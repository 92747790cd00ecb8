/**
 * What the hub mesh (`./mesh.ts`) keeps in the shared registry: the hubs of
 * the fleet (`mesh_hubs`: key, WireGuard endpoint, API URL, certificate pin,
 * last heartbeat) and the home hub of every peer (`mesh_homes`: one row per
 * peer key, with a change sequence so that every hub reads only what changed
 * since its last poll).
 *
 * {@link MeshStore} is the contract; {@link SqliteMeshStore} implements it on
 * the registry's SQLite file with a connection of its own. Its writes never
 * wait for a lock (`busy_timeout = 0`): a busy or broken store is a
 * `STORE_UNAVAILABLE` error at once and the caller retries later, so the hub's
 * event loop — which also moves packets — never sits in a busy wait.
 * @module
 */

import Database from 'better-sqlite3';
import { RegistryError } from './registry/types.js';

/** One hub of the fleet, as listed in the registry. */
export interface HubRecord {
  /** The hub's WireGuard public key, base64 (its identity). */
  id: string;
  /** Its public UDP endpoint `host:port` (for agents and the other hubs). */
  endpoint: string;
  /** Base URL of its registration API, or null when it serves none. */
  apiUrl: string | null;
  /** Pin of its API certificate (`sha256:HEX`), or null (plain HTTP / no API). */
  certPin: string | null;
  /** Unix ms of its last heartbeat. */
  lastSeen: number;
}

/** A peer's home hub, with the change sequence number of the assignment. */
export interface HomeRecord {
  /** The peer's public key, base64. */
  publicKey: string;
  /** Id (public key) of its home hub. */
  hubId: string;
  /** Position in the change sequence (strictly increasing across all hubs). */
  seq: number;
}

/** The mesh's view of the shared registry (see the module documentation). */
export interface MeshStore {
  /** Insert or refresh this hub's row (also its heartbeat). */
  upsertHub(hub: HubRecord): Promise<void>;
  /** Every listed hub. */
  listHubs(): Promise<HubRecord[]>;
  /** Drop a hub's row (a hub that stops cleanly). */
  removeHub(id: string): Promise<void>;
  /** Make `hubId` the home of peer `publicKey` (no-op when it already is). */
  setHome(publicKey: string, hubId: string): Promise<void>;
  /** Home assignments with a sequence number above `seq`, in sequence order. */
  homesSince(seq: number): Promise<HomeRecord[]>;
  /** Release the connection. Idempotent. */
  close(): void;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS mesh_hubs (
  id          TEXT PRIMARY KEY,
  endpoint    TEXT NOT NULL,
  api_url     TEXT,
  cert_pin    TEXT,
  last_seen   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS mesh_homes (
  public_key  TEXT PRIMARY KEY,
  hub_id      TEXT NOT NULL,
  seq         INTEGER NOT NULL UNIQUE
);
`;

interface HubRow {
  id: string;
  endpoint: string;
  api_url: string | null;
  cert_pin: string | null;
  last_seen: number;
}

/** {@link MeshStore} on the registry's SQLite database file. */
export class SqliteMeshStore implements MeshStore {
  readonly #db: Database.Database;
  readonly #path: string;
  #closed = false;

  private constructor(db: Database.Database, path: string) {
    this.#db = db;
    this.#path = path;
  }

  /**
   * Open the mesh tables in the registry database at `path` (created if
   * missing; the registry itself must already exist there).
   * @throws RegistryError `STORE_UNAVAILABLE`
   */
  static open(path: string): SqliteMeshStore {
    let db: Database.Database;
    try {
      db = new Database(path, { fileMustExist: true, timeout: 1000 });
    } catch (e) {
      throw unavailable(path, 'open', e);
    }
    try {
      // Creating the tables may wait a little for another writer; afterwards nothing waits.
      db.exec(SCHEMA);
      db.pragma('busy_timeout = 0');
      db.pragma('synchronous = NORMAL');
    } catch (e) {
      db.close();
      throw unavailable(path, 'open', e);
    }
    return new SqliteMeshStore(db, path);
  }

  #do<T>(what: string, fn: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new RegistryError('STORE_UNAVAILABLE', `mesh registry ${what}: closed`));
    try {
      return Promise.resolve(fn());
    } catch (e) {
      return Promise.reject(unavailable(this.#path, what, e));
    }
  }

  upsertHub(h: HubRecord): Promise<void> {
    return this.#do('hub heartbeat', () => {
      this.#db
        .prepare(
          `INSERT INTO mesh_hubs (id, endpoint, api_url, cert_pin, last_seen) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT(id) DO UPDATE SET endpoint = excluded.endpoint, api_url = excluded.api_url,
             cert_pin = excluded.cert_pin, last_seen = excluded.last_seen`,
        )
        .run(h.id, h.endpoint, h.apiUrl, h.certPin, h.lastSeen);
    });
  }

  listHubs(): Promise<HubRecord[]> {
    return this.#do('list hubs', () =>
      (this.#db.prepare('SELECT id, endpoint, api_url, cert_pin, last_seen FROM mesh_hubs ORDER BY id').all() as HubRow[]).map((r) => ({
        id: r.id,
        endpoint: r.endpoint,
        apiUrl: r.api_url,
        certPin: r.cert_pin,
        lastSeen: r.last_seen,
      })),
    );
  }

  removeHub(id: string): Promise<void> {
    return this.#do('remove hub', () => {
      this.#db.prepare('DELETE FROM mesh_hubs WHERE id = ?').run(id);
    });
  }

  setHome(publicKey: string, hubId: string): Promise<void> {
    return this.#do('set home hub', () => {
      // IMMEDIATE: the next sequence number is taken under the write lock.
      this.#db.transaction(() => {
        const cur = this.#db.prepare('SELECT hub_id FROM mesh_homes WHERE public_key = ?').get(publicKey) as { hub_id: string } | undefined;
        if (cur?.hub_id === hubId) return;
        const seq = (this.#db.prepare('SELECT COALESCE(MAX(seq), 0) + 1 AS n FROM mesh_homes').get() as { n: number }).n;
        this.#db
          .prepare('INSERT INTO mesh_homes (public_key, hub_id, seq) VALUES (?, ?, ?) ON CONFLICT(public_key) DO UPDATE SET hub_id = excluded.hub_id, seq = excluded.seq')
          .run(publicKey, hubId, seq);
      }).immediate();
    });
  }

  homesSince(seq: number): Promise<HomeRecord[]> {
    return this.#do('read home hubs', () =>
      (this.#db.prepare('SELECT public_key, hub_id, seq FROM mesh_homes WHERE seq > ? ORDER BY seq').all(seq) as { public_key: string; hub_id: string; seq: number }[]).map(
        (r) => ({ publicKey: r.public_key, hubId: r.hub_id, seq: r.seq }),
      ),
    );
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }
}

function unavailable(path: string, what: string, e: unknown): RegistryError {
  return new RegistryError('STORE_UNAVAILABLE', `mesh registry ${what} (${path}): ${e instanceof Error ? e.message : String(e)}`, undefined, { cause: e });
}
