/**
 * Public types of the hub registry (see `./index.ts`).
 * @module
 */

import type { PeerKind } from '../relay.js';

export type { PeerKind };
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
  | 'INVALID_VALUE'
  | 'INVALID_KEY'
  | 'INVALID_IP'
  | 'ADDRESS_TAKEN'
  | 'KEY_CONFLICT'
  | 'NAME_CONFLICT'
  | 'IDENTITY_CONFLICT'
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
  /** Id (in {@link HubRecord}) of the hub this peer is attached to, or null (not known / single hub). */
  homeHub: number | null;
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
  /** The agent credential returned by its first registration; required to change the key of an existing agent. */
  credential?: string;
  /** Id of the hub that answers (becomes the agent's home hub). */
  homeHub?: number;
}

/** Result of {@link Registry.registerAgent}. */
export interface RegisterAgentResult extends AddPeerResult {
  /** Id of the token that authorised the request. */
  tokenId: string;
  /** Whether a token use was consumed (new agent or re-key). */
  consumed: boolean;
  /**
   * A new agent credential (only its hash is stored): returned when the agent
   * is created, re-keyed, or had none yet. The agent must keep it and present
   * it to change its key later.
   */
  credential?: string;
}

/** A hub listed in the registry (every hub of a fleet sharing one registry). */
export interface HubRecord {
  /** Row id. */
  id: number;
  /** The hub's WireGuard public key, base64. */
  publicKey: string;
  /** Its public WireGuard endpoint `host:port`, if known. */
  endpoint: string | null;
  /** Base URL of its registration API, if served. */
  apiUrl: string | null;
  /** Pin of its API certificate (`sha256:HEX`), if served over HTTPS. */
  certPin: string | null;
  /** Last time the hub announced itself, Unix ms. */
  lastSeen: number;
}

/** What changed since a cursor of {@link Registry.changesSince}. */
export interface ChangeBatch {
  /** The new cursor (the highest change sequence number read). */
  seq: number;
  /**
   * True when the cursor is older than the retained change log (or the log
   * was reset): the caller must re-read every peer; `peers` is then empty.
   */
  reset: boolean;
  /** Peers (`kind`, `name`) created, changed or removed, each once, in order of their last change. */
  peers: Array<{ kind: PeerKind; name: string }>;
}

/** Options of {@link Registry.open}. */
export interface RegistryOpenOptions {
  /**
   * Where the registry lives: a `postgresql://` (or `postgres://`) URL, or
   * omitted for the SQLite file in the data directory. A password never goes
   * into the URL: see `passwordFile`.
   */
  url?: string;
  /** File holding the PostgreSQL password (else `PGPASSFILE` / `~/.pgpass`, as libpq does). */
  passwordFile?: string;
  /**
   * How long a statement may wait for the store (a lock held by another
   * process, a slow server) before the call fails with `STORE_UNAVAILABLE`, ms.
   * Default {@link STORE_TIMEOUT_MS}.
   */
  timeoutMs?: number;
  /**
   * Run the SQLite store on this thread instead of a worker thread: for
   * short-lived CLI processes, which carry no packets (saves the worker's
   * start-up). Never for a process that runs an engine.
   */
  sqliteOnThisThread?: boolean;
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


/** File name of the SQLite database inside the data directory. */
export const REGISTRY_FILE = 'registry.sqlite';
/** File name of the hub private key inside the data directory. */
export const HUB_KEY_FILE = 'hub.key';
/** Default bound on one store call (lock waits included) before `STORE_UNAVAILABLE`, ms. */
export const STORE_TIMEOUT_MS = 2000;

/** `kind/name` of a peer (how conflicts name their owner). */
export const ident = (r: { kind: string; name: string }): string => `${r.kind}/${r.name}`;

/** The prefixes a peer owns: its /32, its /128 and its routes. */
export function peerAllowedIps(p: Pick<PeerRecord, 'ipv4' | 'ipv6' | 'routes'>): string[] {
  return [`${p.ipv4}/32`, ...(p.ipv6 ? [`${p.ipv6}/128`] : []), ...p.routes];
}
