/**
 * The change log: every write transaction first takes the next change
 * sequence number (`registry_state.change_seq`; the row lock serialises the
 * writers of a shared PostgreSQL registry, so sequence order is commit
 * order), and records each peer it created, changed or removed under that
 * number in `changes`, in the same transaction. A hub keeps the last number
 * it applied and reads only what came after (one indexed range query);
 * {@link CHANGES_KEPT} numbers are kept, an older cursor gets a reset (re-read
 * every peer). On PostgreSQL a trigger on `changes` sends a NOTIFY, delivered
 * on commit (`./schema-postgres.ts`).
 * @module
 */

import type { Ctx } from './rows.js';
import type { Statement, Tx } from './store.js';
import type { Net4, Net6 } from './subnet.js';
import type { ChangeBatch, PeerKind } from './types.js';

/** How many change sequence numbers the log keeps. */
export const CHANGES_KEPT = 10_000;

/** Takes the next change sequence number (and, on PostgreSQL, the writers' lock); also reads the allocation hint. */
const NEXT_SEQ: Statement = { sql: 'UPDATE registry_state SET change_seq = change_seq + 1 WHERE id = 1 RETURNING change_seq, alloc_hint' };

/**
 * Run `fn` as one change in the open transaction `tx`: it takes the next
 * sequence number, and the peers it marks changed are logged under it.
 * `first` are reads the change starts with, sent with the sequence number's
 * update (after it: they see what the writers before committed); `fn` gets their rows.
 */
export async function runChange<T>(
  tx: Tx,
  v4: Net4,
  v6: Net6 | null,
  now: number,
  fn: (ctx: Ctx, first: unknown[][]) => Promise<T>,
  first: readonly Statement[] = [],
): Promise<T> {
  const [seqRows, ...rows] = await tx.batch([NEXT_SEQ, ...first]);
  const { change_seq: seq, alloc_hint: hint } = seqRows![0] as { change_seq: number; alloc_hint: number };
  const ctx: Ctx = { tx, v4, v6, now, changed: new Map(), hint };
  const r = await fn(ctx, rows);
  await recordChanges(tx, seq, ctx.changed.values(), ctx.now);
  return r;
}

/** Record the peers changed under `seq`; prunes the log now and then. */
export async function recordChanges(tx: Tx, seq: number, peers: Iterable<{ kind: PeerKind; name: string }>, now: number): Promise<void> {
  let any = false;
  for (const p of peers) {
    any = true;
    await tx.later('INSERT INTO changes (seq, kind, name, at) VALUES (?, ?, ?, ?)', [seq, p.kind, p.name, now]);
  }
  if (!any) return;
  if (seq % 1000 === 0) await tx.later('DELETE FROM changes WHERE seq <= ?', [seq - CHANGES_KEPT]);
}

/** The current change sequence number. */
export async function currentSeq(tx: Tx): Promise<number> {
  return (await tx.get<{ change_seq: number }>('SELECT change_seq FROM registry_state WHERE id = 1'))!.change_seq;
}

/** What changed after `cursor` (see {@link ChangeBatch}). */
export async function changesSince(tx: Tx, cursor: number): Promise<ChangeBatch> {
  const seq = await currentSeq(tx);
  if (cursor >= seq) return { seq, reset: cursor > seq, peers: [] };
  // Pruning keeps at least the last CHANGES_KEPT numbers, so a newer cursor misses nothing.
  if (cursor < seq - CHANGES_KEPT) return { seq, reset: true, peers: [] };
  const rows = await tx.all<{ kind: PeerKind; name: string }>('SELECT kind, name FROM changes WHERE seq > ? AND seq <= ? ORDER BY seq, id', [cursor, seq]);
  const last = new Map<string, { kind: PeerKind; name: string }>();
  for (const r of rows) {
    const k = `${r.kind}/${r.name}`;
    last.delete(k);
    last.set(k, { kind: r.kind, name: r.name });
  }
  return { seq, reset: false, peers: [...last.values()] };
}
