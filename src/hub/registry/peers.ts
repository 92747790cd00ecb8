/**
 * Peer operations inside a write transaction: add (with allocation),
 * update, key and route conflict checks. Callers validate their input first
 * (`./validate.ts`) and record the change (`markChanged`).
 * @module
 */

import { formatIp, formatPrefix, parsePrefix, prefixAddress, prefixesOverlap, prefixRange, type Prefix } from '../../routing/ip.js';
import { allocate, checkIpFree, dropExpired, expiredQuarantine, purgeQuarantine, release, take } from './allocator.js';
import type { Statement } from './store.js';
import { markChanged, peerRow, peerRowById, toRecord, type Ctx, type PeerRow } from './rows.js';
import { ipv6For, v4Text } from './subnet.js';
import { ident, RegistryError, type AddPeerResult, type PeerKind, type PeerSource } from './types.js';

/** A validated peer to add. */
export interface NewPeer {
  kind: PeerKind;
  name: string;
  key: string;
  ip: number | null;
  routes: Prefix[];
  labels: Record<string, string>;
  comment: string | null;
  enabled: boolean;
  source: PeerSource;
  homeHub?: number | null;
  /** SHA-256 of the agent credential, for a new agent. */
  credentialHash?: Uint8Array | null;
}

/** Validated changes to a peer (undefined = keep). */
export interface PeerChanges {
  key?: string;
  ip?: number;
  routes?: Prefix[];
  labels?: Record<string, string>;
  comment?: string | null;
  enabled?: boolean;
}

/** The read of {@link checkKeyFree}, to batch with others; its first row goes to {@link refuseKeyOwner}. */
export function keyOwner(key: string): Statement {
  return { sql: 'SELECT id, kind, name FROM peers WHERE public_key = ?', params: [key] };
}

/** The key must not belong to another peer. @throws RegistryError `KEY_CONFLICT` */
export async function checkKeyFree(ctx: Ctx, key: string, selfId: number | null): Promise<void> {
  const st = keyOwner(key);
  refuseKeyOwner(await ctx.tx.get<{ id: number; kind: string; name: string }>(st.sql, st.params), key, selfId);
}

/** {@link checkKeyFree} with its read done: `o` is the first row of {@link keyOwner}. @throws RegistryError `KEY_CONFLICT` */
export function refuseKeyOwner(o: { id: number; kind: string; name: string } | undefined, key: string, selfId: number | null): void {
  if (o && o.id !== selfId) {
    throw new RegistryError(
      'KEY_CONFLICT',
      `public key ${key} is already used by ${ident(o)}; every peer needs its own key pair (generate one with "wg genkey")`,
      ident(o),
    );
  }
}

/** Routes must not overlap another peer's routes or addresses, nor the hub's address or subnet. @throws RegistryError `OVERLAP` */
export async function checkRouteOverlaps(ctx: Ctx, routes: Prefix[], selfId: number | null): Promise<void> {
  if (routes.length === 0) return;
  const { v4, v6 } = ctx;
  const others = await ctx.tx.all<{ id: number; kind: string; name: string; routes: string }>(`SELECT id, kind, name, routes FROM peers WHERE routes <> '[]'`);
  for (const r of routes) {
    const text = formatPrefix(r);
    for (const o of others) {
      if (o.id === selfId) continue;
      for (const t of JSON.parse(o.routes) as string[]) {
        if (prefixesOverlap(r, parsePrefix(t))) {
          throw new RegistryError('OVERLAP', `route ${text} overlaps route ${t} of ${ident(o)}; remove it there first or choose a non-overlapping prefix`, ident(o));
        }
      }
    }
    const mesh = r.family === 4 ? v4.prefix : v6?.prefix;
    if (mesh === undefined || !prefixesOverlap(r, mesh)) continue;
    // The route overlaps the mesh: the smaller of the two lies inside the other. Find whom it hits, to name them.
    const inner = r.bits >= mesh.bits ? r : mesh;
    const meshFirst = prefixRange(mesh).first;
    const innerRange = prefixRange(inner);
    const lo = innerRange.first - meshFirst;
    const hi = innerRange.last - meshFirst;
    if (lo <= 1n && 1n <= hi) {
      throw new RegistryError('OVERLAP', `route ${text} contains the hub's address ${formatIp(prefixAddress(mesh, 1n).bytes)}; mesh addresses cannot be routed to a peer`, 'hub');
    }
    const maxIdx = BigInt(v4.broadcast - v4.network);
    if (lo <= maxIdx) {
      const a = v4.network + Number(lo);
      const b = v4.network + Number(hi < maxIdx ? hi : maxIdx);
      const hit = await ctx.tx.get<{ kind: string; name: string; ipv4: string; ipv6: string | null }>(
        'SELECT kind, name, ipv4, ipv6 FROM peers WHERE ipv4_int BETWEEN ? AND ? AND id <> ? ORDER BY ipv4_int LIMIT 1',
        [a, b, selfId ?? -1],
      );
      if (hit) {
        throw new RegistryError(
          'OVERLAP',
          `route ${text} contains ${r.family === 4 ? hit.ipv4 : hit.ipv6}, the address of ${ident(hit)}; mesh addresses cannot be routed to another peer`,
          ident(hit),
        );
      }
    }
    throw new RegistryError('OVERLAP', `route ${text} overlaps the hub subnet ${formatPrefix(mesh)}, whose addresses the registry allocates; route a prefix outside it`, 'hub');
  }
}

/** The reads {@link addPeerTx} makes for a new peer with `key` (its owner, the expired quarantine), to batch with others. */
export function addReads(key: string, now: number): Statement[] {
  return [keyOwner(key), expiredQuarantine(now)];
}

/**
 * Add a peer, or return the existing one (same key: unchanged; another key
 * and the same source: re-keyed, the address kept). `known`: the peer's row
 * (null: none) when already read; `reads`: the rows of {@link addReads} when already read.
 * @throws RegistryError `NAME_CONFLICT`, `KEY_CONFLICT`, `OVERLAP`, `ADDRESS_TAKEN`, `SUBNET_EXHAUSTED`
 */
export async function addPeerTx(ctx: Ctx, p: NewPeer, known?: PeerRow | null, reads?: unknown[][]): Promise<AddPeerResult> {
  const who = `${p.kind}/${p.name}`;
  const existing = known === undefined ? await peerRow(ctx.tx, p.kind, p.name) : (known ?? undefined);
  if (existing) {
    if (existing.public_key === p.key) return { ...toRecord(existing), created: false, rekeyed: false };
    if (existing.source !== p.source) {
      throw new RegistryError('NAME_CONFLICT', `${who} exists with another key and is managed by ${existing.source}; change its key there (or remove it first)`, who);
    }
    await checkKeyFree(ctx, p.key, existing.id);
    await ctx.tx.run('UPDATE peers SET public_key = ?, updated_at = ? WHERE id = ?', [p.key, ctx.now, existing.id]);
    markChanged(ctx, existing);
    return { ...toRecord(await peerRowById(ctx.tx, existing.id)), created: false, rekeyed: true, previousPublicKey: existing.public_key };
  }
  const [owner, expired] = reads !== undefined && reads.length === 2 ? reads : await ctx.tx.batch(addReads(p.key, ctx.now));
  refuseKeyOwner(owner![0] as { id: number; kind: string; name: string } | undefined, p.key, null);
  await checkRouteOverlaps(ctx, p.routes, null);
  await dropExpired(ctx, expired![0] as { m: number | null } | undefined);
  let n: number;
  if (p.ip !== null) {
    await checkIpFree(ctx, p.ip, who, null);
    n = p.ip;
    await take(ctx, n);
  } else {
    n = await allocate(ctx);
  }
  const row = await ctx.tx.get<PeerRow>(
    `INSERT INTO peers (kind, name, public_key, ipv4, ipv4_int, ipv6, routes, labels, source, enabled, comment, created_at, updated_at, home_hub, credential_hash)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`,
    [
      p.kind,
      p.name,
      p.key,
      v4Text(n),
      n,
      ipv6For(ctx.v4, ctx.v6, n),
      JSON.stringify(p.routes.map(formatPrefix)),
      JSON.stringify(p.labels),
      p.source,
      p.enabled ? 1 : 0,
      p.comment,
      ctx.now,
      ctx.now,
      p.homeHub ?? null,
      p.credentialHash ?? null,
    ],
  );
  markChanged(ctx, p);
  return { ...toRecord(row!), created: true, rekeyed: false };
}

/** Apply validated changes to `row`; true if anything changed. A changed address releases the old one (see {@link release}). */
export async function updatePeerTx(ctx: Ctx, row: PeerRow, c: PeerChanges, quarantineSeconds?: number): Promise<boolean> {
  const sets: string[] = [];
  const vals: (string | number | null)[] = [];
  if (c.key !== undefined && c.key !== row.public_key) {
    await checkKeyFree(ctx, c.key, row.id);
    sets.push('public_key = ?');
    vals.push(c.key);
  }
  if (c.routes !== undefined) {
    const text = JSON.stringify(c.routes.map(formatPrefix));
    if (text !== row.routes) {
      await checkRouteOverlaps(ctx, c.routes, row.id);
      sets.push('routes = ?');
      vals.push(text);
    }
  }
  if (c.ip !== undefined && c.ip !== row.ipv4_int) {
    await purgeQuarantine(ctx);
    await checkIpFree(ctx, c.ip, ident(row), row.id);
    await take(ctx, c.ip);
    await release(ctx, row, quarantineSeconds);
    sets.push('ipv4 = ?', 'ipv4_int = ?', 'ipv6 = ?');
    vals.push(v4Text(c.ip), c.ip, ipv6For(ctx.v4, ctx.v6, c.ip));
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
  vals.push(ctx.now, row.id);
  await ctx.tx.run(`UPDATE peers SET ${sets.join(', ')} WHERE id = ?`, vals);
  markChanged(ctx, row);
  return true;
}

/** Delete `row`; its address is released (see {@link release}). */
export async function removePeerTx(ctx: Ctx, row: PeerRow, quarantineSeconds?: number): Promise<void> {
  await ctx.tx.run('DELETE FROM peers WHERE id = ?', [row.id]);
  await release(ctx, row, quarantineSeconds);
  markChanged(ctx, row);
}
