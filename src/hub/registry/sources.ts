/**
 * Reconciling a whole source (the clients file, the fleet API) with the
 * registry: validation of the desired list, then one transaction that adds,
 * removes and updates that source's peers (see `Registry.replaceSource`).
 * @module
 */

import { removePeerTx, addPeerTx, updatePeerTx } from './peers.js';
import { peerRow, type Ctx, type PeerRow } from './rows.js';
import { checkHostAddress, v4Text, type Net4 } from './subnet.js';
import { ident, RegistryError, type DesiredPeer, type PeerKind, type ReplaceableSource, type ReplaceSourceResult } from './types.js';
import { checkEnabled, checkKind, checkName, cleanText, validatePublicKey } from './validate.js';

/** A validated entry of a desired list. */
export interface ValidEntry {
  id: string;
  kind: PeerKind;
  name: string;
  key: string;
  ip?: number;
  enabled: boolean;
  comment: string | null;
}

/** The validated desired list: valid entries, every `kind/name` listed (also invalid ones: those peers are kept), and the entries skipped. */
export interface DesiredList {
  valid: ValidEntry[];
  present: Set<string>;
  errors: ReplaceSourceResult['errors'];
}

/** Validate a desired list (pure): each entry on its own, and duplicates of names, keys and addresses within it. */
export function validateDesired(v4: Net4, desired: readonly DesiredPeer[]): DesiredList {
  const errors: ReplaceSourceResult['errors'] = [];
  const valid: ValidEntry[] = [];
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
      const ip = d.ip === undefined || d.ip === null ? undefined : checkHostAddress(v4, d.ip);
      const enabled = checkEnabled(d.enabled, `enabled of ${id}`) ?? true;
      const comment = cleanText(d.comment, `comment of ${id}`);
      const k = seenKeys.get(key);
      if (k !== undefined) throw new RegistryError('KEY_CONFLICT', `public key ${key} is listed for both ${k} and ${id}; every peer needs its own key`, k);
      seenKeys.set(key, id);
      if (ip !== undefined) {
        const o = seenIps.get(ip);
        if (o !== undefined) throw new RegistryError('ADDRESS_TAKEN', `address ${v4Text(ip)} is listed for both ${o} and ${id}`, o);
        seenIps.set(ip, id);
      }
      valid.push({ id, kind, name, key, ...(ip !== undefined ? { ip } : {}), enabled, comment });
    } catch (e) {
      if (!(e instanceof RegistryError)) throw e;
      errors.push({ name: label, message: e.message });
    }
  }
  return { valid, present, errors };
}

/**
 * Make the peers of `source` the desired list, inside the open transaction.
 * Entries that depend on each other (B takes the address A gives up) are
 * applied in whatever order works; an entry that still fails is reported.
 */
export async function replaceSourceTx(ctx: Ctx, source: ReplaceableSource, list: DesiredList, quarantineSeconds: number | undefined): Promise<ReplaceSourceResult> {
  const added: string[] = [];
  const updated: string[] = [];
  const removed: string[] = [];
  const errors: ReplaceSourceResult['errors'] = [];
  for (const row of await ctx.tx.all<PeerRow>('SELECT * FROM peers WHERE source = ?', [source])) {
    if (list.present.has(ident(row))) continue;
    await removePeerTx(ctx, row, quarantineSeconds);
    removed.push(ident(row));
  }
  let pending = list.valid;
  const lastError = new Map<string, string>();
  while (pending.length > 0) {
    const next: ValidEntry[] = [];
    for (const v of pending) {
      try {
        await ctx.tx.savepoint(async () => {
          const row = await peerRow(ctx.tx, v.kind, v.name);
          if (row && row.source !== source) {
            throw new RegistryError('NAME_CONFLICT', `${v.id} already exists (added by ${row.source}); remove it there or rename the entry`, v.id);
          }
          if (!row) {
            await addPeerTx(ctx, { kind: v.kind, name: v.name, key: v.key, ip: v.ip ?? null, routes: [], labels: {}, comment: v.comment, enabled: v.enabled, source }, null);
            added.push(v.id);
          } else if (await updatePeerTx(ctx, row, { key: v.key, ip: v.ip, comment: v.comment, enabled: v.enabled }, quarantineSeconds)) {
            updated.push(v.id);
          }
        });
      } catch (e) {
        if (!(e instanceof RegistryError) || e.code === 'STORE_UNAVAILABLE') throw e;
        lastError.set(v.id, e.message);
        next.push(v);
      }
    }
    if (next.length === pending.length) break;
    pending = next;
  }
  for (const v of pending) errors.push({ name: v.name, message: lastError.get(v.id) ?? 'not applied' });
  return { added, removed, updated, errors };
}
