// Types of postgres.mjs for the TypeScript tests that import it (test/helpers/postgres.ts).

/** The bin directory of the newest installed PostgreSQL, or null. */
export declare function postgresBin(): string | null;

/** A running throw-away PostgreSQL server (unix socket only). */
export declare class TestPostgres {
  /** Its directory (data, socket, log). */
  readonly dir: string;
  /** The unix socket directory. */
  readonly socketDir: string;
  /** initdb + start (fsync off unless asked for). */
  static start(opts?: { fsync?: boolean }): Promise<TestPostgres>;
  /** Start (or restart) the server. */
  startServer(): Promise<void>;
  /** Stop the server. */
  stopServer(): Promise<void>;
  /** URL of database `db` over the unix socket. */
  url(db: string): string;
  /** Create a new empty database; resolves with its URL. */
  newDatabase(prefix?: string): Promise<string>;
  /** Stop the server and remove its directory. */
  destroy(): Promise<void>;
}
