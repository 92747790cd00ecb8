/**
 * The hub's peer registry: one SQLite database (`DATA_DIR/registry.sqlite`)
 * that is the single source of truth for every peer of the hub — devices,
 * clients and self-registered agents — and their addresses.
 *
 * Design:
 * - **Concurrency.** The hub process and short-lived CLI processes open the
 *   same database. WAL mode lets readers run while one writer commits;
 *   `busy_timeout` (5 s) makes a writer wait for the other's write lock
 *   instead of failing. Every write is an `IMMEDIATE` transaction, so the
 *   write lock is taken before anything is read: the address chosen by the
 *   allocator cannot be taken by another process before the insert.
 * - **Durability.** `synchronous=FULL`: an address handed to an engineer
 *   (who then configures a laptop with it) must not be forgotten by a power
 *   cut, or it would be handed out a second time. Writes are rare (admin
 *   actions, source reconciliations), so the extra fsync costs nothing
 *   noticeable. The one frequent write, {@link Registry.touchLastSeen}, runs
 *   with `synchronous=NORMAL` (losing a last-seen stamp is harmless); the next
 *   FULL commit makes it durable too.
 * - **Never renumber silently.** The subnet is stored in `meta` when the
 *   registry is created. Reopening with a different subnet fails with
 *   `SUBNET_CHANGED`, except for a pure *widening* (same network address,
 *   shorter prefix: every row and the hub address stay valid), which is
 *   allowed and recorded in `meta` (`previous_subnets`). Rows outside the
 *   stored subnet are an error at open.
 * - **Allocation.** The lowest free host address of the subnet, skipping the
 *   network and broadcast addresses, the hub address (first host), addresses
 *   held by peers and addresses in quarantine. The lowest gap is found by
 *   one SQL query over the unique index (candidates are "first host + 1" and
 *   "every used address + 1"), so the scan is bounded by the number of rows,
 *   not by the subnet size, and never wraps; no gap means
 *   `SUBNET_EXHAUSTED`.
 * - **IPv6** (optional) is derived, not allocated: a peer whose IPv4 address
 *   is host number *n* of the IPv4 subnet gets host number *n* of the IPv6
 *   prefix (the hub is host 1 in both). The IPv6 prefix must therefore have
 *   at least as many host bits as the IPv4 subnet. IPv6 may be added to an
 *   existing registry (every row then gets its derived address); changing or
 *   removing it is `SUBNET_CHANGED`.
 * - **Validation first.** Names, keys (base64, 32 bytes, not all-zero, not a
 *   low-order point), addresses and routes are checked before anything is
 *   allocated, so a bad request consumes nothing.
 * - **Refuse rather than guess.** Any failure of the store (cannot open, I/O
 *   error, locked for longer than the busy timeout, closed) is a
 *   `STORE_UNAVAILABLE` error; there is no in-memory fallback.
 * - **Enrollment tokens** (`tokens` table: id, SHA-256 of the secret, expiry,
 *   use count; `enrollments`: which token enrolled which agent) authorise
 *   {@link Registry.registerAgent}, which checks the token, allocates and
 *   counts the use in one transaction. The default quarantine of removed
 *   peers is stored in `meta` (`hub up --quarantine`).
 * @module
 */

import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { getCrypto } from '../crypto/index.js';
import { isZeroKey, KeyFormatError, keyFromBase64, keyToBase64 } from '../crypto/keys.js';
import { formatIp, formatPrefix, parseIp, parsePrefix, prefixesOverlap, type Prefix } from '../routing/ip.js';
import { createSecretFileExclusiveSync, readSecretFileSync } from '../os/fsutil.js';
import type { PeerKind } from './relay.js';
import { generateToken, hashesEqual, hashSecret, parseToken } from './tokens.js';

// ─── public types ────────────────────────────────────────────────────────────

/** Where a peer came from; sources other than `cli` are reconciled as a whole by {@link Registry.replaceSource}. */
export type PeerSource = 'cli' | 'clients-file' | 'fleet-api' | 'registration';
/** The sources that {@link Registry.replaceSource} manages. */
export type ReplaceableSource = 'clients-file' | 'fleet-api';

/** All peer kinds. */
export const PEER_KINDS: readonly PeerKind[] = ['device', 'client', 'agent'];
/** All peer sources. */
export const PEER_SOURCES: readonly PeerSource[] = ['cli', 'clients-file', 'fleet-api', 'registration'];

/** Error codes of {@link RegistryError}. */
export type RegistryErrorCode =
  | 'INVALID_NAME'
  | 'INVALID_KEY'
  | 'INVALID_IP'
  | 'ADDRESS_TAKEN'
  | 'KEY_CONFLICT'
  | 'NAME_CONFLICT'
  | 'OVERLAP'
  | 'SUBNET_EXHAUSTED'
  | 'NOT_FOUND'
  | 'SUBNET_CHANGED'
  | 'NOT_INITIALIZED'
  | 'STORE_UNAVAILABLE'
  | 'UNAUTHORIZED';

/**
 * Every failure of the registry. `code` is stable for programs; `message`
 * says what was wrong, where, and how to fix it; `owner` names the peer
 * (`kind/name`, or `hub`) that holds a conflicting address, key or route.
 */
export class RegistryError extends Error {
  override name = 'RegistryError';
  /** Machine-readable reason. */
  readonly code: RegistryErrorCode;
  /** The conflicting owner (`kind/name` or `hub`), for conflict errors. */
  readonly owner?: string;

  /** @param code reason; @param message human text; @param owner conflicting owner, if any */
  constructor(code: RegistryErrorCode, message: string, owner?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    if (owner !== undefined) this.owner = owner;
  }
}

/** One peer as stored in the registry. */
export interface PeerRecord {
  /** Row id (stable for the life of the peer). */
  id: number;
  /** Peer kind. */
  kind: PeerKind;
  /** Name, unique per kind. */
  name: string;
  /** Public key, canonical base64. */
  publicKey: string;
  /** Mesh IPv4 address (its /32 is the peer's). */
  ipv4: string;
  /** Mesh IPv6 address (its /128), when the registry has an IPv6 prefix. */
  ipv6: string | null;
  /** Extra prefixes routed to this peer (canonical CIDR text). */
  routes: string[];
  /** Free-form labels. */
  labels: Record<string, string>;
  /** Where the peer came from. */
  source: PeerSource;
  /** Disabled peers stay registered (and keep their address) but are not configured. */
  enabled: boolean;
  /** Admin comment. */
  comment: string | null;
  /** Creation time, Unix ms. */
  createdAt: number;
  /** Last modification, Unix ms. */
  updatedAt: number;
  /** Last handshake seen by the hub, Unix ms. */
  lastSeen: number | null;
  /** The UDP endpoint (`ip:port`, `[ip]:port`) of the last handshake, if any: a restarted hub starts from it. */
  lastEndpoint: string | null;
}

/** Result of {@link Registry.addPeer}. */
export interface AddPeerResult extends PeerRecord {
  /** True when a new peer was created (false: idempotent return or re-key). */
  created: boolean;
  /** True when an existing identity got a new key (its address is kept). */
  rekeyed: boolean;
  /** The key replaced by a re-key. */
  previousPublicKey?: string;
}

/** Input of {@link Registry.addPeer}. */
export interface AddPeerInput {
  /** Peer kind. */
  kind: PeerKind;
  /** Name: 1–63 characters from `[A-Za-z0-9._-]`. */
  name: string;
  /** Public key, base64. */
  publicKey: string;
  /** Admin-chosen IPv4 address inside the subnet; allocated when omitted. */
  ip?: string;
  /** Extra prefixes routed to this peer. */
  routes?: readonly string[];
  /** Labels. */
  labels?: Readonly<Record<string, string>>;
  /** Where the request comes from. */
  source: PeerSource;
  /** Comment. */
  comment?: string | null;
  /** Default true. */
  enabled?: boolean;
}

/** Changes accepted by {@link Registry.updatePeer}; omitted fields are kept. */
export interface PeerPatch {
  /** New public key (re-key; the address is kept). */
  publicKey?: string;
  /** New IPv4 address (the IPv6 address follows). */
  ip?: string;
  /** Enable or disable. */
  enabled?: boolean;
  /** Replace the routes. */
  routes?: readonly string[];
  /** Replace the comment (null clears it). */
  comment?: string | null;
  /** Replace the labels. */
  labels?: Readonly<Record<string, string>>;
}

/** One desired peer of a source, for {@link Registry.replaceSource}. */
export interface DesiredPeer {
  /** Peer kind. */
  kind: PeerKind;
  /** Name. */
  name: string;
  /** Public key, base64. */
  publicKey: string;
  /** Wanted IPv4 address; when omitted an existing peer keeps its address and a new one is allocated. */
  ip?: string;
  /** Default true. */
  enabled?: boolean;
  /** Comment (omitted = none). */
  comment?: string | null;
}

/** Outcome of {@link Registry.replaceSource}; names are `kind/name`. */
export interface ReplaceSourceResult {
  /** Peers created. */
  added: string[];
  /** Peers deleted because the source no longer lists them. */
  removed: string[];
  /** Peers whose key, address, enabled flag or comment changed. */
  updated: string[];
  /** Entries skipped (an existing peer with a skipped entry keeps its old state). */
  errors: Array<{ name: string; message: string }>;
}

/** State of an enrollment token. */
export type TokenState = 'valid' | 'expired' | 'used-up' | 'revoked';

/** An enrollment token as listed by {@link Registry.listTokens} (never its secret). */
export interface TokenInfo {
  /** Public identifier (the part before the dot). */
  id: string;
  /** Creation time, Unix ms. */
  createdAt: number;
  /** Expiry, Unix ms; null = never. */
  expiresAt: number | null;
  /** Maximum number of registrations; null = unlimited. */
  maxUses: number | null;
  /** Registrations accepted with it so far (new agents and re-keys). */
  uses: number;
  /** Revocation time, Unix ms, or null. */
  revokedAt: number | null;
  /** Admin comment. */
  comment: string | null;
  /** Whether it can enroll new agents now. */
  state: TokenState;
}

/** Options of {@link Registry.createToken}. */
export interface CreateTokenOptions {
  /** Lifetime in seconds; 0 or null = never expires. Default 86400 (24 h). */
  ttlSeconds?: number | null;
  /** Maximum registrations; null = unlimited (default). */
  maxUses?: number | null;
  /** Comment shown by `hub token list`. */
  comment?: string | null;
}

/** Input of {@link Registry.registerAgent} (what `POST /v1/register` carries). */
export interface RegisterAgentInput {
  /** The enrollment token (`ID.SECRET`). */
  token: string;
  /** Agent id: the agent's peer name (1–63 characters from `[A-Za-z0-9._-]`). */
  agentId: string;
  /** The agent's public key, base64. */
  publicKey: string;
  /** Labels; omitted = keep the stored ones. */
  labels?: Readonly<Record<string, string>>;
}

/** Result of {@link Registry.registerAgent}. */
export interface RegisterAgentResult extends AddPeerResult {
  /** Id of the token that authorised the request. */
  tokenId: string;
  /** Whether a token use was consumed (new agent or re-key). */
  consumed: boolean;
}

/** Options of {@link Registry.open}. */
export interface RegistryOpenOptions {
  /**
   * Create the data directory and registry if missing (what `tsguard hub up`
   * does). Without it a missing registry is `NOT_INITIALIZED`.
   */
  create?: {
    /** IPv4 subnet, e.g. `10.100.0.0/24` (prefix length 8–30, host bits zero). */
    subnet: string;
    /** Optional IPv6 prefix, e.g. `fd00:100::/64`. Omitted = keep what is stored. */
    ipv6?: string;
  };
  /** Clock (Unix ms); for tests. */
  now?: () => number;
}

/** File name of the database inside the data directory. */
export const REGISTRY_FILE = 'registry.sqlite';
/** File name of the hub private key inside the data directory. */
export const HUB_KEY_FILE = 'hub.key';
/** How long a writer waits for another process's write lock. */
export const BUSY_TIMEOUT_MS = 5000;

const SCHEMA_VERSION = 2; // 2: peers.last_endpoint
const NAME_RE = /^[A-Za-z0-9._-]{1,63}$/;
const MAX_TEXT = 256;

// ─── validation helpers (pure) ───────────────────────────────────────────────

/** True if `name` is a valid peer name (1–63 characters from `[A-Za-z0-9._-]`). */
export function isValidPeerName(name: unknown): name is string {
  return typeof name === 'string' && NAME_RE.test(name);
}

function checkName(name: unknown, what = 'name'): string {
  if (!isValidPeerName(name)) {
    const shown = typeof name === 'string' ? JSON.stringify(name.length > 70 ? name.slice(0, 70) + '…' : name) : String(name);
    throw new RegistryError(
      'INVALID_NAME',
      `${what} ${shown} is not valid: use 1–63 characters from A–Z, a–z, 0–9, ".", "_" and "-"`,
    );
  }
  return name;
}

function checkKind(kind: unknown): PeerKind {
  if (!PEER_KINDS.includes(kind as PeerKind)) {
    throw new RegistryError('INVALID_NAME', `peer kind ${JSON.stringify(kind)} is not valid: use one of ${PEER_KINDS.join(', ')}`);
  }
  return kind as PeerKind;
}

function checkSource(source: unknown): PeerSource {
  if (!PEER_SOURCES.includes(source as PeerSource)) {
    throw new RegistryError('INVALID_NAME', `peer source ${JSON.stringify(source)} is not valid: use one of ${PEER_SOURCES.join(', ')}`);
  }
  return source as PeerSource;
}

let probeKey: Uint8Array | null = null;

/**
 * Validate a peer public key and return its canonical base64 form. Rejects
 * anything that is not 44 base64 characters encoding 32 bytes, the all-zero
 * key and low-order points (a Diffie–Hellman with them yields zero).
 * @throws RegistryError `INVALID_KEY`
 */
export function validatePublicKey(text: unknown, what = 'public key'): string {
  if (typeof text !== 'string') throw new RegistryError('INVALID_KEY', `${what}: missing (expected a base64 key as printed by "wg pubkey")`);
  let key: Uint8Array;
  try {
    key = keyFromBase64(text, what);
  } catch (e) {
    if (e instanceof KeyFormatError) throw new RegistryError('INVALID_KEY', e.message);
    throw e;
  }
  if (isZeroKey(key)) {
    throw new RegistryError('INVALID_KEY', `${what}: the all-zero key is not a valid public key; use the output of "wg pubkey"`);
  }
  const c = getCrypto();
  probeKey ??= c.generatePrivateKey();
  if (c.dh(probeKey, key) === null) {
    throw new RegistryError('INVALID_KEY', `${what}: ${text.trim()} is a low-order point, not a usable public key; use the output of "wg pubkey"`);
  }
  return keyToBase64(key);
}

function cleanText(text: unknown, what: string): string | null {
  if (text === undefined || text === null) return null;
  if (typeof text !== 'string') throw new RegistryError('INVALID_NAME', `${what} must be text`);
  // eslint-disable-next-line no-control-regex
  const s = text.replace(/[\u0000-\u001f\u007f]/g, ' ').trim();
  if (s.length > MAX_TEXT) throw new RegistryError('INVALID_NAME', `${what} is longer than ${MAX_TEXT} characters`);
  return s === '' ? null : s;
}

function checkLabels(labels: unknown): Record<string, string> {
  if (labels === undefined || labels === null) return {};
  if (typeof labels !== 'object' || Array.isArray(labels)) throw new RegistryError('INVALID_NAME', 'labels must be an object of name → text');
  const out: Record<string, string> = {};
  for (const k of Object.keys(labels).sort()) {
    checkName(k, 'label name');
    const v = cleanText((labels as Record<string, unknown>)[k], `label ${k}`);
    out[k] = v ?? '';
  }
  return out;
}

function v4ToNum(b: Uint8Array): number {
  return b[0]! * 0x1000000 + b[1]! * 0x10000 + b[2]! * 0x100 + b[3]!;
}

function numToV4(n: number): string {
  return `${Math.floor(n / 0x1000000) & 0xff}.${Math.floor(n / 0x10000) & 0xff}.${Math.floor(n / 0x100) & 0xff}.${n & 0xff}`;
}

function bytesToBig(b: Uint8Array): bigint {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

function bigToV6(v: bigint): string {
  const out = new Uint8Array(16);
  for (let i = 15; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return formatIp(out);
}

/** A prefix as an inclusive numeric range. */
function prefixRange(p: Prefix): [bigint, bigint] {
  const width = BigInt(p.family === 4 ? 32 : 128);
  const lo = bytesToBig(p.bytes);
  return [lo, lo + (1n << (width - BigInt(p.bits))) - 1n];
}

/** Parse a CIDR and insist that its host bits are zero. */
function parseExactPrefix(text: unknown, what: string): Prefix {
  if (typeof text !== 'string') throw new RegistryError('INVALID_IP', `${what}: expected CIDR text such as 192.168.10.0/24`);
  const s = text.trim();
  let p: Prefix;
  try {
    p = parsePrefix(s);
  } catch (e) {
    throw new RegistryError('INVALID_IP', `${what}: ${(e as Error).message}`);
  }
  const slash = s.indexOf('/');
  const addr = parseIp(slash < 0 ? s : s.slice(0, slash));
  if (bytesToBig(addr.bytes) !== bytesToBig(p.bytes)) {
    throw new RegistryError('INVALID_IP', `${what}: "${text}" has host bits set; did you mean ${formatPrefix(p)}?`);
  }
  return p;
}

/** Validated, canonical routes of one peer. */
function checkRoutes(routes: unknown): Prefix[] {
  if (routes === undefined || routes === null) return [];
  if (!Array.isArray(routes)) throw new RegistryError('INVALID_IP', 'routes must be a list of CIDR prefixes');
  const out: Prefix[] = [];
  for (const r of routes) {
    const p = parseExactPrefix(r, 'route');
    for (const q of out) {
      if (prefixesOverlap(p, q)) {
        throw new RegistryError('OVERLAP', `routes ${formatPrefix(q)} and ${formatPrefix(p)} of the same peer overlap; list each block once`);
      }
    }
    out.push(p);
  }
  return out;
}

/** Subnet geometry. */
interface Net4 {
  prefix: Prefix;
  text: string;
  network: number;
  broadcast: number;
  hub: number;
  hostBits: number;
}

interface Net6 {
  prefix: Prefix;
  text: string;
  base: bigint;
}

function parseSubnet4(text: string): Net4 {
  const prefix = parseExactPrefix(text, 'subnet');
  if (prefix.family !== 4) throw new RegistryError('INVALID_IP', `subnet ${text} is not IPv4; pass an IPv4 subnet such as 10.100.0.0/24 (and the IPv6 prefix separately)`);
  if (prefix.bits < 8 || prefix.bits > 30) {
    throw new RegistryError('INVALID_IP', `subnet ${text}: the prefix length must be from /8 to /30 (the hub needs the first host address and peers need at least one more)`);
  }
  const network = v4ToNum(prefix.bytes);
  const hostBits = 32 - prefix.bits;
  return { prefix, text: formatPrefix(prefix), network, broadcast: network + 2 ** hostBits - 1, hub: network + 1, hostBits };
}

function parseSubnet6(text: string, v4: Net4): Net6 {
  const prefix = parseExactPrefix(text, 'IPv6 prefix');
  if (prefix.family !== 6) throw new RegistryError('INVALID_IP', `IPv6 prefix ${text} is not IPv6; pass a prefix such as fd00:100::/64`);
  if (128 - prefix.bits < v4.hostBits) {
    throw new RegistryError(
      'INVALID_IP',
      `IPv6 prefix ${text} is too small for subnet ${v4.text}: IPv6 addresses mirror the IPv4 host numbers, so it needs at least ${v4.hostBits} host bits (/${128 - v4.hostBits} or shorter)`,
    );
  }
  return { prefix, text: formatPrefix(prefix), base: bytesToBig(prefix.bytes) };
}

function storeError(e: unknown, what: string): RegistryError {
  const msg = e instanceof Error ? e.message : String(e);
  return new RegistryError(
    'STORE_UNAVAILABLE',
    `registry ${what}: ${msg}; nothing was changed — check that the data directory is writable and not full, and that no other process holds the database locked for long`,
    undefined,
    { cause: e },
  );
}

function isStoreFailure(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && code.startsWith('SQLITE_') && !code.startsWith('SQLITE_CONSTRAINT')) return true;
  return e instanceof TypeError && /database connection is not open/i.test(e.message);
}

// ─── rows ────────────────────────────────────────────────────────────────────

interface PeerRow {
  id: number;
  kind: PeerKind;
  name: string;
  public_key: string;
  ipv4: string;
  ipv4_int: number;
  ipv6: string | null;
  routes: string;
  labels: string;
  source: PeerSource;
  enabled: number;
  comment: string | null;
  created_at: number;
  updated_at: number;
  last_seen: number | null;
  last_endpoint: string | null;
}

function toRecord(r: PeerRow): PeerRecord {
  return {
    id: r.id,
    kind: r.kind,
    name: r.name,
    publicKey: r.public_key,
    ipv4: r.ipv4,
    ipv6: r.ipv6,
    routes: JSON.parse(r.routes) as string[],
    labels: JSON.parse(r.labels) as Record<string, string>,
    source: r.source,
    enabled: r.enabled !== 0,
    comment: r.comment,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    lastSeen: r.last_seen,
    lastEndpoint: r.last_endpoint,
  };
}

interface TokenRow {
  id: string;
  secret_hash: Buffer;
  created_at: number;
  expires_at: number | null;
  max_uses: number | null;
  uses: number;
  revoked_at: number | null;
  comment: string | null;
}

/** Compared against when a token id is unknown (constant-time path). */
const UNKNOWN_TOKEN_HASH = Buffer.alloc(32);

const ident = (r: { kind: string; name: string }) => `${r.kind}/${r.name}`;

/** The prefixes a peer owns: its /32, its /128 and its routes. */
export function peerAllowedIps(p: Pick<PeerRecord, 'ipv4' | 'ipv6' | 'routes'>): string[] {
  return [`${p.ipv4}/32`, ...(p.ipv6 ? [`${p.ipv6}/128`] : []), ...p.routes];
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS peers (
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
  last_endpoint TEXT,
  UNIQUE (kind, name)
);
CREATE INDEX IF NOT EXISTS peers_source ON peers (source);
CREATE TABLE IF NOT EXISTS quarantine (
  ipv4_int    INTEGER PRIMARY KEY,
  until_ms    INTEGER NOT NULL,
  former      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
  id          TEXT PRIMARY KEY,
  secret_hash BLOB NOT NULL,
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER,
  max_uses    INTEGER,
  uses        INTEGER NOT NULL DEFAULT 0,
  revoked_at  INTEGER,
  comment     TEXT
);
CREATE TABLE IF NOT EXISTS enrollments (
  name        TEXT PRIMARY KEY,
  token_id    TEXT NOT NULL,
  public_key  TEXT NOT NULL,
  at          INTEGER NOT NULL
);
`;

// ─── the registry ────────────────────────────────────────────────────────────

/** The peer registry of one hub data directory. See the module documentation. */
export class Registry {
  /** The IPv4 subnet (canonical CIDR). */
  readonly subnet: string;
  /** The IPv6 prefix, or null. */
  readonly ipv6Subnet: string | null;
  /** The hub's IPv4 address (first host of the subnet). */
  readonly hubAddress: string;
  /** The hub's IPv6 address (first host of the prefix), or null. */
  readonly hubAddress6: string | null;
  /** Path of the database file. */
  readonly path: string;

  readonly #db: Database.Database;
  readonly #v4: Net4;
  readonly #v6: Net6 | null;
  readonly #now: () => number;
  #localChanges = 0;
  #closed = false;
  readonly #fileId: { dev: number; ino: number } | null;
  readonly #tx: <T>(fn: () => T) => T;
  readonly #savepoint: <T>(fn: () => T) => T;

  private constructor(db: Database.Database, path: string, v4: Net4, v6: Net6 | null, now: () => number) {
    this.#db = db;
    this.path = path;
    this.#v4 = v4;
    this.#v6 = v6;
    this.#now = now;
    let fileId: { dev: number; ino: number } | null = null;
    try {
      const st = statSync(path);
      fileId = { dev: st.dev, ino: st.ino };
    } catch {
      // in-memory or already gone: ping() reports it
    }
    this.#fileId = fileId;
    this.subnet = v4.text;
    this.ipv6Subnet = v6?.text ?? null;
    this.hubAddress = numToV4(v4.hub);
    this.hubAddress6 = v6 ? bigToV6(v6.base + 1n) : null;
    const run = db.transaction((fn: () => unknown) => fn());
    this.#tx = <T>(fn: () => T) => run.immediate(fn) as T;
    this.#savepoint = <T>(fn: () => T) => run(fn) as T;
  }

  /**
   * Open the registry in `dataDir`. With `create`, a missing directory is
   * made (mode 0700) and a missing registry initialised with the subnet;
   * an existing registry must have the same subnet (or be widened, see the
   * module documentation). Without `create`, a missing registry is
   * `NOT_INITIALIZED`.
   *
   * The directory's mode is set to 0700 only when this call creates it, or
   * when it exists, is empty and belongs to this user (pre-created for us);
   * an existing non-empty directory is left as it is. The database file is
   * created with mode 0600.
   * @throws RegistryError `NOT_INITIALIZED`, `SUBNET_CHANGED`, `INVALID_IP`, `STORE_UNAVAILABLE`
   */
  static open(dataDir: string, opts: RegistryOpenOptions = {}): Registry {
    const now = opts.now ?? Date.now;
    const path = join(dataDir, REGISTRY_FILE);
    const create = opts.create;
    // Validate the requested geometry before touching the disk.
    const want4 = create ? parseSubnet4(create.subnet) : null;
    const want6 = create?.ipv6 !== undefined && want4 ? parseSubnet6(create.ipv6, want4) : null;

    if (create) {
      prepareDir(dataDir);
      try {
        const fd = openSync(path, 'wx', 0o600);
        closeSync(fd);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw storeError(e, `cannot create ${path}`);
      }
    } else if (!existsSync(path)) {
      throw new RegistryError(
        'NOT_INITIALIZED',
        `no hub registry in ${dataDir} (${REGISTRY_FILE} is missing); run "tsguard hub up <ifname> --subnet <cidr> --data-dir ${dataDir}" first`,
      );
    }

    let db: Database.Database;
    try {
      db = new Database(path, { fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
    } catch (e) {
      throw storeError(e, `cannot open ${path}`);
    }
    try {
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (String(mode).toLowerCase() !== 'wal') throw new Error(`cannot switch ${path} to WAL mode (got ${String(mode)})`);
      db.pragma('synchronous = FULL');
      const init = db.transaction(() => {
        const ver = db.pragma('user_version', { simple: true }) as number;
        if (ver > SCHEMA_VERSION) {
          throw new RegistryError(
            'STORE_UNAVAILABLE',
            `${path} was written by a newer tsguard (schema ${ver}, this one knows ${SCHEMA_VERSION}); upgrade tsguard`,
          );
        }
        db.exec(SCHEMA);
        // Version 1 → 2: the last endpoint seen, so that a restarted hub can reach its peers at once.
        const cols = db.prepare('PRAGMA table_info(peers)').all() as { name: string }[];
        if (!cols.some((c) => c.name === 'last_endpoint')) db.exec('ALTER TABLE peers ADD COLUMN last_endpoint TEXT');
        if (ver < SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
        return settleMeta(db, path, dataDir, want4, want6, now());
      });
      const { v4, v6 } = init.immediate();
      return new Registry(db, path, v4, v6, now);
    } catch (e) {
      db.close();
      if (e instanceof RegistryError) throw e;
      throw storeError(e, `cannot open ${path}`);
    }
  }

  /** Run `fn` in an IMMEDIATE transaction, translating store failures. */
  #write<T>(what: string, fn: () => T): T {
    this.#checkOpen(what);
    try {
      return this.#tx(fn);
    } catch (e) {
      if (isStoreFailure(e)) throw storeError(e, what);
      throw e;
    }
  }

  #read<T>(what: string, fn: () => T): T {
    this.#checkOpen(what);
    try {
      return fn();
    } catch (e) {
      if (isStoreFailure(e)) throw storeError(e, what);
      throw e;
    }
  }

  #checkOpen(what: string): void {
    if (this.#closed) throw new RegistryError('STORE_UNAVAILABLE', `registry ${what}: the registry is closed`);
  }

  // ── address checks ──

  /** Parse and check an admin-chosen address (pure part). */
  #checkIp(text: unknown): number {
    if (typeof text !== 'string') throw new RegistryError('INVALID_IP', 'address: expected an IPv4 address such as 10.100.0.5');
    let s = text.trim();
    if (s.endsWith('/32')) s = s.slice(0, -3);
    let addr;
    try {
      addr = parseIp(s);
    } catch (e) {
      throw new RegistryError('INVALID_IP', `address: ${(e as Error).message}`);
    }
    if (addr.family !== 4) {
      throw new RegistryError('INVALID_IP', `address ${s}: give the IPv4 address; the IPv6 address is derived from it`);
    }
    const n = v4ToNum(addr.bytes);
    const v4 = this.#v4;
    if (n < v4.network || n > v4.broadcast) {
      throw new RegistryError('INVALID_IP', `address ${s} is outside the hub subnet ${v4.text}; choose an address inside it or omit it to allocate one`);
    }
    if (n === v4.network || n === v4.broadcast) {
      throw new RegistryError('INVALID_IP', `address ${s} is the ${n === v4.network ? 'network' : 'broadcast'} address of ${v4.text}; choose a host address`);
    }
    if (n === v4.hub) {
      throw new RegistryError('ADDRESS_TAKEN', `address ${s} is the hub's own address; choose another one or omit it to allocate one`, 'hub');
    }
    return n;
  }

  /** DB part: is `n` free for the identity `who` (excluding peer `selfId`)? */
  #checkIpFree(n: number, who: string, selfId: number | null): void {
    const owner = this.#db.prepare('SELECT id, kind, name FROM peers WHERE ipv4_int = ?').get(n) as
      | { id: number; kind: string; name: string }
      | undefined;
    if (owner && owner.id !== selfId) {
      throw new RegistryError(
        'ADDRESS_TAKEN',
        `address ${numToV4(n)} is already assigned to ${ident(owner)}; choose another one or omit it to allocate one`,
        ident(owner),
      );
    }
    const q = this.#db.prepare('SELECT until_ms, former FROM quarantine WHERE ipv4_int = ? AND until_ms > ?').get(n, this.#now()) as
      | { until_ms: number; former: string }
      | undefined;
    if (q && q.former !== who) {
      throw new RegistryError(
        'ADDRESS_TAKEN',
        `address ${numToV4(n)} belonged to ${q.former} and is quarantined until ${new Date(q.until_ms).toISOString()}; choose another one or omit it to allocate one`,
        q.former,
      );
    }
  }

  /** Lowest free host address (see the module documentation). */
  #allocate(): number {
    const v4 = this.#v4;
    const now = this.#now();
    const row = this.#db
      .prepare(
        `SELECT MIN(c) AS c FROM (
           SELECT :first AS c
           UNION ALL SELECT ipv4_int + 1 FROM peers WHERE ipv4_int BETWEEN :first - 1 AND :last - 1
           UNION ALL SELECT ipv4_int + 1 FROM quarantine WHERE until_ms > :now AND ipv4_int BETWEEN :first - 1 AND :last - 1
         ) AS cand
         WHERE c BETWEEN :first AND :last
           AND NOT EXISTS (SELECT 1 FROM peers p WHERE p.ipv4_int = cand.c)
           AND NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.ipv4_int = cand.c AND q.until_ms > :now)`,
      )
      .get({ first: v4.hub + 1, last: v4.broadcast - 1, now }) as { c: number | null };
    if (row.c === null) {
      const used = (this.#db.prepare('SELECT COUNT(*) AS n FROM peers').get() as { n: number }).n;
      const q = this.#db.prepare('SELECT COUNT(*) AS n, MIN(until_ms) AS t FROM quarantine WHERE until_ms > ?').get(now) as {
        n: number;
        t: number | null;
      };
      const hosts = v4.broadcast - v4.hub - 1;
      throw new RegistryError(
        'SUBNET_EXHAUSTED',
        `subnet ${v4.text} has no free address: ${hosts} host addresses besides the hub, ${used} held by peers` +
          (q.n > 0 ? `, ${q.n} quarantined (the first is free again at ${new Date(q.t!).toISOString()})` : '') +
          `; remove unused peers, or recreate the hub with a larger subnet`,
      );
    }
    return row.c;
  }

  #ipv6For(n: number): string | null {
    return this.#v6 ? bigToV6(this.#v6.base + BigInt(n - this.#v4.network)) : null;
  }

  /** Routes must not overlap another peer's routes or addresses, nor the hub's address or subnet. */
  #checkRouteOverlaps(routes: Prefix[], selfId: number | null): void {
    if (routes.length === 0) return;
    const others = this.#db.prepare(`SELECT id, kind, name, routes FROM peers WHERE routes <> '[]'`).all() as Array<{
      id: number;
      kind: string;
      name: string;
      routes: string;
    }>;
    for (const r of routes) {
      const text = formatPrefix(r);
      for (const o of others) {
        if (o.id === selfId) continue;
        for (const t of JSON.parse(o.routes) as string[]) {
          if (prefixesOverlap(r, parsePrefix(t))) {
            throw new RegistryError(
              'OVERLAP',
              `route ${text} overlaps route ${t} of ${ident(o)}; remove it there first or choose a non-overlapping prefix`,
              ident(o),
            );
          }
        }
      }
      const mesh = r.family === 4 ? this.#v4.prefix : this.#v6?.prefix;
      if (mesh === undefined || !prefixesOverlap(r, mesh)) continue;
      // The route overlaps the mesh: find whom it hits, to name them.
      const [rlo, rhi] = prefixRange(r);
      const [mlo, mhi] = prefixRange(mesh);
      const lo = rlo > mlo ? rlo : mlo;
      const hi = rhi < mhi ? rhi : mhi;
      const base = r.family === 4 ? BigInt(this.#v4.network) : this.#v6!.base;
      const hubIdx = 1n;
      if (lo - base <= hubIdx && hubIdx <= hi - base) {
        throw new RegistryError(
          'OVERLAP',
          `route ${text} contains the hub's address ${r.family === 4 ? this.hubAddress : this.hubAddress6}; mesh addresses cannot be routed to a peer`,
          'hub',
        );
      }
      const idxLo = lo - base;
      const idxHi = hi - base;
      const maxIdx = BigInt(this.#v4.broadcast - this.#v4.network);
      if (idxLo <= maxIdx) {
        const a = this.#v4.network + Number(idxLo);
        const b = this.#v4.network + Number(idxHi < maxIdx ? idxHi : maxIdx);
        const hit = this.#db
          .prepare('SELECT id, kind, name, ipv4, ipv6 FROM peers WHERE ipv4_int BETWEEN ? AND ? AND id IS NOT ? ORDER BY ipv4_int LIMIT 1')
          .get(a, b, selfId) as { kind: string; name: string; ipv4: string; ipv6: string | null } | undefined;
        if (hit) {
          throw new RegistryError(
            'OVERLAP',
            `route ${text} contains ${r.family === 4 ? hit.ipv4 : hit.ipv6}, the address of ${ident(hit)}; mesh addresses cannot be routed to another peer`,
            ident(hit),
          );
        }
      }
      const meshText = r.family === 4 ? this.#v4.text : this.#v6!.text;
      throw new RegistryError(
        'OVERLAP',
        `route ${text} overlaps the hub subnet ${meshText}, whose addresses the registry allocates; route a prefix outside it`,
        'hub',
      );
    }
  }

  #checkKeyFree(key: string, selfId: number | null): void {
    const o = this.#db.prepare('SELECT id, kind, name FROM peers WHERE public_key = ?').get(key) as
      | { id: number; kind: string; name: string }
      | undefined;
    if (o && o.id !== selfId) {
      throw new RegistryError(
        'KEY_CONFLICT',
        `public key ${key} is already used by ${ident(o)}; every peer needs its own key pair (generate one with "wg genkey")`,
        ident(o),
      );
    }
  }

  #row(kind: string, name: string): PeerRow | undefined {
    return this.#db.prepare('SELECT * FROM peers WHERE kind = ? AND name = ?').get(kind, name) as PeerRow | undefined;
  }

  #rowById(id: number): PeerRow {
    return this.#db.prepare('SELECT * FROM peers WHERE id = ?').get(id) as PeerRow;
  }

  #purgeQuarantine(): void {
    this.#db.prepare('DELETE FROM quarantine WHERE until_ms <= ?').run(this.#now());
  }

  #quarantine(row: PeerRow, seconds: number | undefined): void {
    seconds ??= this.#storedQuarantine();
    if (seconds <= 0) return;
    if (!Number.isFinite(seconds)) throw new RegistryError('INVALID_IP', `quarantine of ${seconds} seconds is not a finite number`);
    this.#db
      .prepare('INSERT OR REPLACE INTO quarantine (ipv4_int, until_ms, former) VALUES (?, ?, ?)')
      .run(row.ipv4_int, this.#now() + Math.round(seconds * 1000), ident(row));
  }

  // ── public API ──

  /**
   * Register a peer. Everything is validated before an address is chosen;
   * the address (admin-chosen or the lowest free one) is taken in the same
   * IMMEDIATE transaction that inserts the peer.
   *
   * - Same kind and name with the same key: the existing record is returned
   *   unchanged (`created: false`; other fields of the request are ignored —
   *   use {@link updatePeer} to change them).
   * - Same kind and name with another key: re-key; the address is kept
   *   (`rekeyed: true`, `previousPublicKey`).
   * @throws RegistryError `INVALID_NAME`, `INVALID_KEY`, `INVALID_IP`, `ADDRESS_TAKEN`, `KEY_CONFLICT`, `OVERLAP`, `SUBNET_EXHAUSTED`, `STORE_UNAVAILABLE`
   */
  addPeer(input: AddPeerInput): AddPeerResult {
    const kind = checkKind(input.kind);
    const name = checkName(input.name);
    const source = checkSource(input.source);
    const key = validatePublicKey(input.publicKey);
    const ip = input.ip === undefined ? null : this.#checkIp(input.ip);
    const routes = checkRoutes(input.routes);
    const labels = checkLabels(input.labels);
    const comment = cleanText(input.comment, 'comment');
    const enabled = input.enabled ?? true;
    const result = this.#write(`add ${kind}/${name}`, () => this.#add({ kind, name, key, ip, routes, labels, comment, enabled, source }));
    if (result.created || result.rekeyed) this.#localChanges++;
    return result;
  }

  #add(p: {
    kind: PeerKind;
    name: string;
    key: string;
    ip: number | null;
    routes: Prefix[];
    labels: Record<string, string>;
    comment: string | null;
    enabled: boolean;
    source: PeerSource;
  }): AddPeerResult {
    const who = `${p.kind}/${p.name}`;
    const existing = this.#row(p.kind, p.name);
    if (existing) {
      if (existing.public_key === p.key) return { ...toRecord(existing), created: false, rekeyed: false };
      if (existing.source !== p.source) {
        throw new RegistryError(
          'NAME_CONFLICT',
          `${who} exists with another key and is managed by ${existing.source}; change its key there (or remove it first)`,
          who,
        );
      }
      this.#checkKeyFree(p.key, existing.id);
      this.#db.prepare('UPDATE peers SET public_key = ?, updated_at = ? WHERE id = ?').run(p.key, this.#now(), existing.id);
      return { ...toRecord(this.#rowById(existing.id)), created: false, rekeyed: true, previousPublicKey: existing.public_key };
    }
    this.#checkKeyFree(p.key, null);
    this.#checkRouteOverlaps(p.routes, null);
    this.#purgeQuarantine();
    let n: number;
    if (p.ip !== null) {
      this.#checkIpFree(p.ip, who, null);
      n = p.ip;
    } else {
      n = this.#allocate();
    }
    const t = this.#now();
    this.#db.prepare('DELETE FROM quarantine WHERE ipv4_int = ?').run(n);
    const info = this.#db
      .prepare(
        `INSERT INTO peers (kind, name, public_key, ipv4, ipv4_int, ipv6, routes, labels, source, enabled, comment, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        p.kind,
        p.name,
        p.key,
        numToV4(n),
        n,
        this.#ipv6For(n),
        JSON.stringify(p.routes.map(formatPrefix)),
        JSON.stringify(p.labels),
        p.source,
        p.enabled ? 1 : 0,
        p.comment,
        t,
        t,
      );
    return { ...toRecord(this.#rowById(Number(info.lastInsertRowid))), created: true, rekeyed: false };
  }

  /**
   * Change a peer. A new key keeps the address; a new address is checked
   * like an admin-chosen one (the IPv6 address follows it); the old address
   * is quarantined for `opts.quarantineSeconds` (default 0).
   * @throws RegistryError `NOT_FOUND` and the validation/conflict codes of {@link addPeer}
   */
  updatePeer(kind: PeerKind, name: string, patch: PeerPatch, opts: { quarantineSeconds?: number } = {}): PeerRecord {
    checkKind(kind);
    checkName(name);
    const key = patch.publicKey === undefined ? undefined : validatePublicKey(patch.publicKey);
    const ip = patch.ip === undefined ? undefined : this.#checkIp(patch.ip);
    const routes = patch.routes === undefined ? undefined : checkRoutes(patch.routes);
    const labels = patch.labels === undefined ? undefined : checkLabels(patch.labels);
    const comment = patch.comment === undefined ? undefined : cleanText(patch.comment, 'comment');
    if (patch.enabled !== undefined && typeof patch.enabled !== 'boolean') throw new RegistryError('INVALID_NAME', 'enabled must be true or false');
    const r = this.#write(`update ${kind}/${name}`, () => {
      const row = this.#row(kind, name);
      if (!row) throw notFound(kind, name);
      const changed = this.#update(row, { key, ip, routes, labels, comment, enabled: patch.enabled }, opts.quarantineSeconds);
      return { rec: toRecord(changed ? this.#rowById(row.id) : row), changed };
    });
    if (r.changed) this.#localChanges++;
    return r.rec;
  }

  /** Apply validated changes to `row`; true if anything changed. */
  #update(
    row: PeerRow,
    c: {
      key?: string;
      ip?: number;
      routes?: Prefix[];
      labels?: Record<string, string>;
      comment?: string | null;
      enabled?: boolean;
    },
    quarantineSeconds?: number,
  ): boolean {
    const sets: string[] = [];
    const vals: unknown[] = [];
    if (c.key !== undefined && c.key !== row.public_key) {
      this.#checkKeyFree(c.key, row.id);
      sets.push('public_key = ?');
      vals.push(c.key);
    }
    if (c.routes !== undefined) {
      const text = JSON.stringify(c.routes.map(formatPrefix));
      if (text !== row.routes) {
        this.#checkRouteOverlaps(c.routes, row.id);
        sets.push('routes = ?');
        vals.push(text);
      }
    }
    if (c.ip !== undefined && c.ip !== row.ipv4_int) {
      this.#purgeQuarantine();
      this.#checkIpFree(c.ip, ident(row), row.id);
      this.#db.prepare('DELETE FROM quarantine WHERE ipv4_int = ?').run(c.ip);
      this.#quarantine(row, quarantineSeconds);
      sets.push('ipv4 = ?', 'ipv4_int = ?', 'ipv6 = ?');
      vals.push(numToV4(c.ip), c.ip, this.#ipv6For(c.ip));
    }
    if (c.labels !== undefined && JSON.stringify(c.labels) !== row.labels) {
      sets.push('labels = ?');
      vals.push(JSON.stringify(c.labels));
    }
    if (c.comment !== undefined && c.comment !== row.comment) {
      sets.push('comment = ?');
      vals.push(c.comment);
    }
    if (c.enabled !== undefined && (c.enabled ? 1 : 0) !== row.enabled) {
      sets.push('enabled = ?');
      vals.push(c.enabled ? 1 : 0);
    }
    if (sets.length === 0) return false;
    sets.push('updated_at = ?');
    vals.push(this.#now(), row.id);
    this.#db.prepare(`UPDATE peers SET ${sets.join(', ')} WHERE id = ?`).run(...vals);
    return true;
  }

  /**
   * Delete a peer and return its last record. Its address is quarantined
   * (not allocated to anyone else; the same identity may take it back
   * explicitly) for `quarantineSeconds` (default 0: free at once).
   * @throws RegistryError `NOT_FOUND`, `STORE_UNAVAILABLE`
   */
  removePeer(kind: PeerKind, name: string, opts: { quarantineSeconds?: number } = {}): PeerRecord {
    checkKind(kind);
    checkName(name);
    const rec = this.#write(`remove ${kind}/${name}`, () => {
      const row = this.#row(kind, name);
      if (!row) throw notFound(kind, name);
      this.#db.prepare('DELETE FROM peers WHERE id = ?').run(row.id);
      this.#quarantine(row, opts.quarantineSeconds);
      return toRecord(row);
    });
    this.#localChanges++;
    return rec;
  }

  /** The peer `kind/name`, or null. */
  getPeer(kind: PeerKind, name: string): PeerRecord | null {
    return this.#read('read', () => {
      const r = this.#row(kind, name);
      return r ? toRecord(r) : null;
    });
  }

  /** The peer with this public key (base64), or null. */
  findByKey(publicKey: string): PeerRecord | null {
    return this.#read('read', () => {
      const r = this.#db.prepare('SELECT * FROM peers WHERE public_key = ?').get(publicKey.trim()) as PeerRow | undefined;
      return r ? toRecord(r) : null;
    });
  }

  /** Every peer, ordered by kind, then name. */
  listPeers(): PeerRecord[] {
    return this.#read('read', () => (this.#db.prepare('SELECT * FROM peers ORDER BY kind, name').all() as PeerRow[]).map(toRecord));
  }

  /**
   * Record that the peer with `publicKey` was seen at `unixMs` (never moves
   * backwards), and at `endpoint` when given. Returns whether a peer was updated. This is bookkeeping, not
   * configuration: it does not advance this connection's {@link dataVersion}
   * and is committed without an fsync of its own (see the module documentation).
   */
  touchLastSeen(publicKey: string, unixMs: number, endpoint: string | null = null): boolean {
    this.#checkOpen('last-seen update');
    try {
      this.#db.pragma('synchronous = NORMAL');
      try {
        return (
          this.#db
            .prepare(
              'UPDATE peers SET last_seen = ?, last_endpoint = COALESCE(?, last_endpoint) WHERE public_key = ? AND (last_seen IS NULL OR last_seen < ?)',
            )
            .run(unixMs, endpoint, publicKey, unixMs).changes > 0
        );
      } finally {
        this.#db.pragma('synchronous = FULL');
      }
    } catch (e) {
      if (isStoreFailure(e)) throw storeError(e, 'last-seen update');
      throw e;
    }
  }

  /**
   * Make the peers of `source` exactly `desired`, in one transaction: add
   * the missing, remove those no longer listed (their addresses are
   * quarantined for `opts.quarantineSeconds`, default 0), update changed keys,
   * addresses, enabled flags and comments. An omitted `enabled` means true, an
   * omitted `comment` means none, an omitted `ip` keeps an existing peer's
   * address. Routes and labels of such peers are left alone.
   *
   * An entry that fails validation or conflicts with another peer is
   * reported in `errors` and skipped; an existing peer whose entry is
   * skipped keeps its old state (it is not removed). A peer with the same
   * kind and name from another source is never taken over (`NAME_CONFLICT`).
   * Entries that depend on each other (B takes the address A gives up) are
   * applied in whatever order works; only a cycle (two peers swapping
   * addresses or keys in one step) is reported as an error.
   * @throws RegistryError `STORE_UNAVAILABLE` (nothing is changed then)
   */
  replaceSource(source: ReplaceableSource, desired: readonly DesiredPeer[], opts: { quarantineSeconds?: number } = {}): ReplaceSourceResult {
    if (source !== 'clients-file' && source !== 'fleet-api') {
      throw new RegistryError('INVALID_NAME', `replaceSource: source must be "clients-file" or "fleet-api", not ${JSON.stringify(source)}`);
    }
    const errors: ReplaceSourceResult['errors'] = [];
    type Valid = { id: string; kind: PeerKind; name: string; key: string; ip?: number; enabled: boolean; comment: string | null };
    const valid: Valid[] = [];
    const present = new Set<string>();
    const seenKeys = new Map<string, string>();
    const seenIps = new Map<number, string>();
    for (const d of desired) {
      const label = typeof d?.name === 'string' ? d.name : String(d?.name);
      try {
        const kind = checkKind(d.kind);
        const name = checkName(d.name);
        const id = `${kind}/${name}`;
        if (present.has(id)) throw new RegistryError('NAME_CONFLICT', `${id} is listed more than once; keep one entry`);
        present.add(id);
        const key = validatePublicKey(d.publicKey, `public key of ${id}`);
        const ip = d.ip === undefined || d.ip === null ? undefined : this.#checkIp(d.ip);
        if (d.enabled !== undefined && typeof d.enabled !== 'boolean') throw new RegistryError('INVALID_NAME', `enabled of ${id} must be true or false`);
        const comment = cleanText(d.comment, `comment of ${id}`);
        const k = seenKeys.get(key);
        if (k !== undefined) throw new RegistryError('KEY_CONFLICT', `public key ${key} is listed for both ${k} and ${id}; every peer needs its own key`, k);
        seenKeys.set(key, id);
        if (ip !== undefined) {
          const o = seenIps.get(ip);
          if (o !== undefined) throw new RegistryError('ADDRESS_TAKEN', `address ${numToV4(ip)} is listed for both ${o} and ${id}`, o);
          seenIps.set(ip, id);
        }
        valid.push({ id, kind, name, key, ...(ip !== undefined ? { ip } : {}), enabled: d.enabled ?? true, comment });
      } catch (e) {
        if (!(e instanceof RegistryError)) throw e;
        errors.push({ name: label, message: e.message });
      }
    }

    const result = this.#write(`update from ${source}`, () => {
      const added: string[] = [];
      const updated: string[] = [];
      const removed: string[] = [];
      const existing = this.#db.prepare('SELECT * FROM peers WHERE source = ?').all(source) as PeerRow[];
      for (const row of existing) {
        if (present.has(ident(row))) continue;
        this.#db.prepare('DELETE FROM peers WHERE id = ?').run(row.id);
        this.#quarantine(row, opts.quarantineSeconds);
        removed.push(ident(row));
      }
      // Apply entries until no more progress: an entry may need an address or key another entry gives up.
      let pending = valid;
      const lastError = new Map<string, string>();
      while (pending.length > 0) {
        const next: Valid[] = [];
        for (const v of pending) {
          try {
            this.#savepoint(() => {
              const row = this.#row(v.kind, v.name);
              if (row && row.source !== source) {
                throw new RegistryError(
                  'NAME_CONFLICT',
                  `${v.id} already exists (added by ${row.source}); remove it there or rename the entry`,
                  v.id,
                );
              }
              if (!row) {
                this.#add({ kind: v.kind, name: v.name, key: v.key, ip: v.ip ?? null, routes: [], labels: {}, comment: v.comment, enabled: v.enabled, source });
                added.push(v.id);
              } else if (this.#update(row, { key: v.key, ip: v.ip, comment: v.comment, enabled: v.enabled }, opts.quarantineSeconds)) {
                updated.push(v.id);
              }
            });
          } catch (e) {
            if (!(e instanceof RegistryError)) throw e;
            lastError.set(v.id, e.message);
            next.push(v);
          }
        }
        if (next.length === pending.length) break;
        pending = next;
      }
      for (const v of pending) errors.push({ name: v.name, message: lastError.get(v.id) ?? 'not applied' });
      return { added, removed, updated };
    });
    if (result.added.length + result.removed.length + result.updated.length > 0) this.#localChanges++;
    return { ...result, errors };
  }

  // ── quarantine default ──

  #storedQuarantine(): number {
    const v = this.#db.prepare(`SELECT value FROM meta WHERE key = 'quarantine_seconds'`).get() as { value: string } | undefined;
    const n = v === undefined ? 0 : Number(v.value);
    return Number.isFinite(n) && n > 0 ? n : 0;
  }

  /**
   * The quarantine applied when a peer is removed (or its address changes)
   * without an explicit `quarantineSeconds`: stored in the registry, so CLI
   * processes follow what `tsguard hub up --quarantine SECONDS` set. Default 0.
   */
  get quarantineSeconds(): number {
    return this.#read('read', () => this.#storedQuarantine());
  }

  /**
   * Store the default quarantine in seconds (see {@link quarantineSeconds}).
   * @throws RegistryError `INVALID_IP` for a negative or non-finite value, `STORE_UNAVAILABLE`
   */
  setQuarantineSeconds(seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) {
      throw new RegistryError('INVALID_IP', `quarantine of ${seconds} seconds is not valid: give a number of seconds, 0 or more`);
    }
    this.#write('set quarantine', () => {
      this.#db.prepare(`INSERT OR REPLACE INTO meta (key, value) VALUES ('quarantine_seconds', ?)`).run(String(seconds));
    });
  }

  // ── enrollment tokens ──

  #tokenInfo(r: TokenRow, now = this.#now()): TokenInfo {
    const state: TokenState =
      r.revoked_at !== null ? 'revoked' : r.expires_at !== null && r.expires_at <= now ? 'expired' : r.max_uses !== null && r.uses >= r.max_uses ? 'used-up' : 'valid';
    return {
      id: r.id,
      createdAt: r.created_at,
      expiresAt: r.expires_at,
      maxUses: r.max_uses,
      uses: r.uses,
      revokedAt: r.revoked_at,
      comment: r.comment,
      state,
    };
  }

  /**
   * Create an enrollment token. The returned `token` (`ID.SECRET`) is the
   * only copy of the secret: the registry keeps its SHA-256.
   * @throws RegistryError `INVALID_NAME` for bad options, `STORE_UNAVAILABLE`
   */
  createToken(opts: CreateTokenOptions = {}): { token: string; info: TokenInfo } {
    const ttl = opts.ttlSeconds === undefined ? 86400 : opts.ttlSeconds;
    if (ttl !== null && (!Number.isFinite(ttl) || ttl < 0)) throw new RegistryError('INVALID_NAME', `token lifetime ${ttl} is not valid: give seconds, 0 = never expires`);
    const maxUses = opts.maxUses ?? null;
    if (maxUses !== null && (!Number.isInteger(maxUses) || maxUses < 1)) {
      throw new RegistryError('INVALID_NAME', `token uses ${maxUses} is not valid: give a whole number, 1 or more (omit for unlimited)`);
    }
    const comment = cleanText(opts.comment, 'token comment');
    const t = generateToken();
    const now = this.#now();
    const row = this.#write('create token', () => {
      this.#db
        .prepare('INSERT INTO tokens (id, secret_hash, created_at, expires_at, max_uses, comment) VALUES (?, ?, ?, ?, ?, ?)')
        .run(t.id, hashSecret(t.secret), now, ttl === null || ttl === 0 ? null : now + Math.round(ttl * 1000), maxUses, comment);
      return this.#db.prepare('SELECT * FROM tokens WHERE id = ?').get(t.id) as TokenRow;
    });
    return { token: t.token, info: this.#tokenInfo(row, now) };
  }

  /** Every enrollment token (without secrets), oldest first. */
  listTokens(): TokenInfo[] {
    return this.#read('read', () => {
      const now = this.#now();
      return (this.#db.prepare('SELECT * FROM tokens ORDER BY created_at, id').all() as TokenRow[]).map((r) => this.#tokenInfo(r, now));
    });
  }

  /**
   * Revoke a token: it can no longer register anything (also not agents it
   * enrolled). Idempotent.
   * @throws RegistryError `NOT_FOUND`, `STORE_UNAVAILABLE`
   */
  revokeToken(id: string): TokenInfo {
    const row = this.#write('revoke token', () => {
      const r = this.#db.prepare('SELECT * FROM tokens WHERE id = ?').get(String(id).trim()) as TokenRow | undefined;
      if (!r) throw new RegistryError('NOT_FOUND', `no enrollment token with id "${id}"; "tsguard hub token list" shows them`);
      if (r.revoked_at === null) this.#db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ?').run(this.#now(), r.id);
      return this.#db.prepare('SELECT * FROM tokens WHERE id = ?').get(r.id) as TokenRow;
    });
    this.#localChanges++;
    return this.#tokenInfo(row);
  }

  /** Find the token and check its secret in constant time; throws UNAUTHORIZED. Does not check usability. */
  #authenticToken(token: unknown): TokenRow {
    const parsed = parseToken(token);
    const given = hashSecret(parsed?.secret ?? '');
    const r = parsed ? (this.#db.prepare('SELECT * FROM tokens WHERE id = ?').get(parsed.id) as TokenRow | undefined) : undefined;
    // Compare even when the id is unknown, so both cases take the same time.
    const ok = hashesEqual(given, r ? r.secret_hash : UNKNOWN_TOKEN_HASH) && r !== undefined && parsed !== null;
    if (!ok || !r) throw new RegistryError('UNAUTHORIZED', 'the enrollment token is not valid (unknown or mistyped); create one with "tsguard hub token create"');
    if (r.revoked_at !== null) throw new RegistryError('UNAUTHORIZED', `enrollment token ${r.id} was revoked; create a new one with "tsguard hub token create"`);
    return r;
  }

  #unusable(r: TokenRow): RegistryError | null {
    const info = this.#tokenInfo(r);
    if (info.state === 'expired') return new RegistryError('UNAUTHORIZED', `enrollment token ${r.id} expired at ${new Date(r.expires_at!).toISOString()}; create a new one with "tsguard hub token create"`);
    if (info.state === 'used-up') return new RegistryError('UNAUTHORIZED', `enrollment token ${r.id} has been used ${r.uses} of ${r.max_uses} times; create a new one with "tsguard hub token create"`);
    return null;
  }

  /**
   * Check that a token is authentic (its secret matches, compared in
   * constant time) and not revoked; read only, for rejecting a request
   * before reading its body. An expired or used-up token passes (its
   * `state` says so): it may still re-register the agents it enrolled.
   * @throws RegistryError `UNAUTHORIZED`, `STORE_UNAVAILABLE`
   */
  checkToken(token: string): TokenInfo {
    return this.#read('token check', () => this.#tokenInfo(this.#authenticToken(token)));
  }

  /**
   * Register an agent with an enrollment token, in one IMMEDIATE
   * transaction: token check, address allocation, insert and the token's use
   * count commit together or not at all (a refused request consumes nothing).
   *
   * - New agent: the lowest free address; consumes one use.
   * - Returning agent (same id and key): its record, unchanged address, no
   *   use consumed. Its labels are replaced when given. A token that has
   *   expired or is used up still works for the agents it enrolled (an agent
   *   restarting with its single-use token keeps working); a revoked one
   *   does not.
   * - Re-keyed agent (same id, new key): same address, the old key is gone;
   *   consumes one use of a usable token.
   *
   * Everything is validated before the transaction.
   * @throws RegistryError `UNAUTHORIZED`, `INVALID_NAME`, `INVALID_KEY`, `KEY_CONFLICT`, `NAME_CONFLICT`, `SUBNET_EXHAUSTED`, `STORE_UNAVAILABLE`
   */
  registerAgent(input: RegisterAgentInput): RegisterAgentResult {
    const name = checkName(input.agentId, 'agent id');
    const key = validatePublicKey(input.publicKey);
    const labels = input.labels === undefined ? undefined : checkLabels(input.labels);
    if (parseToken(input.token) === null) {
      throw new RegistryError('UNAUTHORIZED', 'the enrollment token is not valid (expected ID.SECRET as printed by "tsguard hub token create")');
    }
    const result = this.#write(`register agent/${name}`, () => {
      const tok = this.#authenticToken(input.token);
      const existing = this.#row('agent', name);
      const returning = existing !== undefined && existing.public_key === key;
      const bad = this.#unusable(tok);
      if (bad) {
        const enrolled = this.#db.prepare('SELECT token_id, public_key FROM enrollments WHERE name = ?').get(name) as
          | { token_id: string; public_key: string }
          | undefined;
        if (!(returning && enrolled?.token_id === tok.id && enrolled.public_key === key)) throw bad;
      }
      let r = this.#add({ kind: 'agent', name, key, ip: null, routes: [], labels: labels ?? {}, comment: null, enabled: true, source: 'registration' });
      if (!r.created && labels !== undefined) {
        const row = this.#row('agent', name)!;
        if (this.#update(row, { labels })) r = { ...toRecord(this.#rowById(row.id)), created: false, rekeyed: r.rekeyed, ...(r.previousPublicKey ? { previousPublicKey: r.previousPublicKey } : {}) };
      }
      const consumed = r.created || r.rekeyed;
      if (consumed) {
        this.#db.prepare('UPDATE tokens SET uses = uses + 1 WHERE id = ?').run(tok.id);
        this.#db.prepare('INSERT OR REPLACE INTO enrollments (name, token_id, public_key, at) VALUES (?, ?, ?, ?)').run(name, tok.id, key, this.#now());
      }
      return { ...r, tokenId: tok.id, consumed };
    });
    this.#localChanges++;
    return result;
  }

  /**
   * A number that changes whenever the registry's contents may have changed:
   * SQLite's `data_version` (which moves when another connection — another
   * process — commits) plus this connection's own change count (which
   * `data_version` does not see). Cheap enough to poll every 250 ms.
   */
  dataVersion(): number {
    return this.#read('poll', () => (this.#db.pragma('data_version', { simple: true }) as number) + this.#localChanges);
  }

  /** Number of host addresses peers can get (subnet size minus network, broadcast and hub). */
  get capacity(): number {
    return this.#v4.broadcast - this.#v4.hub - 1;
  }

  /**
   * Check that the store answers (health checks): a read succeeds and the
   * database file is still the one this registry opened (a file removed or
   * replaced under a running hub would take its writes nowhere).
   * @throws RegistryError `STORE_UNAVAILABLE`
   */
  ping(): void {
    this.#read('ping', () => this.#db.prepare('SELECT 1 FROM meta LIMIT 1').get());
    let st;
    try {
      st = statSync(this.path);
    } catch (e) {
      throw new RegistryError('STORE_UNAVAILABLE', `registry ping: ${this.path} is gone (${(e as Error).message}); put it back or restart the hub`, undefined, { cause: e });
    }
    if (this.#fileId !== null && (st.dev !== this.#fileId.dev || st.ino !== this.#fileId.ino)) {
      throw new RegistryError('STORE_UNAVAILABLE', `registry ping: ${this.path} was replaced by another file while the hub runs; restart the hub`);
    }
  }

  /** IPv4 addresses a new peer could get now: the capacity minus the addresses held or in quarantine. */
  freeAddresses(): number {
    return this.#read('count', () => {
      const q = this.#db
        .prepare('SELECT (SELECT COUNT(*) FROM peers) + (SELECT COUNT(*) FROM quarantine WHERE until_ms > ?) AS n')
        .get(this.#now()) as { n: number };
      return Math.max(0, this.capacity - q.n);
    });
  }

  /** Close the database. Further calls fail with `STORE_UNAVAILABLE`. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
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
    throw storeError(e, `cannot prepare the data directory ${dataDir}`);
  }
}

/** Read or initialise `meta`, check the rows against the subnet. Runs inside the open transaction. */
function settleMeta(
  db: Database.Database,
  path: string,
  dataDir: string,
  want4: Net4 | null,
  want6: Net6 | null,
  now: number,
): { v4: Net4; v6: Net6 | null } {
  const get = (k: string) => (db.prepare('SELECT value FROM meta WHERE key = ?').get(k) as { value: string } | undefined)?.value;
  const set = (k: string, v: string) => db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run(k, v);
  const stored = get('subnet');
  if (stored === undefined) {
    if (!want4) {
      throw new RegistryError(
        'NOT_INITIALIZED',
        `the hub registry ${path} has no subnet yet; run "tsguard hub up <ifname> --subnet <cidr> --data-dir ${dataDir}" first`,
      );
    }
    set('schema_version', String(SCHEMA_VERSION));
    set('created_at', String(now));
    set('subnet', want4.text);
    set('hub_ipv4', numToV4(want4.hub));
    if (want6) {
      set('ipv6_subnet', want6.text);
      set('hub_ipv6', bigToV6(want6.base + 1n));
    }
    return { v4: want4, v6: want6 };
  }

  let v4 = parseSubnet4(stored);
  const stored6 = get('ipv6_subnet');
  let v6 = stored6 === undefined ? null : parseSubnet6(stored6, v4);

  if (want4 && want4.text !== v4.text) {
    const widening = want4.network === v4.network && want4.prefix.bits < v4.prefix.bits;
    if (!widening) {
      throw new RegistryError(
        'SUBNET_CHANGED',
        `the hub registry in ${dataDir} uses subnet ${v4.text}, not ${want4.text}; peers are never renumbered silently. ` +
          `Pass --subnet ${v4.text}, or widen it keeping the network address (e.g. ${numToV4(v4.network)}/${v4.prefix.bits - 1}), ` +
          `or start over with a new data directory`,
      );
    }
    if (v6 && 128 - v6.prefix.bits < want4.hostBits) {
      throw new RegistryError(
        'SUBNET_CHANGED',
        `cannot widen ${v4.text} to ${want4.text}: the IPv6 prefix ${v6.text} has too few host bits to mirror it`,
      );
    }
    const prev = JSON.parse(get('previous_subnets') ?? '[]') as Array<{ subnet: string; until: number }>;
    prev.push({ subnet: v4.text, until: now });
    set('previous_subnets', JSON.stringify(prev));
    set('subnet', want4.text);
    v4 = want4;
  }

  if (want6 && (v6 === null || want6.text !== v6.text)) {
    if (v6 !== null) {
      throw new RegistryError(
        'SUBNET_CHANGED',
        `the hub registry in ${dataDir} uses IPv6 prefix ${v6.text}, not ${want6.text}; peers are never renumbered silently. ` +
          `Pass --ipv6 ${v6.text}, or start over with a new data directory`,
      );
    }
    const chk = parseSubnet6(want6.text, v4);
    set('ipv6_subnet', chk.text);
    set('hub_ipv6', bigToV6(chk.base + 1n));
    v6 = chk;
    const rows = db.prepare('SELECT id, ipv4_int FROM peers').all() as Array<{ id: number; ipv4_int: number }>;
    const upd = db.prepare('UPDATE peers SET ipv6 = ? WHERE id = ?');
    for (const r of rows) upd.run(bigToV6(chk.base + BigInt(r.ipv4_int - v4.network)), r.id);
  }

  const bad = db
    .prepare('SELECT kind, name, ipv4 FROM peers WHERE ipv4_int <= ? OR ipv4_int >= ? ORDER BY ipv4_int LIMIT 5')
    .all(v4.hub, v4.broadcast) as Array<{ kind: string; name: string; ipv4: string }>;
  if (bad.length > 0) {
    throw new RegistryError(
      'SUBNET_CHANGED',
      `the hub registry ${path} holds peers outside subnet ${v4.text} or on a reserved address: ` +
        bad.map((b) => `${ident(b)} ${b.ipv4}`).join(', ') +
        `; the registry was modified outside tsguard — fix or remove these rows (nothing is renumbered automatically)`,
    );
  }
  return { v4, v6 };
}

/**
 * Read the hub's private key from `DATA_DIR/hub.key` (base64), creating it
 * on first use: a new key is written to a temporary file (mode 0600,
 * fsynced) and hard-linked into place, so a concurrent creator never
 * overwrites a key the other already returned, and a reader never sees a
 * partial file. A key file readable by others is tightened to 0600. (This is
 * synchronous; `writeFileAtomic0600` is asynchronous and would replace an
 * existing key.)
 * @throws RegistryError `NOT_INITIALIZED` when the data directory is missing,
 *   `INVALID_KEY` when the file is corrupt, `STORE_UNAVAILABLE` on I/O errors.
 */
export function loadOrCreateHubKey(dataDir: string): Uint8Array {
  const path = join(dataDir, HUB_KEY_FILE);
  if (!existsSync(dataDir)) {
    throw new RegistryError(
      'NOT_INITIALIZED',
      `data directory ${dataDir} does not exist; run "tsguard hub up <ifname> --subnet <cidr> --data-dir ${dataDir}" first`,
    );
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    let text: string | null;
    try {
      text = readSecretFileSync(path);
    } catch (e) {
      throw storeError(e, `cannot read ${path}`);
    }
    if (text !== null) {
      let key: Uint8Array;
      try {
        key = keyFromBase64(text, `hub private key in ${path}`);
      } catch (e) {
        throw new RegistryError(
          'INVALID_KEY',
          `${(e as Error).message}; restore ${HUB_KEY_FILE} from a backup (every peer is configured with the hub's public key) or delete it to generate a new one`,
        );
      }
      if (isZeroKey(key)) throw new RegistryError('INVALID_KEY', `${path} holds the all-zero key; restore it from a backup or delete it`);
      return key;
    }
    const key = getCrypto().generatePrivateKey();
    try {
      if (createSecretFileExclusiveSync(path, keyToBase64(key) + '\n')) return key;
    } catch (e) {
      key.fill(0);
      throw storeError(e, `cannot create ${path}`);
    }
    key.fill(0); // another process created it first: use theirs
  }
  throw new RegistryError('STORE_UNAVAILABLE', `cannot read or create ${path}`);
}
