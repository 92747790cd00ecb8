/**
 * What the agent (`tsguard join`) and the hub's registration API (`./api.ts`)
 * share: the request and answer of `POST /v1/register` and the transport
 * policy helpers. Kept apart from `./api.ts` so that the agent does not load
 * the hub's registry at start.
 * @module
 */

import { parseIp } from '../routing/ip.js';

/** Persistent keepalive agents should use towards the hub (seconds). */
export const AGENT_KEEPALIVE = 25;

/** Why a registration was refused. */
export type RefusalReason =
  | 'unauthorized'
  | 'invalid_request'
  | 'invalid_public_key'
  | 'identity_conflict'
  | 'subnet_exhausted'
  | 'store_unavailable'
  | 'not_found'
  | 'method_not_allowed'
  | 'internal_error';

/** Why a registration was accepted. */
export type AcceptReason = 'registered' | 'already_registered' | 'rekeyed';

/** Body of `POST /v1/register`. */
export interface RegisterRequest {
  /** The agent's name (1–63 characters from `[A-Za-z0-9._-]`). */
  agent_id: string;
  /** The agent's WireGuard public key, base64. */
  public_key: string;
  /** Optional labels (name → text). */
  labels?: Record<string, string>;
  /** The credential the hub returned at the first registration; needed to change the key of an existing agent id. */
  agent_credential?: string;
}

/** A peer the agent should configure (the hub). */
export interface RegisterPeer {
  /** Base64 public key. */
  public_key: string;
  /** `host:port` to send to. */
  endpoint: string;
  /** Prefixes routed to this peer. */
  allowed_ips: string[];
  /** Keepalive interval in seconds. */
  persistent_keepalive: number;
}

/** Answer of `POST /v1/register` (refusals carry nulls and an empty `peers`). */
export interface RegisterResponse {
  /** Whether the agent is registered. */
  accepted: boolean;
  /** Machine-readable outcome. */
  reason: AcceptReason | RefusalReason;
  /** Human-readable explanation (refusals). */
  message?: string;
  /** The agent's mesh IPv4 address (no prefix length). */
  assigned_ip: string | null;
  /** The agent's mesh IPv6 address, when the hub has an IPv6 prefix. */
  assigned_ip6?: string | null;
  /** The mesh IPv4 subnet (CIDR). */
  mesh_subnet: string | null;
  /** The mesh IPv6 prefix, when configured. */
  mesh_subnet6?: string | null;
  /** The hub's WireGuard public key, base64. */
  hub_public_key: string | null;
  /** The hub's UDP endpoint `host:port`. */
  hub_endpoint: string | null;
  /** Peers to configure (the hub). */
  peers: RegisterPeer[];
  /** When the agent was first registered (ISO 8601). */
  registered_at: string | null;
  /**
   * A new agent credential (first registration, re-key, or an agent that had
   * none): the agent stores it (0600) and sends it as `agent_credential`.
   */
  agent_credential?: string;
}

/** True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
export function isLoopback(host: string): boolean {
  let b: Uint8Array;
  try {
    b = parseIp(host.startsWith('::ffff:') && host.includes('.') ? host.slice(7) : host).bytes;
  } catch {
    return false;
  }
  if (b.length === 4) return b[0] === 127;
  return b.every((x, i) => (i < 15 ? x === 0 : x === 1));
}
