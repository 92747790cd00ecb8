/** Types of the `pgpass` module (libpq's password file lookup). */
declare module 'pgpass' {
  /** Look up the password for `conn` in `PGPASSFILE` or `~/.pgpass`; calls back with undefined when none matches. */
  function pgpass(conn: { host: string; port: string; database: string; user: string }, cb: (password?: string) => void): void;
  export default pgpass;
}
