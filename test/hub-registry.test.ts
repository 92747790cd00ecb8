/**
 * The hub registry on both backends (SQLite and a real PostgreSQL the test
 * starts): allocation, validation, conflicts, reconciliation of sources,
 * quarantine, persistence, the change log, agent credentials and
 * concurrent writers; SQLite-only: file modes, lock handling, schema upgrades.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { keyToBase64 } from '../src/crypto/keys.js';
import { loadOrCreateHubKey, Registry, RegistryError, type RegistryErrorCode, type RegistryOpenOptions } from '../src/hub/registry/index.js';
import { skipPostgres, TestPostgres } from './helpers/postgres.js';
import { holdLock, newKey } from './helpers/registry.js';

const dirs: string[] = [];
const opened: Registry[] = [];
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'tsguard-reg-'));
  dirs.push(d);
  return d;
}

async function code(p: Promise<unknown> | (() => Promise<unknown>)): Promise<{ code: RegistryErrorCode; owner?: string; message: string }> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    if (e instanceof RegistryError) return { code: e.code, owner: e.owner, message: e.message };
    throw e;
  }
  throw new Error('expected a RegistryError');
}

const ZERO_KEY = 'A'.repeat(43) + '=';
const ONE_KEY = Buffer.concat([Buffer.of(1), Buffer.alloc(31)]).toString('base64'); // u = 1: low order

const dev = (name: string, extra: Record<string, unknown> = {}) => ({ kind: 'device' as const, name, publicKey: newKey(), source: 'cli' as const, ...extra });

let server: TestPostgres | null = null;
const pgAvailable = !skipPostgres('hub-registry.test.ts');
beforeAll(async () => {
  if (pgAvailable) server = await TestPostgres.start();
}, 120_000);
afterAll(async () => {
  await server?.destroy();
});

/** One backend: how to open a registry "in a directory" and how to run raw SQL on it. */
interface Backend {
  name: 'sqlite' | 'postgresql';
  /** Registry.open options for the registry belonging to `dir`. */
  opts(dir: string): Promise<RegistryOpenOptions>;
  /** Run raw SQL (`?` placeholders) against the registry of `dir`, outside tsguard. */
  exec(dir: string, sql: string, params?: unknown[]): Promise<void>;
}

const pgUrls = new Map<string, string>();
const backends: Backend[] = [
  {
    name: 'sqlite',
    opts: async () => ({}),
    exec: async (dir, sql, params = []) => {
      const db = new Database(join(dir, 'registry.sqlite'));
      try {
        db.prepare(sql).run(...params);
      } finally {
        db.close();
      }
    },
  },
  {
    name: 'postgresql',
    opts: async (dir) => {
      let url = pgUrls.get(dir);
      if (url === undefined) {
        url = await server!.newDatabase();
        pgUrls.set(dir, url);
      }
      return { url };
    },
    exec: async (dir, sql, params = []) => {
      const c = new pg.Client({ connectionString: pgUrls.get(dir)! });
      await c.connect();
      let n = 0;
      try {
        await c.query(sql.replace(/\?/g, () => `$${++n}`), params);
      } finally {
        await c.end();
      }
    },
  },
];

describe.each(backends.filter((b) => b.name === 'sqlite' || pgAvailable))('Registry on $name', (backend) => {
  async function open(dir: string, subnet = '10.9.0.0/28', extra: { ipv6?: string; now?: () => number } = {}): Promise<Registry> {
    const r = await Registry.open(dir, {
      ...(await backend.opts(dir)),
      create: { subnet, ...(extra.ipv6 ? { ipv6: extra.ipv6 } : {}) },
      ...(extra.now ? { now: extra.now } : {}),
    });
    opened.push(r);
    return r;
  }
  async function reopen(dir: string): Promise<Registry> {
    const r = await Registry.open(dir, await backend.opts(dir));
    opened.push(r);
    return r;
  }

  describe('allocation', () => {
    it('hands out the lowest free host address, skipping network, hub and broadcast; a /28 has 13', async () => {
      const reg = await open(tmp());
      expect(reg.subnet).toBe('10.9.0.0/28');
      expect(reg.hubAddress).toBe('10.9.0.1');
      expect(reg.capacity).toBe(13);
      const got: string[] = [];
      for (let i = 0; i < 13; i++) got.push((await reg.addPeer(dev(`d${i}`))).ipv4);
      expect(got).toEqual(Array.from({ length: 13 }, (_, i) => `10.9.0.${i + 2}`));
      const e = await code(reg.addPeer(dev('d13')));
      expect(e.code).toBe('SUBNET_EXHAUSTED');
      expect(e.message).toMatch(/10\.9\.0\.0\/28.*13 host addresses/);
      // A hole is reused, lowest first.
      await reg.removePeer('device', 'd5');
      await reg.removePeer('device', 'd2');
      expect((await reg.addPeer(dev('x'))).ipv4).toBe('10.9.0.4');
      expect((await reg.addPeer(dev('y'))).ipv4).toBe('10.9.0.7');
    });

    it('derives IPv6 from the IPv4 host number', async () => {
      const reg = await open(tmp(), '10.9.0.0/24', { ipv6: 'fd00:9::/64' });
      expect(reg.hubAddress6).toBe('fd00:9::1');
      const a = await reg.addPeer(dev('a'));
      expect([a.ipv4, a.ipv6]).toEqual(['10.9.0.2', 'fd00:9::2']);
      const b = await reg.addPeer(dev('b', { ip: '10.9.0.200' }));
      expect(b.ipv6).toBe('fd00:9::c8');
      expect((await code(open(tmp(), '10.9.0.0/16', { ipv6: 'fd00:9::/120' }))).code).toBe('INVALID_IP');
    });

    it('finds the lowest gap in a /16 holding 60 000 rows written outside tsguard, then continues after it', async () => {
      const dir = tmp();
      await (await open(dir, '10.20.0.0/16')).close();
      const base = 10 * 2 ** 24 + 20 * 2 ** 16;
      const values: string[] = [];
      for (let i = 0; i < 60_000; i++) {
        const n = base + 2 + i + (i >= 40_000 ? 1 : 0); // one hole at host 40 002
        values.push(`('device', 'bulk${i}', 'key${i}', '10.20.${Math.floor((n - base) / 256)}.${(n - base) % 256}', ${n}, 'cli', 0, 0)`);
      }
      await backend.exec(dir, `INSERT INTO peers (kind, name, public_key, ipv4, ipv4_int, source, created_at, updated_at) VALUES ${values.join(',')}`);
      const reg = await open(dir, '10.20.0.0/16');
      const a = await reg.addPeer(dev('gap'));
      const b = await reg.addPeer(dev('after'));
      expect(a.ipv4).toBe(`10.20.${Math.floor(40_002 / 256)}.${40_002 % 256}`);
      expect(b.ipv4).toBe(`10.20.${Math.floor(60_003 / 256)}.${60_003 % 256}`);
      // Freeing a low address brings the allocator back to it.
      await reg.removePeer('device', 'gap');
      await backend.exec(dir, `DELETE FROM peers WHERE name = 'bulk7'`);
      await reg.removePeer('device', 'after'); // any write is fine; bulk7 was removed behind tsguard's back
      expect((await reg.addPeer(dev('again'))).ipv4).toBe(`10.20.${Math.floor(40_002 / 256)}.${40_002 % 256}`);
    }, 120_000);
  });

  describe('identities and keys', () => {
    it('re-adding the same identity with the same key is idempotent and logs no change', async () => {
      const reg = await open(tmp());
      const key = newKey();
      const a = await reg.addPeer({ kind: 'device', name: 'a', publicKey: key, source: 'cli' });
      expect(a.created).toBe(true);
      const seq = await reg.changeSeq();
      const again = await reg.addPeer({ kind: 'device', name: 'a', publicKey: key, source: 'cli', comment: 'ignored' });
      expect(again).toMatchObject({ created: false, rekeyed: false, ipv4: a.ipv4, id: a.id, comment: null });
      expect((await reg.changesSince(seq)).peers).toEqual([]);
      expect(await reg.listPeers()).toHaveLength(1);
    });

    it('a new key for a known identity keeps the address', async () => {
      const reg = await open(tmp());
      const k1 = newKey();
      const k2 = newKey();
      const a = await reg.addPeer({ kind: 'client', name: 'alice', publicKey: k1, source: 'cli' });
      await reg.addPeer(dev('other'));
      const r = await reg.addPeer({ kind: 'client', name: 'alice', publicKey: k2, source: 'cli' });
      expect(r).toMatchObject({ rekeyed: true, created: false, previousPublicKey: k1, publicKey: k2, ipv4: a.ipv4 });
      expect(await reg.findByKey(k1)).toBeNull();
      expect((await reg.findByKey(k2))?.name).toBe('alice');
    });

    it('the same name may exist once per kind', async () => {
      const reg = await open(tmp());
      await reg.addPeer(dev('x'));
      const c = await reg.addPeer({ kind: 'client', name: 'x', publicKey: newKey(), source: 'cli' });
      expect(c.ipv4).toBe('10.9.0.3');
      expect((await reg.listPeers()).map((p) => `${p.kind}/${p.name}`)).toEqual(['client/x', 'device/x']);
    });

    it('a key used by another identity is KEY_CONFLICT naming it', async () => {
      const reg = await open(tmp());
      const key = newKey();
      await reg.addPeer({ kind: 'device', name: 'a', publicKey: key, source: 'cli' });
      const e = await code(reg.addPeer({ kind: 'client', name: 'b', publicKey: key, source: 'cli' }));
      expect(e).toMatchObject({ code: 'KEY_CONFLICT', owner: 'device/a' });
      expect(e.message).toContain('device/a');
      await reg.addPeer({ kind: 'device', name: 'c', publicKey: newKey(), source: 'cli' });
      expect(await code(reg.updatePeer('device', 'c', { publicKey: key }))).toMatchObject({ code: 'KEY_CONFLICT', owner: 'device/a' });
    });

    it('invalid names, values and keys (incl. all-zero and low-order) are rejected and consume nothing', async () => {
      const reg = await open(tmp());
      const before = await reg.changeSeq();
      expect((await code(reg.addPeer(dev('bad name')))).code).toBe('INVALID_NAME');
      expect((await code(reg.addPeer(dev('x'.repeat(64))))).code).toBe('INVALID_NAME');
      expect((await code(reg.addPeer(dev('')))).code).toBe('INVALID_NAME');
      for (const k of [ZERO_KEY, ONE_KEY, 'not-a-key', 'AAAA', Buffer.alloc(31, 7).toString('base64')]) {
        expect((await code(reg.addPeer({ kind: 'device', name: 'k', publicKey: k, source: 'cli' }))).code).toBe('INVALID_KEY');
      }
      expect((await code(reg.addPeer(dev('r', { routes: ['nonsense'] })))).code).toBe('INVALID_IP');
      expect((await code(reg.addPeer(dev('c', { comment: 7 })))).code).toBe('INVALID_VALUE');
      expect((await code(reg.addPeer(dev('c', { enabled: 'yes' })))).code).toBe('INVALID_VALUE');
      // Bad durations are INVALID_VALUE (not a name or address error).
      const ttl = await code(reg.createToken({ ttlSeconds: -5 }));
      expect(ttl).toMatchObject({ code: 'INVALID_VALUE' });
      expect(ttl.message).toMatch(/token lifetime -5/);
      expect((await code(reg.createToken({ maxUses: 0 }))).code).toBe('INVALID_VALUE');
      const q = await code(reg.setQuarantineSeconds(-1));
      expect(q).toMatchObject({ code: 'INVALID_VALUE' });
      expect(q.message).toMatch(/quarantine of -1 seconds/);
      expect((await code(reg.setQuarantineSeconds(Number.POSITIVE_INFINITY))).code).toBe('INVALID_VALUE');
      expect(await reg.changeSeq()).toBe(before);
      expect(await reg.listPeers()).toEqual([]);
      expect((await reg.addPeer(dev('good'))).ipv4).toBe('10.9.0.2');
    });
  });

  describe('admin-chosen addresses and routes', () => {
    it('accepts a free address inside the subnet and rejects the rest naming the owner', async () => {
      const reg = await open(tmp());
      expect((await reg.addPeer(dev('a', { ip: '10.9.0.2' }))).ipv4).toBe('10.9.0.2');
      expect((await reg.addPeer(dev('b', { ip: '10.9.0.9' }))).ipv4).toBe('10.9.0.9');
      expect((await reg.addPeer(dev('c'))).ipv4).toBe('10.9.0.3');
      expect(await code(reg.addPeer(dev('d', { ip: '10.9.0.9' })))).toMatchObject({ code: 'ADDRESS_TAKEN', owner: 'device/b' });
      expect(await code(reg.addPeer(dev('d', { ip: '10.9.0.1' })))).toMatchObject({ code: 'ADDRESS_TAKEN', owner: 'hub' });
      expect((await code(reg.addPeer(dev('d', { ip: '10.9.0.0' })))).code).toBe('INVALID_IP');
      expect((await code(reg.addPeer(dev('d', { ip: '10.9.0.15' })))).code).toBe('INVALID_IP');
      expect((await code(reg.addPeer(dev('d', { ip: '10.9.1.5' })))).message).toMatch(/outside the hub subnet 10\.9\.0\.0\/28/);
      expect((await code(reg.addPeer(dev('d', { ip: 'fd00::5' })))).code).toBe('INVALID_IP');
      expect(await code(reg.updatePeer('device', 'c', { ip: '10.9.0.2' }))).toMatchObject({ code: 'ADDRESS_TAKEN', owner: 'device/a' });
      const moved = await reg.updatePeer('device', 'c', { ip: '10.9.0.12' });
      expect(moved.ipv4).toBe('10.9.0.12');
      expect((await reg.addPeer(dev('e'))).ipv4).toBe('10.9.0.3');
    });

    it('routes must not overlap other peers, their addresses, or the hub', async () => {
      const reg = await open(tmp(), '10.9.0.0/24', { ipv6: 'fd00:9::/64' });
      const a = await reg.addPeer(dev('a', { routes: ['192.168.10.0/24', 'fd10::/64'] }));
      expect(a.routes).toEqual(['192.168.10.0/24', 'fd10::/64']);
      await reg.addPeer(dev('b'));
      const c = (routes: string[]) => code(reg.addPeer(dev('c', { routes })));
      expect(await c(['192.168.10.128/25'])).toMatchObject({ code: 'OVERLAP', owner: 'device/a' });
      expect(await c(['192.168.0.0/16'])).toMatchObject({ code: 'OVERLAP', owner: 'device/a' });
      expect(await c(['fd10::/48'])).toMatchObject({ code: 'OVERLAP', owner: 'device/a' });
      expect(await c(['10.9.0.3/32'])).toMatchObject({ code: 'OVERLAP', owner: 'device/b' });
      expect(await c(['10.0.0.0/8'])).toMatchObject({ code: 'OVERLAP', owner: 'hub' });
      expect(await c(['fd00:9::3/128'])).toMatchObject({ code: 'OVERLAP', owner: 'device/b' });
      expect(await c(['10.9.0.128/25'])).toMatchObject({ code: 'OVERLAP', owner: 'hub' });
      expect((await c(['192.168.20.1/24'])).message).toMatch(/did you mean 192\.168\.20\.0\/24/);
      expect((await c(['172.16.0.0/12', '172.16.5.0/24'])).code).toBe('OVERLAP');
      // Nothing above consumed an address.
      expect((await reg.addPeer(dev('c', { routes: ['192.168.11.0/24'] }))).ipv4).toBe('10.9.0.4');
      // A peer may change its own routes freely, and not into another's.
      expect((await reg.updatePeer('device', 'a', { routes: ['192.168.8.0/23', '172.20.0.0/16'] })).routes).toEqual(['192.168.8.0/23', '172.20.0.0/16']);
      expect(await code(reg.updatePeer('device', 'a', { routes: ['192.168.10.0/23'] }))).toMatchObject({ code: 'OVERLAP', owner: 'device/c' });
      expect((await reg.updatePeer('device', 'a', { routes: ['192.168.10.0/24'] })).routes).toEqual(['192.168.10.0/24']);
      expect(await code(reg.updatePeer('device', 'c', { routes: ['192.168.10.7/32'] }))).toMatchObject({ code: 'OVERLAP', owner: 'device/a' });
    });
  });

  describe('update, remove, quarantine, change log', () => {
    it('updates fields, reports NOT_FOUND, and logs a change only when something changed', async () => {
      const reg = await open(tmp());
      await reg.addPeer(dev('a'));
      const s0 = await reg.changeSeq();
      const r = await reg.updatePeer('device', 'a', { enabled: false, comment: 'lab rack 3', labels: { site: 'berlin' } });
      expect(r).toMatchObject({ enabled: false, comment: 'lab rack 3', labels: { site: 'berlin' } });
      const b1 = await reg.changesSince(s0);
      expect(b1).toMatchObject({ reset: false, peers: [{ kind: 'device', name: 'a' }] });
      await reg.updatePeer('device', 'a', { enabled: false });
      expect((await reg.changesSince(b1.seq)).peers).toEqual([]);
      expect((await code(reg.updatePeer('device', 'nope', { enabled: true }))).code).toBe('NOT_FOUND');
      expect((await code(reg.removePeer('client', 'a'))).code).toBe('NOT_FOUND');
      expect((await reg.getPeer('device', 'a'))?.enabled).toBe(false);
    });

    it('the change log names each changed peer once, in order, and resets a cursor that is too old', async () => {
      const reg = await open(tmp(), '10.9.0.0/24');
      const s0 = await reg.changeSeq();
      await reg.addPeer(dev('a'));
      await reg.addPeer(dev('b'));
      await reg.updatePeer('device', 'a', { comment: 'x' });
      await reg.removePeer('device', 'b');
      const batch = await reg.changesSince(s0);
      expect(batch).toMatchObject({ reset: false, peers: [{ kind: 'device', name: 'a' }, { kind: 'device', name: 'b' }] });
      expect(batch.seq).toBeGreaterThan(s0);
      expect(await reg.changesSince(batch.seq)).toEqual({ seq: batch.seq, reset: false, peers: [] });
      // A cursor from another registry (ahead of this one) resets.
      expect((await reg.changesSince(batch.seq + 100)).reset).toBe(true);
      expect((await reg.changesSince(-20_000)).reset).toBe(true);
    });

    it('quarantines a removed address for the given time', async () => {
      let now = 1_000_000;
      const reg = await open(tmp(), '10.9.0.0/28', { now: () => now });
      await reg.addPeer(dev('a'));
      await reg.addPeer(dev('b'));
      await reg.removePeer('device', 'a', { quarantineSeconds: 60 });
      expect((await reg.addPeer(dev('c'))).ipv4).toBe('10.9.0.4');
      expect(await code(reg.addPeer(dev('d', { ip: '10.9.0.2' })))).toMatchObject({ code: 'ADDRESS_TAKEN', owner: 'device/a' });
      // The former owner may take it back explicitly.
      expect((await reg.addPeer(dev('a', { ip: '10.9.0.2' }))).ipv4).toBe('10.9.0.2');
      await reg.removePeer('device', 'a', { quarantineSeconds: 60 });
      now += 61_000;
      expect((await reg.addPeer(dev('e'))).ipv4).toBe('10.9.0.2');
      // Default: no quarantine; a stored default applies to later removals.
      await reg.removePeer('device', 'e');
      expect((await reg.addPeer(dev('f'))).ipv4).toBe('10.9.0.2');
      await reg.setQuarantineSeconds(30);
      expect(await reg.quarantineSeconds()).toBe(30);
      await reg.removePeer('device', 'f');
      expect((await reg.addPeer(dev('g'))).ipv4).toBe('10.9.0.5');
    });

    it('records last_seen without moving backwards and without a change', async () => {
      const reg = await open(tmp());
      const a = await reg.addPeer(dev('a'));
      const s = await reg.changeSeq();
      expect(await reg.touchLastSeen(a.publicKey, 5000, '192.0.2.7:51820')).toBe(true);
      expect(await reg.touchLastSeen(a.publicKey, 4000)).toBe(false);
      expect(await reg.touchLastSeen(newKey(), 4000)).toBe(false);
      expect(await reg.touchLastSeen(a.publicKey, 6000)).toBe(true); // no endpoint: keep the stored one
      expect(await reg.getPeer('device', 'a')).toMatchObject({ lastSeen: 6000, lastEndpoint: '192.0.2.7:51820' });
      expect(await reg.changeSeq()).toBe(s);
    });
  });

  it('getPeers reads many peers at once, in the order asked, null for missing ones', async () => {
    const reg = await open(tmp(), '10.9.0.0/20');
    const made = [];
    for (let i = 0; i < 620; i++) made.push(await reg.addPeer(dev(`g${i}`)));
    const keys = [
      { kind: 'device' as const, name: 'g619' },
      { kind: 'agent' as const, name: 'g0' },
      ...made.slice(0, 610).map((p) => ({ kind: p.kind, name: p.name })),
      { kind: 'device' as const, name: 'missing' },
    ];
    const got = await reg.getPeers(keys);
    expect(got).toHaveLength(keys.length);
    expect(got[0]).toEqual(await reg.getPeer('device', 'g619'));
    expect(got[1]).toBeNull();
    expect(got.slice(2, 612).map((p) => p?.ipv4)).toEqual(made.slice(0, 610).map((p) => p.ipv4));
    expect(got[612]).toBeNull();
    expect(await reg.getPeers([])).toEqual([]);
  });

  describe('replaceSource', () => {
    it('adds, removes and updates one source in one go, skipping a bad entry', async () => {
      const reg = await open(tmp(), '10.9.0.0/24');
      const manual = await reg.addPeer({ kind: 'client', name: 'manual', publicKey: newKey(), source: 'cli' });
      const [k1, k2, k3, k4, k5] = [newKey(), newKey(), newKey(), newKey(), newKey()];
      let r = await reg.replaceSource('clients-file', [
        { kind: 'client', name: 'alice', publicKey: k1, ip: '10.9.0.10' },
        { kind: 'client', name: 'bob', publicKey: k2, ip: '10.9.0.11', comment: 'bob phone' },
        { kind: 'client', name: 'carol', publicKey: k3 },
      ]);
      expect(r).toEqual({ added: ['client/alice', 'client/bob', 'client/carol'], removed: [], updated: [], errors: [] });
      expect(await reg.getPeer('client', 'carol')).toMatchObject({ ipv4: '10.9.0.3', source: 'clients-file' });

      r = await reg.replaceSource('clients-file', [
        { kind: 'client', name: 'alice', publicKey: k1, ip: '10.9.0.10' }, // unchanged
        { kind: 'client', name: 'bob', publicKey: k4, ip: '10.9.0.12', comment: 'bob phone' }, // re-keyed and moved
        { kind: 'client', name: 'carol', publicKey: ZERO_KEY }, // bad: carol keeps her old state
        { kind: 'client', name: 'dave', publicKey: k5, enabled: false },
        { kind: 'client', name: 'eve', publicKey: manual.publicKey }, // key of a cli peer
        { kind: 'client', name: 'manual', publicKey: newKey() }, // name of a cli peer
        { kind: 'client', name: 'frank', publicKey: newKey(), ip: '10.9.0.1' }, // hub address
      ]);
      expect(r.added).toEqual(['client/dave']);
      expect(r.updated).toEqual(['client/bob']);
      expect(r.removed).toEqual([]);
      expect(r.errors.map((e) => e.name).sort()).toEqual(['carol', 'eve', 'frank', 'manual']);
      expect(r.errors.find((e) => e.name === 'eve')!.message).toContain('client/manual');
      expect(await reg.getPeer('client', 'carol')).toMatchObject({ publicKey: k3, ipv4: '10.9.0.3' });
      expect(await reg.getPeer('client', 'bob')).toMatchObject({ publicKey: k4, ipv4: '10.9.0.12' });
      expect(await reg.getPeer('client', 'dave')).toMatchObject({ enabled: false, ipv4: '10.9.0.4' });
      expect(await reg.getPeer('client', 'manual')).toMatchObject({ source: 'cli', publicKey: manual.publicKey });

      // Dropping entries removes exactly that source's peers; B may take the address A gave up.
      r = await reg.replaceSource('clients-file', [
        { kind: 'client', name: 'dave', publicKey: k5, ip: '10.9.0.10' },
        { kind: 'client', name: 'alice', publicKey: k1, ip: '10.9.0.20' },
      ]);
      expect(r.removed.sort()).toEqual(['client/bob', 'client/carol']);
      expect(r.updated.sort()).toEqual(['client/alice', 'client/dave']);
      expect(r.errors).toEqual([]);
      expect((await reg.listPeers()).map((p) => `${p.name}:${p.ipv4}`)).toEqual(['alice:10.9.0.20', 'dave:10.9.0.10', 'manual:10.9.0.2']);

      const s = await reg.changeSeq();
      r = await reg.replaceSource('clients-file', [
        { kind: 'client', name: 'dave', publicKey: k5, ip: '10.9.0.10' },
        { kind: 'client', name: 'alice', publicKey: k1, ip: '10.9.0.20' },
      ]);
      expect(r).toEqual({ added: [], removed: [], updated: [], errors: [] });
      expect((await reg.changesSince(s)).peers).toEqual([]);
    });

    it('reports duplicates within the desired list', async () => {
      const reg = await open(tmp(), '10.9.0.0/24');
      const k = newKey();
      const r = await reg.replaceSource('fleet-api', [
        { kind: 'device', name: 'a', publicKey: k, ip: '10.9.0.5' },
        { kind: 'device', name: 'b', publicKey: k, ip: '10.9.0.6' },
        { kind: 'device', name: 'c', publicKey: newKey(), ip: '10.9.0.5' },
        { kind: 'device', name: 'a', publicKey: newKey() },
      ]);
      expect(r.added).toEqual(['device/a']);
      expect(r.errors.map((e) => e.name)).toEqual(['b', 'c', 'a']);
    });
  });

  describe('agent registration and credentials', () => {
    it('the first registration returns a credential; a re-key needs it (or an operator re-key); the address is kept', async () => {
      const reg = await open(tmp(), '10.9.0.0/24');
      const { token } = await reg.createToken({ maxUses: 10 });
      const k1 = newKey();
      const first = await reg.registerAgent({ token, agentId: 'box', publicKey: k1 });
      expect(first).toMatchObject({ created: true, ipv4: '10.9.0.2', consumed: true });
      expect(first.credential).toMatch(/^[A-Za-z0-9_-]{43}$/);
      // Returning with the same key: no new credential, nothing consumed.
      const back = await reg.registerAgent({ token, agentId: 'box', publicKey: k1 });
      expect(back).toMatchObject({ created: false, rekeyed: false, consumed: false, ipv4: '10.9.0.2' });
      expect(back.credential).toBeUndefined();
      // Another machine with the same agent id: refused, with a message that says what to do.
      const k2 = newKey();
      const stolen = await code(reg.registerAgent({ token, agentId: 'box', publicKey: k2 }));
      expect(stolen.code).toBe('IDENTITY_CONFLICT');
      expect(stolen.message).toMatch(/tsguard hub agent rekey box/);
      expect(stolen.message).toMatch(/--agent-id/);
      expect((await code(reg.registerAgent({ token, agentId: 'box', publicKey: k2, credential: 'wrong'.repeat(8) }))).code).toBe('IDENTITY_CONFLICT');
      expect((await reg.getPeer('agent', 'box'))?.publicKey).toBe(k1);
      // With the credential: re-keyed, same address, a fresh credential (the old one stops working).
      const rekeyed = await reg.registerAgent({ token, agentId: 'box', publicKey: k2, credential: first.credential! });
      expect(rekeyed).toMatchObject({ rekeyed: true, ipv4: '10.9.0.2', previousPublicKey: k1 });
      expect(rekeyed.credential).toBeDefined();
      expect(rekeyed.credential).not.toBe(first.credential);
      expect((await code(reg.registerAgent({ token, agentId: 'box', publicKey: newKey(), credential: first.credential! }))).code).toBe('IDENTITY_CONFLICT');
      // An operator re-key allows one re-key without the credential.
      await reg.allowRekey('box');
      const k3 = newKey();
      const op = await reg.registerAgent({ token, agentId: 'box', publicKey: k3 });
      expect(op).toMatchObject({ rekeyed: true, ipv4: '10.9.0.2' });
      expect((await code(reg.registerAgent({ token, agentId: 'box', publicKey: newKey() }))).code).toBe('IDENTITY_CONFLICT');
      expect((await code(reg.allowRekey('nobody'))).code).toBe('NOT_FOUND');
      // Refusals consumed nothing: 1 create + 2 re-keys.
      expect((await reg.listTokens())[0]!.uses).toBe(3);
    });

    it('stores text with quotes, backslashes, placeholders and non-ASCII exactly (statements a store sends together carry it inlined)', async () => {
      const reg = await open(tmp(), '10.9.0.0/24');
      const odd = `it's a \\ "q" ? $1 $$ E'\\x00' ünï 🦊 ;--`;
      const { token } = await reg.createToken({ maxUses: 5 });
      const k1 = newKey();
      const a = await reg.registerAgent({ token, agentId: 'odd', publicKey: k1, labels: { note: odd } });
      expect((await reg.getPeer('agent', 'odd'))?.labels).toEqual({ note: odd });
      // The credential (stored as its hash, bytes) still opens a re-key.
      const k2 = newKey();
      expect(await reg.registerAgent({ token, agentId: 'odd', publicKey: k2, credential: a.credential!, labels: { note: odd + '2' } })).toMatchObject({ rekeyed: true, ipv4: a.ipv4 });
      expect((await reg.getPeer('agent', 'odd'))?.labels).toEqual({ note: odd + '2' });
      const d = await reg.addPeer(dev('odd-dev', { ip: '10.9.0.77', comment: odd }));
      expect(d).toMatchObject({ ipv4: '10.9.0.77', comment: odd });
      expect((await reg.updatePeer('device', 'odd-dev', { comment: odd + '!' })).comment).toBe(odd + '!');
      expect((await reg.getPeer('device', 'odd-dev'))?.comment).toBe(odd + '!');
    });

    it('records the home hub and lists the hubs', async () => {
      const reg = await open(tmp(), '10.9.0.0/24');
      const hubKey = newKey();
      const h = await reg.announceHub({ publicKey: hubKey, endpoint: '192.0.2.1:51820', apiUrl: 'https://192.0.2.1:8443', certPin: 'sha256:00' });
      const again = await reg.announceHub({ publicKey: hubKey, endpoint: '192.0.2.1:51821', apiUrl: null, certPin: null });
      expect(again.id).toBe(h.id);
      expect(await reg.listHubs()).toEqual([expect.objectContaining({ id: h.id, publicKey: hubKey, endpoint: '192.0.2.1:51821', apiUrl: null })]);
      const { token } = await reg.createToken();
      const a = await reg.registerAgent({ token, agentId: 'a', publicKey: newKey(), homeHub: h.id });
      expect(a.homeHub).toBe(h.id);
    });
  });

  describe('persistence and concurrency', () => {
    it('keeps everything across reopen; refuses a different subnet; allows widening', async () => {
      const dir = tmp();
      const reg = await open(dir, '10.9.0.0/28', { ipv6: 'fd00:9::/64' });
      const a = await reg.addPeer(dev('a', { routes: ['192.168.1.0/24'], labels: { x: 'y' }, comment: 'hi' }));
      await reg.touchLastSeen(a.publicKey, 1234);
      await reg.close();
      expect((await code(reg.listPeers())).code).toBe('STORE_UNAVAILABLE');

      const again = await reopen(dir);
      expect(again.subnet).toBe('10.9.0.0/28');
      expect(again.ipv6Subnet).toBe('fd00:9::/64');
      expect(await again.getPeer('device', 'a')).toEqual({ ...a, lastSeen: 1234, created: undefined, rekeyed: undefined } as never);
      await again.close();

      const e = await code(open(dir, '10.8.0.0/28'));
      expect(e.code).toBe('SUBNET_CHANGED');
      expect(e.message).toMatch(/uses subnet 10\.9\.0\.0\/28.*--subnet 10\.9\.0\.0\/28/);
      expect((await code(open(dir, '10.9.0.0/29'))).code).toBe('SUBNET_CHANGED');
      expect((await code(open(dir, '10.9.0.0/28', { ipv6: 'fd00:8::/64' }))).code).toBe('SUBNET_CHANGED');

      const wide = await open(dir, '10.9.0.0/24');
      expect(wide.subnet).toBe('10.9.0.0/24');
      expect((await wide.getPeer('device', 'a'))?.ipv4).toBe('10.9.0.2');
      expect(wide.capacity).toBe(253);
    });

    it('rows outside the stored subnet are an error at open; NOT_INITIALIZED without create', async () => {
      const dir = tmp();
      await (await open(dir)).close();
      await backend.exec(
        dir,
        `INSERT INTO peers (kind, name, public_key, ipv4, ipv4_int, source, created_at, updated_at) VALUES ('device', 'rogue', 'k', '10.9.1.2', ?, 'cli', 0, 0)`,
        [10 * 2 ** 24 + 9 * 2 ** 16 + 258],
      );
      const e = await code(reopen(dir));
      expect(e.code).toBe('SUBNET_CHANGED');
      expect(e.message).toContain('device/rogue 10.9.1.2');
      const fresh = tmp();
      const n = await code(async () => Registry.open(join(fresh, 'missing'), await backend.opts(fresh)));
      expect(n.code).toBe('NOT_INITIALIZED');
      expect(n.message).toMatch(/tsguard hub up .*--subnet/);
    });

    it('two instances (CLI + hub, or two hubs) see each other; concurrent adds get distinct addresses', async () => {
      const dir = tmp();
      const hub = await open(dir, '10.9.0.0/24');
      const cli = await reopen(dir);
      const s0 = await hub.changeSeq();
      await cli.addPeer(dev('from-cli'));
      expect((await hub.changesSince(s0)).peers).toEqual([{ kind: 'device', name: 'from-cli' }]);
      expect((await hub.getPeer('device', 'from-cli'))?.ipv4).toBe('10.9.0.2');
      await hub.addPeer(dev('from-hub'));
      expect((await cli.listPeers()).map((p) => p.ipv4)).toEqual(['10.9.0.2', '10.9.0.3']);
      await cli.removePeer('device', 'from-hub');
      expect(await hub.listPeers()).toHaveLength(1);
      const both = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? hub : cli).addPeer(dev(`c${i}`))));
      const ips = both.map((r) => r.ipv4);
      expect(new Set(ips).size).toBe(40);
      expect((await hub.listPeers()).length).toBe(41);
    });

    it('random add/remove sequences match an oracle: unique, inside, never reserved, lowest free', async () => {
      const keys = Array.from({ length: 20 }, newKey);
      const names = Array.from({ length: 20 }, (_, i) => `p${i}`);
      const op = fc.oneof(
        fc.record({ t: fc.constant('add' as const), i: fc.nat(19) }),
        fc.record({ t: fc.constant('remove' as const), i: fc.nat(19) }),
        fc.record({ t: fc.constant('addAt' as const), i: fc.nat(19), host: fc.integer({ min: 0, max: 15 }) }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(op, { maxLength: 60 }), async (ops) => {
          // tmpfs when available: this property opens a registry per run and fsyncs every write.
          const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'tsguard-prop-'));
          const reg = await Registry.open(dir, { ...(backend.name === 'postgresql' ? { url: await server!.newDatabase('prop') } : {}), create: { subnet: '10.9.0.0/28' } });
          try {
            const oracle = new Map<string, number>(); // name → host number
            const lowestFree = () => {
              const used = new Set(oracle.values());
              for (let h = 2; h <= 14; h++) if (!used.has(h)) return h;
              return null;
            };
            for (const o of ops) {
              const name = names[o.i]!;
              const key = keys[o.i]!;
              if (o.t === 'remove') {
                if (oracle.has(name)) {
                  await reg.removePeer('device', name);
                  oracle.delete(name);
                } else {
                  expect((await code(reg.removePeer('device', name))).code).toBe('NOT_FOUND');
                }
                continue;
              }
              const ip = o.t === 'addAt' ? `10.9.0.${o.host}` : undefined;
              const run = () => reg.addPeer({ kind: 'device', name, publicKey: key, source: 'cli', ...(ip ? { ip } : {}) });
              // The request is validated first: a reserved address fails even for a known identity.
              if (o.t === 'addAt' && (o.host === 0 || o.host === 15)) {
                expect((await code(run)).code).toBe('INVALID_IP');
                continue;
              }
              if (o.t === 'addAt' && o.host === 1) {
                expect(await code(run)).toMatchObject({ code: 'ADDRESS_TAKEN', owner: 'hub' });
                continue;
              }
              if (oracle.has(name)) {
                expect((await run()).ipv4).toBe(`10.9.0.${oracle.get(name)}`); // idempotent
                continue;
              }
              if (o.t === 'addAt') {
                const h = o.host;
                const takenBy = [...oracle.entries()].find(([, v]) => v === h);
                if (takenBy) expect(await code(run)).toMatchObject({ code: 'ADDRESS_TAKEN', owner: `device/${takenBy[0]}` });
                else {
                  expect((await run()).ipv4).toBe(ip);
                  oracle.set(name, h);
                }
                continue;
              }
              const want = lowestFree();
              if (want === null) {
                expect((await code(run)).code).toBe('SUBNET_EXHAUSTED');
              } else {
                expect((await run()).ipv4).toBe(`10.9.0.${want}`);
                oracle.set(name, want);
              }
            }
            const peers = await reg.listPeers();
            const hosts = peers.map((p) => Number(p.ipv4.split('.')[3]));
            expect(new Set(hosts).size).toBe(hosts.length);
            for (const h of hosts) expect(h >= 2 && h <= 14).toBe(true);
            expect(new Map(peers.map((p) => [p.name, Number(p.ipv4.split('.')[3])]))).toEqual(oracle);
          } finally {
            await reg.close();
            rmSync(dir, { recursive: true, force: true });
          }
        }),
        { numRuns: backend.name === 'postgresql' ? 30 : 60 },
      );
    }, 240_000);
  });
});

describe('Registry on SQLite only', () => {
  async function open(dir: string, subnet = '10.9.0.0/28', extra: Partial<RegistryOpenOptions> = {}): Promise<Registry> {
    const r = await Registry.open(dir, { create: { subnet }, ...extra });
    opened.push(r);
    return r;
  }

  it('data dir 0700 and database 0600', async () => {
    const base = tmp();
    const dir = join(base, 'a', 'b');
    await open(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, 'registry.sqlite')).mode & 0o777).toBe(0o600);
    // An empty pre-created directory of ours is tightened; a non-empty one is left alone.
    const pre = join(base, 'pre');
    mkdirSync(pre, { mode: 0o755 });
    await open(pre);
    expect(statSync(pre).mode & 0o777).toBe(0o700);
    const busy = join(base, 'busy');
    mkdirSync(busy, { mode: 0o755 });
    writeFileSync(join(busy, 'other'), '');
    await open(busy);
    expect(statSync(busy).mode & 0o777).toBe(0o755);
    expect((await code(open(join(base, 'x'), '10.9.0.0/31'))).code).toBe('INVALID_IP');
    expect((await code(open(join(base, 'y'), '10.9.0.1/24'))).message).toMatch(/did you mean 10\.9\.0\.0\/24/);
  });

  it('a writer waits out a short lock of another process, and a long one is STORE_UNAVAILABLE without blocking this thread', async () => {
    const dir = tmp();
    const reg = await open(dir, '10.9.0.0/24', { timeoutMs: 800 });
    const release = await holdLock(join(dir, 'registry.sqlite'));
    // While the lock is held, this thread keeps running: timers fire during the wait.
    let ticks = 0;
    const tick = setInterval(() => ticks++, 20);
    const refused = await code(reg.addPeer(dev('blocked')));
    clearInterval(tick);
    expect(refused.code).toBe('STORE_UNAVAILABLE');
    expect(refused.message).toMatch(/locked|busy/i);
    expect(ticks).toBeGreaterThan(5);
    // A lock released while the writer waits is waited out.
    const pending = reg.addPeer(dev('waited'));
    setTimeout(() => void release(), 200);
    expect((await pending).ipv4).toBe('10.9.0.2');
    // The refused request consumed nothing and the registry works on.
    expect((await reg.addPeer(dev('next'))).ipv4).toBe('10.9.0.3');
    expect((await reg.listPeers()).map((p) => p.name)).toEqual(['next', 'waited']);
  });

  it('creates the hub key once (0600) and loads it afterwards', async () => {
    const dir = tmp();
    expect((await code(async () => loadOrCreateHubKey(join(dir, 'nope')))).code).toBe('NOT_INITIALIZED');
    const k1 = loadOrCreateHubKey(dir);
    expect(k1).toHaveLength(32);
    const path = join(dir, 'hub.key');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, 'utf8').trim()).toBe(keyToBase64(k1));
    expect(loadOrCreateHubKey(dir)).toEqual(k1);
    writeFileSync(path, 'garbage\n');
    expect((await code(async () => loadOrCreateHubKey(dir))).code).toBe('INVALID_KEY');
  });

  it('upgrades a schema 1 and a schema 2 registry in place (agents get a credential at their next registration)', async () => {
    for (const version of [1, 2]) {
      const dir = tmp();
      const reg = await open(dir, '10.41.0.0/24');
      const { token } = await reg.createToken();
      const k = newKey();
      await reg.registerAgent({ token, agentId: 'old', publicKey: k });
      await reg.close();
      // Make it look like a registry written by an older release.
      const db = new Database(join(dir, 'registry.sqlite'));
      for (const t of ['changes', 'registry_state', 'hubs']) db.exec(`DROP TABLE ${t}`);
      db.exec('DROP INDEX peers_with_routes; DROP INDEX quarantine_until');
      for (const c of ['credential_hash', 'rekey_allowed', 'home_hub', ...(version === 1 ? ['last_endpoint'] : [])]) db.exec(`ALTER TABLE peers DROP COLUMN ${c}`);
      db.pragma(`user_version = ${version}`);
      db.close();
      const up = await open(dir, '10.41.0.0/24');
      expect(await up.getPeer('agent', 'old')).toMatchObject({ ipv4: '10.41.0.2', lastEndpoint: null, homeHub: null });
      const again = await up.registerAgent({ token, agentId: 'old', publicKey: k });
      expect(again.credential).toBeDefined();
      expect((await code(up.registerAgent({ token, agentId: 'old', publicKey: newKey() }))).code).toBe('IDENTITY_CONFLICT');
      expect((await up.addPeer(dev('new'))).ipv4).toBe('10.41.0.3');
      await up.close();
      const db2 = new Database(join(dir, 'registry.sqlite'));
      expect(db2.pragma('user_version', { simple: true })).toBe(3);
      db2.close();
    }
  });

  it('refuses a registry written by a newer schema', async () => {
    const dir = tmp();
    await (await open(dir)).close();
    const db = new Database(join(dir, 'registry.sqlite'));
    db.pragma('user_version = 99');
    db.close();
    const e = await code(Registry.open(dir));
    expect(e.code).toBe('STORE_UNAVAILABLE');
    expect(e.message).toMatch(/newer tsguard \(schema 99/);
  });
});
