/**
 * Stored rows, their conversion to public records, and the transaction
 * context every registry operation runs with.
 * @module
 */

import type { Statement, Tx } from './store.js';
import type { Net4, Net6 } from './subnet.js';
import type { PeerKind, PeerRecord, PeerSource } from './types.js';

/** A row of `peers`. */
export interface PeerRow {
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
  credential_hash: Uint8Array | null;
  rekey_allowed: number;
  home_hub: number | null;
}

/** A row of `tokens`. */
export interface TokenRow {
  id: string;
  secret_hash: Uint8Array;
  created_at: number;
  expires_at: number | null;
  max_uses: number | null;
  uses: number;
  revoked_at: number | null;
  comment: string | null;
}

/** The public record of a peer row. */
export function toRecord(r: PeerRow): PeerRecord {
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
    homeHub: r.home_hub,
  };
}

/** What one registry operation runs with. */
export interface Ctx {
  /** The open transaction. */
  tx: Tx;
  /** The IPv4 subnet. */
  v4: Net4;
  /** The IPv6 prefix, or null. */
  v6: Net6 | null;
  /** The time of the operation, Unix ms. */
  now: number;
  /** Peers this transaction created, changed or removed (`kind/name` → identity), for the change log. */
  changed: Map<string, { kind: PeerKind; name: string }>;
  /** The allocation hint as this transaction left it (read with the change sequence number; see `./allocator.ts`). */
  hint: number;
}

/** Note that peer `kind/name` changed in this transaction. */
export function markChanged(ctx: Ctx, r: { kind: PeerKind; name: string }): void {
  ctx.changed.set(`${r.kind}/${r.name}`, { kind: r.kind, name: r.name });
}

/** The read of {@link peerRow}, to batch with others (its first row is the peer). */
export function peerLookup(kind: string, name: string): Statement {
  return { sql: 'SELECT * FROM peers WHERE kind = ? AND name = ?', params: [kind, name] };
}

/** The peer `kind/name`, or undefined. */
export function peerRow(tx: Tx, kind: string, name: string): Promise<PeerRow | undefined> {
  const st = peerLookup(kind, name);
  return tx.get<PeerRow>(st.sql, st.params);
}

/** The peers named in `keys` that exist (any order), a few statements for any number of names. */
export async function peerRows(tx: Tx, keys: readonly { kind: string; name: string }[]): Promise<PeerRow[]> {
  const byKind = new Map<string, string[]>();
  for (const k of keys) {
    let names = byKind.get(k.kind);
    if (names === undefined) byKind.set(k.kind, (names = []));
    names.push(k.name);
  }
  const rows: PeerRow[] = [];
  for (const [kind, names] of byKind) {
    // Chunks stay far below both backends' limits on bound parameters.
    for (let i = 0; i < names.length; i += 500) {
      const chunk = names.slice(i, i + 500);
      rows.push(...(await tx.all<PeerRow>(`SELECT * FROM peers WHERE kind = ? AND name IN (${chunk.map(() => '?').join(', ')})`, [kind, ...chunk])));
    }
  }
  return rows;
}

/** The peer with row id `id` (which must exist). */
export async function peerRowById(tx: Tx, id: number): Promise<PeerRow> {
  return (await tx.get<PeerRow>('SELECT * FROM peers WHERE id = ?', [id]))!;
}
