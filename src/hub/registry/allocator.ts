/**
 * Address allocation and quarantine. The lowest free host address is found
 * from a stored hint (`registry_state.alloc_hint`) with the invariant that
 * every host address below it is taken (by a peer or an active quarantine):
 * an allocation probes upwards from the hint in index range scans of at most
 * {@link WINDOW} addresses and stores the address after the one it took; a
 * freed address lowers the hint. So an add costs the same at 100 rows and at
 * 65,000 (no scan of the table), the result is the same as a full search
 * (lowest free, never the network, broadcast or hub address), and all of it
 * happens in the caller's write transaction, serialised with every other
 * writer (a refused request leaves the hint as it was).
 * @module
 */

import { RegistryError, ident } from './types.js';
import type { Ctx, PeerRow } from './rows.js';
import type { Statement } from './store.js';
import { v4Text } from './subnet.js';

/** Addresses probed per query. */
const WINDOW = 256;

/** Lower the allocation hint to `n` (an address that became free). */
export async function freed(ctx: Ctx, n: number): Promise<void> {
  if (n >= ctx.hint) return;
  ctx.hint = n;
  await ctx.tx.later('UPDATE registry_state SET alloc_hint = ? WHERE id = 1', [n]);
}

/** The read of {@link purgeQuarantine} (the lowest expired address), to batch with others; its first row goes to {@link dropExpired}. */
export function expiredQuarantine(now: number): Statement {
  return { sql: 'SELECT MIN(ipv4_int) AS m FROM quarantine WHERE until_ms <= ?', params: [now] };
}

/** Drop expired quarantine entries (their addresses become free). */
export async function purgeQuarantine(ctx: Ctx): Promise<void> {
  const st = expiredQuarantine(ctx.now);
  await dropExpired(ctx, await ctx.tx.get<{ m: number | null }>(st.sql, st.params));
}

/** {@link purgeQuarantine} with its read done: `m` is the first row of {@link expiredQuarantine}. */
export async function dropExpired(ctx: Ctx, m: { m: number | null } | undefined): Promise<void> {
  if (m?.m === null || m?.m === undefined) return;
  await ctx.tx.later('DELETE FROM quarantine WHERE until_ms <= ?', [ctx.now]);
  await freed(ctx, m.m);
}

/** The default quarantine in seconds (stored in `meta`). */
export async function storedQuarantine(ctx: Pick<Ctx, 'tx'>): Promise<number> {
  const v = await ctx.tx.get<{ value: string }>(`SELECT value FROM meta WHERE key = 'quarantine_seconds'`);
  const n = v === undefined ? 0 : Number(v.value);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/** Give up the address of `row` (removed or renumbered): quarantined for `seconds` (default: the stored value), else free. */
export async function release(ctx: Ctx, row: PeerRow, seconds: number | undefined): Promise<void> {
  seconds ??= await storedQuarantine(ctx);
  if (seconds > 0) {
    await ctx.tx.later(
      'INSERT INTO quarantine (ipv4_int, until_ms, former) VALUES (?, ?, ?) ON CONFLICT (ipv4_int) DO UPDATE SET until_ms = excluded.until_ms, former = excluded.former',
      [row.ipv4_int, ctx.now + Math.round(seconds * 1000), ident(row)],
    );
  } else {
    await freed(ctx, row.ipv4_int);
  }
}

/** Is address `n` free for the identity `who` (excluding peer `selfId`)? @throws RegistryError `ADDRESS_TAKEN` */
export async function checkIpFree(ctx: Ctx, n: number, who: string, selfId: number | null): Promise<void> {
  const owner = await ctx.tx.get<{ id: number; kind: string; name: string }>('SELECT id, kind, name FROM peers WHERE ipv4_int = ?', [n]);
  if (owner && owner.id !== selfId) {
    throw new RegistryError('ADDRESS_TAKEN', `address ${v4Text(n)} is already assigned to ${ident(owner)}; choose another one or omit it to allocate one`, ident(owner));
  }
  const q = await ctx.tx.get<{ until_ms: number; former: string }>('SELECT until_ms, former FROM quarantine WHERE ipv4_int = ? AND until_ms > ?', [n, ctx.now]);
  if (q && q.former !== who) {
    throw new RegistryError(
      'ADDRESS_TAKEN',
      `address ${v4Text(n)} belonged to ${q.former} and is quarantined until ${new Date(q.until_ms).toISOString()}; choose another one or omit it to allocate one`,
      q.former,
    );
  }
}

/** Mark address `n` as taken by a peer: its quarantine entry (if any, same identity) goes. */
export async function take(ctx: Ctx, n: number): Promise<void> {
  await ctx.tx.later('DELETE FROM quarantine WHERE ipv4_int = ?', [n]);
}

/**
 * The lowest free host address (call {@link purgeQuarantine} first: the
 * result is then not quarantined); the hint moves past it.
 * @throws RegistryError `SUBNET_EXHAUSTED`
 */
export async function allocate(ctx: Ctx): Promise<number> {
  const { v4, tx } = ctx;
  const first = v4.hub + 1;
  const last = v4.broadcast - 1;
  let c = Math.max(first, ctx.hint);
  while (c <= last) {
    const end = Math.min(c + WINDOW - 1, last);
    const rows = await tx.all<{ a: number }>(
      'SELECT ipv4_int AS a FROM peers WHERE ipv4_int BETWEEN ? AND ? UNION ALL SELECT ipv4_int AS a FROM quarantine WHERE ipv4_int BETWEEN ? AND ?',
      [c, end, c, end],
    );
    const taken = new Set(rows.map((r) => r.a));
    while (c <= end && taken.has(c)) c++;
    if (c <= end) {
      ctx.hint = c + 1;
      await tx.later('UPDATE registry_state SET alloc_hint = ? WHERE id = 1', [ctx.hint]);
      return c;
    }
  }
  const used = (await tx.get<{ n: number }>('SELECT COUNT(*) AS n FROM peers'))!.n;
  const q = (await tx.get<{ n: number; t: number | null }>('SELECT COUNT(*) AS n, MIN(until_ms) AS t FROM quarantine WHERE until_ms > ?', [ctx.now]))!;
  const hosts = v4.broadcast - v4.hub - 1;
  throw new RegistryError(
    'SUBNET_EXHAUSTED',
    `subnet ${v4.text} has no free address: ${hosts} host addresses besides the hub, ${used} held by peers` +
      (q.n > 0 ? `, ${q.n} quarantined (the first is free again at ${new Date(q.t!).toISOString()})` : '') +
      `; remove unused peers, or recreate the hub with a larger subnet`,
  );
}
