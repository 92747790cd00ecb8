/**
 * The hub's peer registry: the single source of truth for every peer of a
 * fleet — devices, clients and self-registered agents — their addresses,
 * enrollment tokens, agent credentials and the hubs themselves.
 *
 * One implementation of the rules (this class and the modules it calls)
 * runs on an asynchronous {@link RegistryStore}: SQLite (`registry.sqlite` in
 * the data directory, the embedded default, driven from a worker thread) or
 * PostgreSQL (`--registry postgresql://…`, shared by several hubs). Every
 * call is asynchronous and bounded: a locked, slow or unreachable store
 * answers `STORE_UNAVAILABLE` within the store timeout, and nothing of it
 * runs on the engine's thread for longer than posting a message.
 *
 * - **Validation first.** Names, keys (base64, 32 bytes, not all-zero, not a
 *   low-order point), addresses and routes are checked before the store is
 *   touched, so a bad request consumes nothing.
 * - **One transaction per change.** Every write is atomic, serialised with
 *   all other writers of the store (SQLite `BEGIN IMMEDIATE`; on PostgreSQL
 *   the row lock of the change counter, taken first): token check, address
 *   choice, insert and token use commit together or not at all. Changes that
 *   arrive together share one transaction and one disk flush, each in its
 *   own savepoint (group commit, `./group-commit.ts`); each is answered after
 *   that commit. Unique constraints on the address, the public key and
 *   (kind, name) back this up.
 * - **Allocation** is the lowest free host address, at a cost independent of
 *   the number of rows (`./allocator.ts`).
 * - **Changes** are logged with a sequence number in the same transaction
 *   (`./changes.ts`), so a hub applies exactly what changed.
 * - **Never renumber silently** (`./meta.ts`); **refuse rather than guess**:
 *   there is no in-memory fallback.
 * - **Identities** (`./enrollment.ts`): an agent's first registration returns
 *   a credential; changing its key needs it (or `hub agent rekey`).
 * @module
 */

import { closeSync, chmodSync, existsSync, mkdirSync, openSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { generateToken, hashSecret, parseToken } from '../tokens.js';
import { purgeQuarantine } from './allocator.js';
import { GroupCommit, storeRunner } from './group-commit.js';
import { changesSince, currentSeq, runChange } from './changes.js';
import { authenticToken, tokenInfo, type Registration } from './enrollment.js';
import { runProcedure, type ProcedureJob } from './procedures.js';
import { listHubsTx, upsertHubTx } from './hubs.js';
import { setMeta, settleMeta } from './meta.js';
import { addPeerTx, removePeerTx, updatePeerTx } from './peers.js';
import { replaceSourceTx, validateDesired } from './sources.js';
import { markChanged, peerRow, peerRowById, peerRows, toRecord, type Ctx, type PeerRow, type TokenRow } from './rows.js';
import { migratePostgres } from './schema-postgres.js';
import { migrateSqlite } from './schema-sqlite.js';
import { SqliteStore } from './sqlite-store.js';
import { storeError, type RegistryStore, type Tx } from './store.js';
import { checkHostAddress, ipv6For, parseSubnet4, parseSubnet6, v4Text, type Net4, type Net6 } from './subnet.js';
import {
  REGISTRY_FILE,
  RegistryError,
  STORE_TIMEOUT_MS,
  type AddPeerInput,
  type AddPeerResult,
  type ChangeBatch,
  type CreateTokenOptions,
  type DesiredPeer,
  type HubRecord,
  type PeerKind,
  type PeerPatch,
  type PeerRecord,
  type RegisterAgentInput,
  type RegisterAgentResult,
  type RegistryOpenOptions,
  type ReplaceableSource,
  type ReplaceSourceResult,
  type TokenInfo,
} from './types.js';
import { checkEnabled, checkKind, checkLabels, checkName, checkRoutes, checkSeconds, checkSource, cleanText, validatePublicKey } from './validate.js';

export * from './types.js';
export { isValidPeerName, validatePublicKey } from './validate.js';
export { loadOrCreateHubKey } from './hub-key.js';
export type { RegistryStore } from './store.js';

/** True for a `postgresql://` / `postgres://` registry URL. */
export function isPostgresUrl(url: string | undefined): url is string {
  return url !== undefined && /^postgres(ql)?:/i.test(url);
}

/** Rows per read of {@link Registry.listPeers}. */
const LIST_PAGE = 2000;

/** The peer registry of a hub (or of a fleet of hubs sharing it). See the module documentation. */
export class Registry {
  /** The IPv4 subnet (canonical CIDR). */
  readonly subnet: string;
  /** The IPv6 prefix, or null. */
  readonly ipv6Subnet: string | null;
  /** The hub's IPv4 address (first host of the subnet). */
  readonly hubAddress: string;
  /** The hub's IPv6 address (first host of the prefix), or null. */
  readonly hubAddress6: string | null;
  /** Where the registry is: the SQLite file path, or the PostgreSQL URL. */
  readonly where: string;
  /** The backend. */
  readonly backend: RegistryStore['backend'];

  readonly #store: RegistryStore;
  readonly #group: GroupCommit<(tx: Tx) => Promise<unknown>>;
  /** Registrations, when the store runs named changes itself (SQLite: in its worker). */
  readonly #procedures: GroupCommit<ProcedureJob> | null;
  readonly #v4: Net4;
  readonly #v6: Net6 | null;
  readonly #now: () => number;
  /** Identity of the SQLite file opened (null on PostgreSQL), for {@link ping}. */
  readonly #fileId: { dev: number; ino: number } | null;
  #closed = false;

  private constructor(store: RegistryStore, v4: Net4, v6: Net6 | null, now: () => number) {
    this.#store = store;
    this.#group = new GroupCommit(storeRunner(store));
    const runner = store.procedureRunner?.({ v4, v6 });
    this.#procedures = runner === undefined ? null : new GroupCommit(runner);
    this.#v4 = v4;
    this.#v6 = v6;
    this.#now = now;
    this.where = store.where;
    this.backend = store.backend;
    let fileId: { dev: number; ino: number } | null = null;
    if (store.backend === 'sqlite') {
      try {
        const st = statSync(store.where);
        fileId = { dev: st.dev, ino: st.ino };
      } catch {
        // already gone: ping() reports it
      }
    }
    this.#fileId = fileId;
    this.subnet = v4.text;
    this.ipv6Subnet = v6?.text ?? null;
    this.hubAddress = v4Text(v4.hub);
    this.hubAddress6 = ipv6For(v4, v6, v4.hub);
  }

  /**
   * Open the registry of the hub with data directory `dataDir`: the SQLite
   * file in it, or the PostgreSQL database at `opts.url`. With `create`, a
   * missing data directory is made (mode 0700; an existing empty one owned by
   * this user is tightened to 0700), a missing SQLite file is created (0600),
   * the schema migrated, and an empty registry initialised with the subnet; an
   * existing registry must have the same subnet (or be widened, see
   * `./meta.ts`). Without `create`, a missing registry is `NOT_INITIALIZED`.
   * @throws RegistryError `NOT_INITIALIZED`, `SUBNET_CHANGED`, `INVALID_IP`, `INVALID_VALUE`, `STORE_UNAVAILABLE`
   */
  static async open(dataDir: string, opts: RegistryOpenOptions = {}): Promise<Registry> {
    const now = opts.now ?? Date.now;
    const timeoutMs = opts.timeoutMs ?? STORE_TIMEOUT_MS;
    const create = opts.create;
    // Validate the requested geometry before touching anything.
    const want4 = create ? parseSubnet4(create.subnet) : null;
    const want6 = create?.ipv6 !== undefined && want4 ? parseSubnet6(create.ipv6, want4) : null;
    const registryFlag = isPostgresUrl(opts.url) ? ` --registry ${opts.url}` : '';
    const hint = `run "tsguard hub up --interface NAME --subnet CIDR --listen-port PORT --data-dir ${dataDir}${registryFlag}" first`;

    let store: RegistryStore;
    if (opts.url !== undefined) {
      if (!isPostgresUrl(opts.url)) {
        throw new RegistryError('INVALID_VALUE', `--registry must be a postgresql:// URL (or omitted for the SQLite file in --data-dir), not "${opts.url}"`);
      }
      if (create) prepareDir(dataDir);
      // Loaded on demand: SQLite users (and every CLI start) do not pay for the PostgreSQL client.
      const { PostgresStore } = await import('./postgres-store.js');
      store = await PostgresStore.open(opts.url, { ...(opts.passwordFile !== undefined ? { passwordFile: opts.passwordFile } : {}), timeoutMs });
    } else {
      const path = join(dataDir, REGISTRY_FILE);
      if (create) {
        prepareDir(dataDir);
        try {
          closeSync(openSync(path, 'wx', 0o600));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw storeError(e, 'create', path);
        }
      } else if (!existsSync(path)) {
        throw new RegistryError('NOT_INITIALIZED', `no hub registry in ${dataDir} (${REGISTRY_FILE} is missing); ${hint}`);
      }
      store = await SqliteStore.open(path, timeoutMs, opts.sqliteOnThisThread === true);
    }
    try {
      const { v4, v6 } = await store.write('open', async (tx) => {
        if (store.backend === 'sqlite') await migrateSqlite(tx, store.where);
        else await migratePostgres(tx, store.where);
        return settleMeta(tx, store.where, hint, want4, want6, now());
      });
      return new Registry(store, v4, v6, now);
    } catch (e) {
      await store.close();
      throw e;
    }
  }

  /**
   * Run `fn` as one change with its own change sequence number (its changed peers go into the
   * change log), in a savepoint of the next group commit (`./group-commit.ts`): it settles after
   * that transaction has committed (or rolled back).
   */
  async #write<T>(what: string, fn: (ctx: Ctx) => Promise<T>): Promise<T> {
    this.#checkOpen(what);
    return this.#group.run(what, (tx) => runChange(tx, this.#v4, this.#v6, this.#now(), fn));
  }

  #read<T>(what: string, fn: (ctx: Ctx) => Promise<T>): Promise<T> {
    this.#checkOpen(what);
    return this.#store.read(what, (tx) => fn({ tx, v4: this.#v4, v6: this.#v6, now: this.#now(), changed: new Map(), hint: 0 }));
  }

  #checkOpen(what: string): void {
    if (this.#closed) throw new RegistryError('STORE_UNAVAILABLE', `registry ${what}: the registry is closed`);
  }

  /**
   * Register a peer. Everything is validated before an address is chosen;
   * the address (admin-chosen or the lowest free one) is taken in the same
   * transaction that inserts the peer.
   *
   * - Same kind and name with the same key: the existing record is returned
   *   unchanged (`created: false`; other fields of the request are ignored —
   *   use {@link updatePeer} to change them).
   * - Same kind and name with another key: re-key; the address is kept
   *   (`rekeyed: true`, `previousPublicKey`).
   * @throws RegistryError `INVALID_NAME`, `INVALID_VALUE`, `INVALID_KEY`, `INVALID_IP`, `ADDRESS_TAKEN`, `KEY_CONFLICT`, `NAME_CONFLICT`, `OVERLAP`, `SUBNET_EXHAUSTED`, `STORE_UNAVAILABLE`
   */
  async addPeer(input: AddPeerInput): Promise<AddPeerResult> {
    const kind = checkKind(input.kind);
    const name = checkName(input.name);
    const source = checkSource(input.source);
    const key = validatePublicKey(input.publicKey);
    const ip = input.ip === undefined ? null : checkHostAddress(this.#v4, input.ip);
    const routes = checkRoutes(input.routes);
    const labels = checkLabels(input.labels);
    const comment = cleanText(input.comment, 'comment');
    const enabled = checkEnabled(input.enabled) ?? true;
    return this.#write(`add ${kind}/${name}`, (ctx) => addPeerTx(ctx, { kind, name, key, ip, routes, labels, comment, enabled, source }));
  }

  /**
   * Change a peer. A new key keeps the address; a new address is checked
   * like an admin-chosen one (the IPv6 address follows it); the old address
   * is quarantined for `opts.quarantineSeconds` (default: the stored value).
   * @throws RegistryError `NOT_FOUND` and the validation/conflict codes of {@link addPeer}
   */
  async updatePeer(kind: PeerKind, name: string, patch: PeerPatch, opts: { quarantineSeconds?: number } = {}): Promise<PeerRecord> {
    checkKind(kind);
    checkName(name);
    const key = patch.publicKey === undefined ? undefined : validatePublicKey(patch.publicKey);
    const ip = patch.ip === undefined ? undefined : checkHostAddress(this.#v4, patch.ip);
    const routes = patch.routes === undefined ? undefined : checkRoutes(patch.routes);
    const labels = patch.labels === undefined ? undefined : checkLabels(patch.labels);
    const comment = patch.comment === undefined ? undefined : cleanText(patch.comment, 'comment');
    const enabled = checkEnabled(patch.enabled);
    const q = opts.quarantineSeconds === undefined ? undefined : checkSeconds(opts.quarantineSeconds, 'quarantine');
    return this.#write(`update ${kind}/${name}`, async (ctx) => {
      const row = await peerRow(ctx.tx, kind, name);
      if (!row) throw notFound(kind, name);
      const changed = await updatePeerTx(ctx, row, { key, ip, routes, labels, comment, enabled }, q);
      return toRecord(changed ? await peerRowById(ctx.tx, row.id) : row);
    });
  }

  /**
   * Delete a peer and return its last record. Its address is quarantined
   * (not allocated to anyone else; the same identity may take it back
   * explicitly) for `quarantineSeconds` (default: the stored value).
   * @throws RegistryError `NOT_FOUND`, `INVALID_VALUE`, `STORE_UNAVAILABLE`
   */
  async removePeer(kind: PeerKind, name: string, opts: { quarantineSeconds?: number } = {}): Promise<PeerRecord> {
    checkKind(kind);
    checkName(name);
    const q = opts.quarantineSeconds === undefined ? undefined : checkSeconds(opts.quarantineSeconds, 'quarantine');
    return this.#write(`remove ${kind}/${name}`, async (ctx) => {
      const row = await peerRow(ctx.tx, kind, name);
      if (!row) throw notFound(kind, name);
      await removePeerTx(ctx, row, q);
      return toRecord(row);
    });
  }

  /** The peer `kind/name`, or null. */
  async getPeer(kind: PeerKind, name: string): Promise<PeerRecord | null> {
    return this.#read('read', async (ctx) => {
      const r = await peerRow(ctx.tx, kind, name);
      return r ? toRecord(r) : null;
    });
  }

  /**
   * The peers `kind/name` of `keys`, read together in one read transaction,
   * in the order of `keys`; null for one that does not exist.
   */
  async getPeers(keys: readonly { kind: PeerKind; name: string }[]): Promise<(PeerRecord | null)[]> {
    if (keys.length === 0) return [];
    const rows = await this.#read('read', (ctx) => peerRows(ctx.tx, keys));
    const found = new Map(rows.map((r) => [`${r.kind}/${r.name}`, toRecord(r)]));
    return keys.map((k) => found.get(`${k.kind}/${k.name}`) ?? null);
  }

  /** The peer with this public key (base64), or null. */
  async findByKey(publicKey: string): Promise<PeerRecord | null> {
    return this.#read('read', async (ctx) => {
      const r = await ctx.tx.get<PeerRow>('SELECT * FROM peers WHERE public_key = ?', [publicKey.trim()]);
      return r ? toRecord(r) : null;
    });
  }

  /** Every peer, ordered by kind, then name (read in pages of {@link LIST_PAGE} rows). */
  async listPeers(): Promise<PeerRecord[]> {
    // In pages, each its own read: a registry of any size is read without one statement longer than
    // the store's time bound, or one message holding every row. A peer changed meanwhile is seen as it
    // was or as it is; the change log (read its sequence first, as the hub does) orders that.
    const out: PeerRecord[] = [];
    let after: PeerRow | null = null;
    for (;;) {
      const from: PeerRow | null = after;
      const rows: PeerRow[] = await this.#read('read', (ctx): Promise<PeerRow[]> =>
        from === null
          ? ctx.tx.all<PeerRow>('SELECT * FROM peers ORDER BY kind, name LIMIT ?', [LIST_PAGE])
          : ctx.tx.all<PeerRow>('SELECT * FROM peers WHERE (kind, name) > (?, ?) ORDER BY kind, name LIMIT ?', [from.kind, from.name, LIST_PAGE]),
      );
      for (const r of rows) out.push(toRecord(r));
      if (rows.length < LIST_PAGE) return out;
      after = rows[rows.length - 1]!;
    }
  }

  /**
   * Record that the peer with `publicKey` was seen at `unixMs` (never moves
   * backwards), and at `endpoint` when given. Returns whether a peer was
   * updated. Bookkeeping, not configuration: not in the change log, and
   * committed without waiting for the disk.
   */
  async touchLastSeen(publicKey: string, unixMs: number, endpoint: string | null = null): Promise<boolean> {
    this.#checkOpen('last-seen update');
    return this.#store.write(
      'last-seen update',
      async (tx) =>
        (await tx.run('UPDATE peers SET last_seen = ?, last_endpoint = COALESCE(?, last_endpoint) WHERE public_key = ? AND (last_seen IS NULL OR last_seen < ?)', [
          unixMs,
          endpoint,
          publicKey,
          unixMs,
        ])) > 0,
      { durable: false },
    );
  }

  /**
   * Make the peers of `source` exactly `desired`, in one transaction: add
   * the missing, remove those no longer listed (their addresses are
   * quarantined for `opts.quarantineSeconds`, default the stored value),
   * update changed keys, addresses, enabled flags and comments. An omitted
   * `enabled` means true, an omitted `comment` none, an omitted `ip` keeps an
   * existing peer's address. Routes and labels of such peers are left alone.
   *
   * An entry that fails validation or conflicts with another peer is
   * reported in `errors` and skipped; an existing peer whose entry is skipped
   * keeps its old state (it is not removed). A peer with the same kind and
   * name from another source is never taken over (`NAME_CONFLICT`). Entries
   * that depend on each other (B takes the address A gives up) are applied in
   * whatever order works; only a cycle is reported as an error.
   * @throws RegistryError `STORE_UNAVAILABLE` (nothing is changed then)
   */
  async replaceSource(source: ReplaceableSource, desired: readonly DesiredPeer[], opts: { quarantineSeconds?: number } = {}): Promise<ReplaceSourceResult> {
    if (source !== 'clients-file' && source !== 'fleet-api') {
      throw new RegistryError('INVALID_VALUE', `replaceSource: source must be "clients-file" or "fleet-api", not ${JSON.stringify(source)}`);
    }
    const q = opts.quarantineSeconds === undefined ? undefined : checkSeconds(opts.quarantineSeconds, 'quarantine');
    const list = validateDesired(this.#v4, desired);
    const result = await this.#write(`update from ${source}`, (ctx) => replaceSourceTx(ctx, source, list, q));
    return { ...result, errors: [...list.errors, ...result.errors] };
  }

  /**
   * The quarantine applied when a peer is removed (or its address changes)
   * without an explicit `quarantineSeconds`: stored in the registry, so CLI
   * processes follow what `tsguard hub up --quarantine SECONDS` set. Default 0.
   */
  async quarantineSeconds(): Promise<number> {
    return this.#read('read', async (ctx) => {
      const v = await ctx.tx.get<{ value: string }>(`SELECT value FROM meta WHERE key = 'quarantine_seconds'`);
      const n = v === undefined ? 0 : Number(v.value);
      return Number.isFinite(n) && n > 0 ? n : 0;
    });
  }

  /**
   * Store the default quarantine in seconds (see {@link quarantineSeconds}).
   * @throws RegistryError `INVALID_VALUE` for a negative or non-finite value, `STORE_UNAVAILABLE`
   */
  async setQuarantineSeconds(seconds: number): Promise<void> {
    checkSeconds(seconds, 'quarantine');
    await this.#write('set quarantine', (ctx) => setMeta(ctx.tx, 'quarantine_seconds', String(seconds)));
  }

  /**
   * Create an enrollment token. The returned `token` (`ID.SECRET`) is the
   * only copy of the secret: the registry keeps its SHA-256.
   * @throws RegistryError `INVALID_VALUE` for bad options, `STORE_UNAVAILABLE`
   */
  async createToken(opts: CreateTokenOptions = {}): Promise<{ token: string; info: TokenInfo }> {
    const ttl = opts.ttlSeconds === undefined ? 86400 : opts.ttlSeconds;
    if (ttl !== null && (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0)) {
      throw new RegistryError('INVALID_VALUE', `token lifetime ${String(ttl)} is not valid: give seconds, 0 = never expires`);
    }
    const maxUses = opts.maxUses ?? null;
    if (maxUses !== null && (!Number.isInteger(maxUses) || maxUses < 1)) {
      throw new RegistryError('INVALID_VALUE', `token uses ${maxUses} is not valid: give a whole number, 1 or more (omit for unlimited)`);
    }
    const comment = cleanText(opts.comment, 'token comment');
    const t = generateToken();
    const row = await this.#write('create token', async (ctx) => {
      const expires = ttl === null || ttl === 0 ? null : ctx.now + Math.round(ttl * 1000);
      return (await ctx.tx.get<TokenRow>('INSERT INTO tokens (id, secret_hash, created_at, expires_at, max_uses, comment) VALUES (?, ?, ?, ?, ?, ?) RETURNING *', [
        t.id,
        hashSecret(t.secret),
        ctx.now,
        expires,
        maxUses,
        comment,
      ]))!;
    });
    return { token: t.token, info: tokenInfo(row, row.created_at) };
  }

  /** Every enrollment token (without secrets), oldest first. */
  async listTokens(): Promise<TokenInfo[]> {
    return this.#read('read', async (ctx) => (await ctx.tx.all<TokenRow>('SELECT * FROM tokens ORDER BY created_at, id')).map((r) => tokenInfo(r, ctx.now)));
  }

  /**
   * Revoke a token: it can no longer register anything (also not agents it
   * enrolled). Idempotent.
   * @throws RegistryError `NOT_FOUND`, `STORE_UNAVAILABLE`
   */
  async revokeToken(id: string): Promise<TokenInfo> {
    return this.#write('revoke token', async (ctx) => {
      const r = await ctx.tx.get<TokenRow>('SELECT * FROM tokens WHERE id = ?', [String(id).trim()]);
      if (!r) throw new RegistryError('NOT_FOUND', `no enrollment token with id "${id}"; "tsguard hub token list" shows them`);
      if (r.revoked_at === null) await ctx.tx.run('UPDATE tokens SET revoked_at = ? WHERE id = ?', [ctx.now, r.id]);
      return tokenInfo((await ctx.tx.get<TokenRow>('SELECT * FROM tokens WHERE id = ?', [r.id]))!, ctx.now);
    });
  }

  /**
   * Check that a token is authentic (its secret matches, compared in
   * constant time) and not revoked; read only, for rejecting a request
   * before reading its body. An expired or used-up token passes (its
   * `state` says so): it may still re-register the agents it enrolled.
   * @throws RegistryError `UNAUTHORIZED`, `STORE_UNAVAILABLE`
   */
  async checkToken(token: string): Promise<TokenInfo> {
    return this.#read('token check', async (ctx) => tokenInfo(await authenticToken(ctx, token), ctx.now));
  }

  /**
   * Register an agent with an enrollment token, in one transaction: token
   * check, address allocation, insert, credential and the token's use count
   * commit together or not at all (a refused request consumes nothing).
   *
   * - New agent: the lowest free address; consumes one use; returns a new
   *   `credential` (only its hash is stored).
   * - Returning agent (same id and key): its record, unchanged address, no
   *   use consumed. Its labels are replaced when given. A token that has
   *   expired or is used up still works for the agents it enrolled; a
   *   revoked one does not. (An agent registered before credentials existed
   *   gets one now.)
   * - Re-keyed agent (same id, new key): needs the agent's `credential` (or
   *   a prior `hub agent rekey`), else `IDENTITY_CONFLICT`; keeps the
   *   address, consumes one use of a usable token, returns a new credential.
   *
   * Everything is validated before the transaction.
   * @throws RegistryError `UNAUTHORIZED`, `INVALID_NAME`, `INVALID_KEY`, `IDENTITY_CONFLICT`, `KEY_CONFLICT`, `NAME_CONFLICT`, `SUBNET_EXHAUSTED`, `STORE_UNAVAILABLE`
   */
  async registerAgent(input: RegisterAgentInput): Promise<RegisterAgentResult> {
    const name = checkName(input.agentId, 'agent id');
    const key = validatePublicKey(input.publicKey);
    const labels = input.labels === undefined ? undefined : checkLabels(input.labels);
    if (parseToken(input.token) === null) {
      throw new RegistryError('UNAUTHORIZED', 'the enrollment token is not valid (expected ID.SECRET as printed by "tsguard hub token create")');
    }
    if (input.credential !== undefined && (typeof input.credential !== 'string' || input.credential.length > 128)) {
      throw new RegistryError('INVALID_VALUE', 'the agent credential must be the text the hub returned at the first registration');
    }
    const g: Registration = { token: input.token, name, key, labels, credential: input.credential, homeHub: input.homeHub ?? null };
    const what = `register agent/${name}`;
    this.#checkOpen(what);
    const job: ProcedureJob = { proc: 'registerAgent', args: g, now: this.#now() };
    if (this.#procedures !== null) return this.#procedures.run(what, job);
    return this.#group.run(what, (tx) => runProcedure(tx, { v4: this.#v4, v6: this.#v6 }, job));
  }

  /**
   * Allow the next registration of agent `name` to change its key without
   * its credential (`tsguard hub agent rekey NAME`: the machine lost its state).
   * The address is kept; the agent gets a new credential then.
   * @throws RegistryError `NOT_FOUND`, `STORE_UNAVAILABLE`
   */
  async allowRekey(name: string): Promise<PeerRecord> {
    checkName(name, 'agent name');
    return this.#write(`rekey agent/${name}`, async (ctx) => {
      const row = await peerRow(ctx.tx, 'agent', name);
      if (!row) throw notFound('agent', name);
      await ctx.tx.run('UPDATE peers SET rekey_allowed = 1 WHERE id = ?', [row.id]);
      markChanged(ctx, row);
      return toRecord(row);
    });
  }

  /** The current change sequence number (start a {@link changesSince} cursor from it after reading every peer). */
  async changeSeq(): Promise<number> {
    return this.#read('read', (ctx) => currentSeq(ctx.tx));
  }

  /** What changed after `cursor` (a value of {@link changeSeq} or of an earlier batch). */
  async changesSince(cursor: number): Promise<ChangeBatch> {
    return this.#read('read changes', (ctx) => changesSince(ctx.tx, cursor));
  }

  /** Announce a hub (insert or update by public key); returns its record. */
  async announceHub(h: Omit<HubRecord, 'id' | 'lastSeen'>): Promise<HubRecord> {
    return this.#store.write('announce hub', async (tx) => upsertHubTx(tx, h, this.#now()));
  }

  /** Every hub listed in the registry. */
  async listHubs(): Promise<HubRecord[]> {
    return this.#read('read', (ctx) => listHubsTx(ctx.tx));
  }

  /**
   * Make hub `hubId` the home of the peer with `publicKey` (it handshook with
   * that hub). Recorded in the change log, so every hub moves the peer's
   * addresses to that hub. Returns false when there is no such peer or its
   * home is already `hubId` (nothing is logged then).
   * @throws RegistryError `STORE_UNAVAILABLE`
   */
  async setHomeHub(publicKey: string, hubId: number): Promise<boolean> {
    return this.#write('set home hub', async (ctx) => {
      const row = await ctx.tx.get<PeerRow>('SELECT * FROM peers WHERE public_key = ?', [publicKey]);
      if (row === undefined || row.home_hub === hubId) return false;
      await ctx.tx.run('UPDATE peers SET home_hub = ? WHERE id = ?', [hubId, row.id]);
      markChanged(ctx, row);
      return true;
    });
  }

  /** Drop expired quarantine entries now (they are also dropped by every allocation). */
  async purgeQuarantine(): Promise<void> {
    await this.#write('purge quarantine', (ctx) => purgeQuarantine(ctx));
  }

  /** Call `onChange` when another connection commits a change (PostgreSQL only; see {@link RegistryStore.listen}). */
  listen(onChange: () => void): Promise<(() => Promise<void>) | null> {
    this.#checkOpen('listen');
    return this.#store.listen(onChange);
  }

  /**
   * Check that the store answers (health checks): a read succeeds and, on
   * SQLite, the database file is still the one this registry opened (a file
   * removed or replaced under a running hub would take its writes nowhere).
   * @throws RegistryError `STORE_UNAVAILABLE`
   */
  async ping(): Promise<void> {
    await this.#read('ping', (ctx) => ctx.tx.get('SELECT 1 AS one FROM meta LIMIT 1'));
    if (this.#fileId === null) return;
    let st;
    try {
      st = statSync(this.where);
    } catch (e) {
      throw new RegistryError('STORE_UNAVAILABLE', `registry ping: ${this.where} is gone (${(e as Error).message}); put it back or restart the hub`, undefined, { cause: e });
    }
    if (st.dev !== this.#fileId.dev || st.ino !== this.#fileId.ino) {
      throw new RegistryError('STORE_UNAVAILABLE', `registry ping: ${this.where} was replaced by another file while the hub runs; restart the hub`);
    }
  }

  /** IPv4 addresses a new peer could get now: the capacity minus the addresses held or in quarantine. */
  async freeAddresses(): Promise<number> {
    const n = await this.#read('count', async (ctx) =>
      (await ctx.tx.get<{ n: number }>('SELECT (SELECT COUNT(*) FROM peers) + (SELECT COUNT(*) FROM quarantine WHERE until_ms > ?) AS n', [ctx.now]))!.n,
    );
    return Math.max(0, this.capacity - Number(n));
  }

  /** Number of host addresses peers can get (subnet size minus network, broadcast and hub). */
  get capacity(): number {
    return this.#v4.broadcast - this.#v4.hub - 1;
  }

  /** Close the store. Further calls fail with `STORE_UNAVAILABLE`. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#store.close();
  }
}

function notFound(kind: string, name: string): RegistryError {
  return new RegistryError('NOT_FOUND', `no ${kind} named "${name}" in the registry; "tsguard hub show" lists the registered peers`);
}

/** Create (0700) or adopt the data directory; see {@link Registry.open}. */
function prepareDir(dataDir: string): void {
  try {
    if (!existsSync(dataDir)) {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      chmodSync(dataDir, 0o700); // the umask may have removed bits we want, never added any
      return;
    }
    const st = statSync(dataDir);
    if (!st.isDirectory()) throw new Error(`${dataDir} exists and is not a directory`);
    const mine = typeof process.geteuid !== 'function' || st.uid === process.geteuid();
    if (mine && (st.mode & 0o077) !== 0 && readdirSync(dataDir).length === 0) chmodSync(dataDir, 0o700);
  } catch (e) {
    throw storeError(e, 'prepare the data directory', dataDir);
  }
}
