/**
 * The registry's stored geometry (`meta`): the subnet is stored when the
 * registry is created and never changed silently. Reopening with another
 * subnet is `SUBNET_CHANGED`, except a pure widening (same network address,
 * shorter prefix), which is recorded in `previous_subnets`; an IPv6 prefix may
 * be added later (every row gets its derived address), not changed. Rows
 * outside the stored subnet are an error at open.
 * @module
 */

import type { Tx } from './store.js';
import { ipv6For, parseSubnet4, parseSubnet6, v4Text, type Net4, type Net6 } from './subnet.js';
import { ident, RegistryError } from './types.js';

/** Set one `meta` entry. */
export async function setMeta(tx: Tx, key: string, value: string): Promise<void> {
  await tx.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]);
}

/** Read one `meta` entry. */
export async function getMeta(tx: Tx, key: string): Promise<string | undefined> {
  return (await tx.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [key]))?.value;
}

/**
 * Read or initialise the geometry and check the rows against it; runs in the
 * open transaction. `where` names the registry, `hint` says how to create it.
 * @throws RegistryError `NOT_INITIALIZED`, `SUBNET_CHANGED`
 */
export async function settleMeta(tx: Tx, where: string, hint: string, want4: Net4 | null, want6: Net6 | null, now: number): Promise<{ v4: Net4; v6: Net6 | null }> {
  const stored = await getMeta(tx, 'subnet');
  if (stored === undefined) {
    if (!want4) throw new RegistryError('NOT_INITIALIZED', `the hub registry ${where} has no subnet yet; ${hint}`);
    await setMeta(tx, 'created_at', String(now));
    await setMeta(tx, 'subnet', want4.text);
    await setMeta(tx, 'hub_ipv4', v4Text(want4.hub));
    if (want6) {
      await setMeta(tx, 'ipv6_subnet', want6.text);
      await setMeta(tx, 'hub_ipv6', ipv6For(want4, want6, want4.hub)!);
    }
    return { v4: want4, v6: want6 };
  }

  let v4 = parseSubnet4(stored);
  const stored6 = await getMeta(tx, 'ipv6_subnet');
  let v6 = stored6 === undefined ? null : parseSubnet6(stored6, v4);

  if (want4 && want4.text !== v4.text) {
    const widening = want4.network === v4.network && want4.prefix.bits < v4.prefix.bits;
    if (!widening) {
      throw new RegistryError(
        'SUBNET_CHANGED',
        `the hub registry ${where} uses subnet ${v4.text}, not ${want4.text}; peers are never renumbered silently. ` +
          `Pass --subnet ${v4.text}, or widen it keeping the network address (e.g. ${v4Text(v4.network)}/${v4.prefix.bits - 1}), ` +
          `or start over with a new registry`,
      );
    }
    if (v6 && 128 - v6.prefix.bits < want4.hostBits) {
      throw new RegistryError('SUBNET_CHANGED', `cannot widen ${v4.text} to ${want4.text}: the IPv6 prefix ${v6.text} has too few host bits to mirror it`);
    }
    const prev = JSON.parse((await getMeta(tx, 'previous_subnets')) ?? '[]') as Array<{ subnet: string; until: number }>;
    prev.push({ subnet: v4.text, until: now });
    await setMeta(tx, 'previous_subnets', JSON.stringify(prev));
    await setMeta(tx, 'subnet', want4.text);
    v4 = want4;
  }

  if (want6 && (v6 === null || want6.text !== v6.text)) {
    if (v6 !== null) {
      throw new RegistryError(
        'SUBNET_CHANGED',
        `the hub registry ${where} uses IPv6 prefix ${v6.text}, not ${want6.text}; peers are never renumbered silently. Pass --ipv6 ${v6.text}, or start over with a new registry`,
      );
    }
    const chk = parseSubnet6(want6.text, v4);
    await setMeta(tx, 'ipv6_subnet', chk.text);
    await setMeta(tx, 'hub_ipv6', ipv6For(v4, chk, v4.hub)!);
    v6 = chk;
    // A one-off addition to every row (a running hub picks it up at its next start, like any geometry change).
    for (const r of await tx.all<{ id: number; ipv4_int: number }>('SELECT id, ipv4_int FROM peers')) {
      await tx.run('UPDATE peers SET ipv6 = ? WHERE id = ?', [ipv6For(v4, chk, r.ipv4_int), r.id]);
    }
  }

  const bad = await tx.all<{ kind: string; name: string; ipv4: string }>(
    'SELECT kind, name, ipv4 FROM peers WHERE ipv4_int <= ? OR ipv4_int >= ? ORDER BY ipv4_int LIMIT 5',
    [v4.hub, v4.broadcast],
  );
  if (bad.length > 0) {
    throw new RegistryError(
      'SUBNET_CHANGED',
      `the hub registry ${where} holds peers outside subnet ${v4.text} or on a reserved address: ` +
        bad.map((b) => `${ident(b)} ${b.ipv4}`).join(', ') +
        `; the registry was modified outside tsguard — fix or remove these rows (nothing is renumbered automatically)`,
    );
  }
  return { v4, v6 };
}
