/**
 * The hub registry: allocation, validation, conflicts, reconciliation of
 * sources, quarantine, persistence and multi-process visibility.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { getCrypto } from '../src/crypto/index.js';
import { keyToBase64 } from '../src/crypto/keys.js';
import { loadOrCreateHubKey, Registry, RegistryError, type RegistryErrorCode } from '../src/hub/registry.js';

const dirs: string[] = [];
const opened: Registry[] = [];
afterEach(() => {
  for (const r of opened.splice(0)) r.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'tsguard-reg-'));
  dirs.push(d);
  return d;
}

function open(dir: string, subnet = '10.9.0.0/28', extra: { ipv6?: string; now?: () => number } = {}): Registry {
  const r = Registry.open(dir, { create: { subnet, ...(extra.ipv6 ? { ipv6: extra.ipv6 } : {}) }, ...(extra.now ? { now: extra.now } : {}) });
  opened.push(r);
  return r;
}

function newKey(): string {
  const c = getCrypto();
  return keyToBase64(c.publicKey(c.generatePrivateKey()));
}

function code(fn: () => unknown): { code: RegistryErrorCode; owner?: string; message: string } {
  try {
    fn();
  } catch (e) {
    if (e instanceof RegistryError) return { code: e.code, owner: e.owner, message: e.message };
    throw e;
  }
  throw new Error('expected a RegistryError');
}

const ZERO_KEY = 'A'.repeat(43) + '=';
const ONE_KEY = Buffer.concat([Buffer.of(1), Buffer.alloc(31)]).toString('base64'); // u = 1: low order

const dev = (name: string, extra: Record<string, unknown> = {}) => ({ kind: 'device' as const, name, publicKey: newKey(), source: 'cli' as const, ...extra });

describe('Registry: allocation', () => {
  it('hands out the lowest free host address, skipping network, hub and broadcast; a /28 has 13', () => {
    const reg = open(tmp());
    expect(reg.subnet).toBe('10.9.0.0/28');
    expect(reg.hubAddress).toBe('10.9.0.1');
    expect(reg.capacity).toBe(13);
    const got: string[] = [];
    for (let i = 0; i < 13; i++) got.push(reg.addPeer(dev(`d${i}`)).ipv4);
    expect(got).toEqual(Array.from({ length: 13 }, (_, i) => `10.9.0.${i + 2}`));
    const e = code(() => reg.addPeer(dev('d13')));
    expect(e.code).toBe('SUBNET_EXHAUSTED');
    expect(e.message).toMatch(/10\.9\.0\.0\/28.*13 host addresses/);
    // A hole is reused, lowest first.
    reg.removePeer('device', 'd5');
    reg.removePeer('device', 'd2');
    expect(reg.addPeer(dev('x')).ipv4).toBe('10.9.0.4');
    expect(reg.addPeer(dev('y')).ipv4).toBe('10.9.0.7');
  });

  it('derives IPv6 from the IPv4 host number', () => {
    const reg = open(tmp(), '10.9.0.0/24', { ipv6: 'fd00:9::/64' });
    expect(reg.hubAddress6).toBe('fd00:9::1');
    const a = reg.addPeer(dev('a'));
    expect([a.ipv4, a.ipv6]).toEqual(['10.9.0.2', 'fd00:9::2']);
    const b = reg.addPeer(dev('b', { ip: '10.9.0.200' }));
    expect(b.ipv6).toBe('fd00:9::c8');
    expect(code(() => open(tmp(), '10.9.0.0/16', { ipv6: 'fd00:9::/120' })).code).toBe('INVALID_IP');
  });

  it('finds the gap quickly in a /16 holding 60 000 peers', () => {
    const dir = tmp();
    open(dir, '10.20.0.0/16').close();
    const db = new Database(join(dir, 'registry.sqlite'));
    const ins = db.prepare(
      `INSERT INTO peers (kind, name, public_key, ipv4, ipv4_int, routes, labels, source, enabled, created_at, updated_at)
       VALUES ('device', ?, ?, ?, ?, '[]', '{}', 'cli', 1, 0, 0)`,
    );
    const base = 10 * 2 ** 24 + 20 * 2 ** 16;
    db.transaction(() => {
      for (let i = 0; i < 60_000; i++) {
        const n = base + 2 + i + (i >= 40_000 ? 1 : 0); // one hole at host 40 002
        ins.run(`bulk${i}`, `key${i}`, `10.20.${Math.floor((n - base) / 256)}.${(n - base) % 256}`, n);
      }
    })();
    db.close();
    const reg = open(dir, '10.20.0.0/16');
    const t0 = performance.now();
    const a = reg.addPeer(dev('gap'));
    const b = reg.addPeer(dev('after'));
    const ms = performance.now() - t0;
    if (process.env.TSGUARD_BENCH) console.log(`two allocations among 60k rows: ${ms.toFixed(1)} ms`);
    expect(a.ipv4).toBe(`10.20.${Math.floor(40_002 / 256)}.${40_002 % 256}`);
    expect(b.ipv4).toBe(`10.20.${Math.floor(60_003 / 256)}.${60_003 % 256}`);
    expect(ms).toBeLessThan(1000);
  });
});

describe('Registry: identities and keys', () => {
  it('re-adding the same identity with the same key is idempotent', () => {
    const reg = open(tmp());
    const key = newKey();
    const a = reg.addPeer({ kind: 'device', name: 'a', publicKey: key, source: 'cli' });
    expect(a.created).toBe(true);
    const v = reg.dataVersion();
    const again = reg.addPeer({ kind: 'device', name: 'a', publicKey: key, source: 'cli', comment: 'ignored' });
    expect(again).toMatchObject({ created: false, rekeyed: false, ipv4: a.ipv4, id: a.id, comment: null });
    expect(reg.dataVersion()).toBe(v);
    expect(reg.listPeers()).toHaveLength(1);
  });

  it('a new key for a known identity keeps the address', () => {
    const reg = open(tmp());
    const k1 = newKey();
    const k2 = newKey();
    const a = reg.addPeer({ kind: 'client', name: 'alice', publicKey: k1, source: 'cli' });
    reg.addPeer(dev('other'));
    const r = reg.addPeer({ kind: 'client', name: 'alice', publicKey: k2, source: 'cli' });
    expect(r).toMatchObject({ rekeyed: true, created: false, previousPublicKey: k1, publicKey: k2, ipv4: a.ipv4 });
    expect(reg.findByKey(k1)).toBeNull();
    expect(reg.findByKey(k2)?.name).toBe('alice');
  });

  it('the same name may exist once per kind', () => {
    const reg = open(tmp());
    reg.addPeer(dev('x'));
    const c = reg.addPeer({ kind: 'client', name: 'x', publicKey: newKey(), source: 'cli' });
    expect(c.ipv4).toBe('10.9.0.3');
    expect(reg.listPeers().map((p) => `${p.kind}/${p.name}`)).toEqual(['client/x', 'device/x']);
  });

  it('a key used by another identity is KEY_CONFLICT naming it', () => {
    const reg = open(tmp());
    const key = newKey();
    reg.addPeer({ kind: 'device', name: 'a', publicKey: key, source: 'cli' });
    const e = code(() => reg.addPeer({ kind: 'client', name: 'b', publicKey: key, source: 'cli' }));
    expect(e).toMatchObject({ code: 'KEY_CONFLICT', owner: 'device/a' });
    expect(e.message).toContain('device/a');
    const k2 = newKey();
    reg.addPeer({ kind: 'device', name: 'c', publicKey: k2, source: 'cli' });
    expect(code(() => reg.updatePeer('device', 'c', { publicKey: key }))).toMatchObject({ code: 'KEY_CONFLICT', owner: 'device/a' });
  });

  it('invalid names and keys (incl. all-zero and low-order) are rejected and consume nothing', () => {
    const reg = open(tmp());
    const before = reg.dataVersion();
    expect(code(() => reg.addPeer(dev('bad name'))).code).toBe('INVALID_NAME');
    expect(code(() => reg.addPeer(dev('x'.repeat(64)))).code).toBe('INVALID_NAME');
    expect(code(() => reg.addPeer(dev(''))).code).toBe('INVALID_NAME');
    for (const k of [ZERO_KEY, ONE_KEY, 'not-a-key', 'AAAA', Buffer.alloc(31, 7).toString('base64')]) {
      const e = code(() => reg.addPeer({ kind: 'device', name: 'k', publicKey: k, source: 'cli' }));
      expect(e.code).toBe('INVALID_KEY');
    }
    expect(code(() => reg.addPeer(dev('r', { routes: ['nonsense'] }))).code).toBe('INVALID_IP');
    expect(reg.dataVersion()).toBe(before);
    expect(reg.listPeers()).toEqual([]);
    expect(reg.addPeer(dev('good')).ipv4).toBe('10.9.0.2');
  });
});

describe('Registry: admin-chosen addresses and routes', () => {
  it('accepts a free address inside the subnet and rejects the rest naming the owner', () => {
    const reg = open(tmp());
    expect(reg.addPeer(dev('a', { ip: '10.9.0.2' })).ipv4).toBe('10.9.0.2');
    expect(reg.addPeer(dev('b', { ip: '10.9.0.9' })).ipv4).toBe('10.9.0.9');
    expect(reg.addPeer(dev('c')).ipv4).toBe('10.9.0.3');
    expect(code(() => reg.addPeer(dev('d', { ip: '10.9.0.9' })))).toMatchObject({ code: 'ADDRESS_TAKEN', owner: 'device/b' });
    expect(code(() => reg.addPeer(dev('d', { ip: '10.9.0.1' })))).toMatchObject({ code: 'ADDRESS_TAKEN', owner: 'hub' });
    expect(code(() => reg.addPeer(dev('d', { ip: '10.9.0.0' }))).code).toBe('INVALID_IP');
    expect(code(() => reg.addPeer(dev('d', { ip: '10.9.0.15' }))).code).toBe('INVALID_IP');
    expect(code(() => reg.addPeer(dev('d', { ip: '10.9.1.5' }))).message).toMatch(/outside the hub subnet 10\.9\.0\.0\/28/);
    expect(code(() => reg.addPeer(dev('d', { ip: 'fd00::5' }))).code).toBe('INVALID_IP');
    expect(code(() => reg.updatePeer('device', 'c', { ip: '10.9.0.2' }))).toMatchObject({ code: 'ADDRESS_TAKEN', owner: 'device/a' });
    const moved = reg.updatePeer('device', 'c', { ip: '10.9.0.12' });
    expect(moved.ipv4).toBe('10.9.0.12');
    expect(reg.addPeer(dev('e')).ipv4).toBe('10.9.0.3');
  });

  it('routes must not overlap other peers, their addresses, or the hub', () => {
    const reg = open(tmp(), '10.9.0.0/24', { ipv6: 'fd00:9::/64' });
    const a = reg.addPeer(dev('a', { routes: ['192.168.10.0/24', 'fd10::/64'] }));
    expect(a.routes).toEqual(['192.168.10.0/24', 'fd10::/64']);
    reg.addPeer(dev('b'));
    expect(code(() => reg.addPeer(dev('c', { routes: ['192.168.10.128/25'] })))).toMatchObject({ code: 'OVERLAP', owner: 'device/a' });
    expect(code(() => reg.addPeer(dev('c', { routes: ['192.168.0.0/16'] })))).toMatchObject({ code: 'OVERLAP', owner: 'device/a' });
    expect(code(() => reg.addPeer(dev('c', { routes: ['fd10::/48'] })))).toMatchObject({ code: 'OVERLAP', owner: 'device/a' });
    expect(code(() => reg.addPeer(dev('c', { routes: ['10.9.0.3/32'] })))).toMatchObject({ code: 'OVERLAP', owner: 'device/b' });
    expect(code(() => reg.addPeer(dev('c', { routes: ['10.0.0.0/8'] })))).toMatchObject({ code: 'OVERLAP', owner: 'hub' });
    expect(code(() => reg.addPeer(dev('c', { routes: ['fd00:9::3/128'] })))).toMatchObject({ code: 'OVERLAP', owner: 'device/b' });
    expect(code(() => reg.addPeer(dev('c', { routes: ['10.9.0.128/25'] })))).toMatchObject({ code: 'OVERLAP', owner: 'hub' });
    expect(code(() => reg.addPeer(dev('c', { routes: ['192.168.20.1/24'] }))).message).toMatch(/did you mean 192\.168\.20\.0\/24/);
    expect(code(() => reg.addPeer(dev('c', { routes: ['172.16.0.0/12', '172.16.5.0/24'] }))).code).toBe('OVERLAP');
    // Nothing above consumed an address.
    expect(reg.addPeer(dev('c', { routes: ['192.168.11.0/24'] })).ipv4).toBe('10.9.0.4');
    // A peer may change its own routes freely, and not into another's.
    expect(reg.updatePeer('device', 'a', { routes: ['192.168.8.0/23', '172.20.0.0/16'] }).routes).toEqual(['192.168.8.0/23', '172.20.0.0/16']);
    expect(code(() => reg.updatePeer('device', 'a', { routes: ['192.168.10.0/23'] }))).toMatchObject({ code: 'OVERLAP', owner: 'device/c' });
    expect(reg.updatePeer('device', 'a', { routes: ['192.168.10.0/24'] }).routes).toEqual(['192.168.10.0/24']);
    expect(code(() => reg.updatePeer('device', 'c', { routes: ['192.168.10.7/32'] }))).toMatchObject({ code: 'OVERLAP', owner: 'device/a' });
  });
});

describe('Registry: update, remove, quarantine', () => {
  it('updates fields, reports NOT_FOUND, and bumps dataVersion only on change', () => {
    const reg = open(tmp());
    reg.addPeer(dev('a'));
    const v0 = reg.dataVersion();
    const r = reg.updatePeer('device', 'a', { enabled: false, comment: 'lab rack 3', labels: { site: 'berlin' } });
    expect(r).toMatchObject({ enabled: false, comment: 'lab rack 3', labels: { site: 'berlin' } });
    const v1 = reg.dataVersion();
    expect(v1).not.toBe(v0);
    reg.updatePeer('device', 'a', { enabled: false });
    expect(reg.dataVersion()).toBe(v1);
    expect(code(() => reg.updatePeer('device', 'nope', { enabled: true })).code).toBe('NOT_FOUND');
    expect(code(() => reg.removePeer('client', 'a')).code).toBe('NOT_FOUND');
    expect(reg.getPeer('device', 'a')?.enabled).toBe(false);
  });

  it('quarantines a removed address for the given time', () => {
    let now = 1_000_000;
    const reg = open(tmp(), '10.9.0.0/28', { now: () => now });
    reg.addPeer(dev('a'));
    reg.addPeer(dev('b'));
    reg.removePeer('device', 'a', { quarantineSeconds: 60 });
    expect(reg.addPeer(dev('c')).ipv4).toBe('10.9.0.4');
    expect(code(() => reg.addPeer(dev('d', { ip: '10.9.0.2' })))).toMatchObject({ code: 'ADDRESS_TAKEN', owner: 'device/a' });
    // The former owner may take it back explicitly.
    expect(reg.addPeer(dev('a', { ip: '10.9.0.2' })).ipv4).toBe('10.9.0.2');
    reg.removePeer('device', 'a', { quarantineSeconds: 60 });
    now += 61_000;
    expect(reg.addPeer(dev('e')).ipv4).toBe('10.9.0.2');
    // Default: no quarantine.
    reg.removePeer('device', 'e');
    expect(reg.addPeer(dev('f')).ipv4).toBe('10.9.0.2');
  });

  it('records last_seen without moving backwards', () => {
    const reg = open(tmp());
    const a = reg.addPeer(dev('a'));
    const v = reg.dataVersion();
    expect(reg.touchLastSeen(a.publicKey, 5000)).toBe(true);
    expect(reg.touchLastSeen(a.publicKey, 4000)).toBe(false);
    expect(reg.touchLastSeen(newKey(), 4000)).toBe(false);
    expect(reg.getPeer('device', 'a')?.lastSeen).toBe(5000);
    expect(reg.dataVersion()).toBe(v);
  });
});

describe('Registry: replaceSource', () => {
  it('adds, removes and updates one source in one go, skipping a bad entry', () => {
    const reg = open(tmp(), '10.9.0.0/24');
    const manual = reg.addPeer({ kind: 'client', name: 'manual', publicKey: newKey(), source: 'cli' });
    const [k1, k2, k3, k4, k5] = [newKey(), newKey(), newKey(), newKey(), newKey()];
    let r = reg.replaceSource('clients-file', [
      { kind: 'client', name: 'alice', publicKey: k1, ip: '10.9.0.10' },
      { kind: 'client', name: 'bob', publicKey: k2, ip: '10.9.0.11', comment: 'bob phone' },
      { kind: 'client', name: 'carol', publicKey: k3 },
    ]);
    expect(r).toEqual({ added: ['client/alice', 'client/bob', 'client/carol'], removed: [], updated: [], errors: [] });
    expect(reg.getPeer('client', 'carol')).toMatchObject({ ipv4: '10.9.0.3', source: 'clients-file' });

    const v = reg.dataVersion();
    r = reg.replaceSource('clients-file', [
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
    expect(reg.getPeer('client', 'carol')).toMatchObject({ publicKey: k3, ipv4: '10.9.0.3' });
    expect(reg.getPeer('client', 'bob')).toMatchObject({ publicKey: k4, ipv4: '10.9.0.12' });
    expect(reg.getPeer('client', 'dave')).toMatchObject({ enabled: false, ipv4: '10.9.0.4' });
    expect(reg.getPeer('client', 'manual')).toMatchObject({ source: 'cli', publicKey: manual.publicKey });
    expect(reg.dataVersion()).not.toBe(v);

    // Dropping entries removes exactly that source's peers; B may take the address A gave up.
    r = reg.replaceSource('clients-file', [
      { kind: 'client', name: 'dave', publicKey: k5, ip: '10.9.0.10' },
      { kind: 'client', name: 'alice', publicKey: k1, ip: '10.9.0.20' },
    ]);
    expect(r.removed.sort()).toEqual(['client/bob', 'client/carol']);
    expect(r.updated.sort()).toEqual(['client/alice', 'client/dave']);
    expect(r.errors).toEqual([]);
    expect(reg.listPeers().map((p) => `${p.name}:${p.ipv4}`)).toEqual(['alice:10.9.0.20', 'dave:10.9.0.10', 'manual:10.9.0.2']);

    const v2 = reg.dataVersion();
    r = reg.replaceSource('clients-file', [
      { kind: 'client', name: 'dave', publicKey: k5, ip: '10.9.0.10' },
      { kind: 'client', name: 'alice', publicKey: k1, ip: '10.9.0.20' },
    ]);
    expect(r).toEqual({ added: [], removed: [], updated: [], errors: [] });
    expect(reg.dataVersion()).toBe(v2);
  });

  it('reports duplicates within the desired list', () => {
    const reg = open(tmp(), '10.9.0.0/24');
    const k = newKey();
    const r = reg.replaceSource('fleet-api', [
      { kind: 'device', name: 'a', publicKey: k, ip: '10.9.0.5' },
      { kind: 'device', name: 'b', publicKey: k, ip: '10.9.0.6' },
      { kind: 'device', name: 'c', publicKey: newKey(), ip: '10.9.0.5' },
      { kind: 'device', name: 'a', publicKey: newKey() },
    ]);
    expect(r.added).toEqual(['device/a']);
    expect(r.errors.map((e) => e.name)).toEqual(['b', 'c', 'a']);
  });
});

describe('Registry: persistence and processes', () => {
  it('keeps everything across reopen; refuses a different subnet; allows widening', () => {
    const dir = tmp();
    const reg = open(dir, '10.9.0.0/28', { ipv6: 'fd00:9::/64' });
    const a = reg.addPeer(dev('a', { routes: ['192.168.1.0/24'], labels: { x: 'y' }, comment: 'hi' }));
    reg.touchLastSeen(a.publicKey, 1234);
    reg.close();
    expect(code(() => reg.listPeers()).code).toBe('STORE_UNAVAILABLE');

    const again = Registry.open(dir);
    opened.push(again);
    expect(again.subnet).toBe('10.9.0.0/28');
    expect(again.ipv6Subnet).toBe('fd00:9::/64');
    expect(again.getPeer('device', 'a')).toEqual({ ...a, lastSeen: 1234, created: undefined, rekeyed: undefined } as never);
    again.close();

    const e = code(() => open(dir, '10.8.0.0/28'));
    expect(e.code).toBe('SUBNET_CHANGED');
    expect(e.message).toMatch(/uses subnet 10\.9\.0\.0\/28.*--subnet 10\.9\.0\.0\/28/);
    expect(code(() => open(dir, '10.9.0.0/29')).code).toBe('SUBNET_CHANGED');
    expect(code(() => open(dir, '10.9.0.0/28', { ipv6: 'fd00:8::/64' })).code).toBe('SUBNET_CHANGED');

    const wide = open(dir, '10.9.0.0/24');
    expect(wide.subnet).toBe('10.9.0.0/24');
    expect(wide.getPeer('device', 'a')?.ipv4).toBe('10.9.0.2');
    expect(wide.capacity).toBe(253);
  });

  it('rows outside the stored subnet are an error at open', () => {
    const dir = tmp();
    open(dir).close();
    const db = new Database(join(dir, 'registry.sqlite'));
    db.prepare(
      `INSERT INTO peers (kind, name, public_key, ipv4, ipv4_int, source, created_at, updated_at) VALUES ('device', 'rogue', 'k', '10.9.1.2', ?, 'cli', 0, 0)`,
    ).run(10 * 2 ** 24 + 9 * 2 ** 16 + 258);
    db.close();
    const e = code(() => Registry.open(dir));
    expect(e.code).toBe('SUBNET_CHANGED');
    expect(e.message).toContain('device/rogue 10.9.1.2');
  });

  it('NOT_INITIALIZED without create; data dir 0700 and database 0600', () => {
    const base = tmp();
    const e = code(() => Registry.open(join(base, 'missing')));
    expect(e.code).toBe('NOT_INITIALIZED');
    expect(e.message).toMatch(/tsguard hub up .*--subnet/);
    const dir = join(base, 'a', 'b');
    open(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, 'registry.sqlite')).mode & 0o777).toBe(0o600);
    // An empty pre-created directory of ours is tightened; a non-empty one is left alone.
    const pre = join(base, 'pre');
    mkdirSync(pre, { mode: 0o755 });
    open(pre);
    expect(statSync(pre).mode & 0o777).toBe(0o700);
    const busy = join(base, 'busy');
    mkdirSync(busy, { mode: 0o755 });
    writeFileSync(join(busy, 'other'), '');
    open(busy);
    expect(statSync(busy).mode & 0o777).toBe(0o755);
    expect(code(() => open(join(base, 'x'), '10.9.0.0/31')).code).toBe('INVALID_IP');
    expect(code(() => open(join(base, 'y'), '10.9.0.1/24')).message).toMatch(/did you mean 10\.9\.0\.0\/24/);
  });

  it('two instances on one directory (CLI + hub) see each other and dataVersion moves', () => {
    const dir = tmp();
    const hub = open(dir, '10.9.0.0/24');
    const cli = Registry.open(dir);
    opened.push(cli);
    const v0 = hub.dataVersion();
    const c0 = cli.dataVersion();
    cli.addPeer(dev('from-cli'));
    expect(hub.dataVersion()).not.toBe(v0);
    expect(hub.getPeer('device', 'from-cli')?.ipv4).toBe('10.9.0.2');
    const v1 = hub.dataVersion();
    expect(hub.dataVersion()).toBe(v1);
    hub.addPeer(dev('from-hub'));
    expect(hub.dataVersion()).not.toBe(v1); // own writes count too
    expect(cli.dataVersion()).not.toBe(c0);
    expect(cli.listPeers().map((p) => p.ipv4)).toEqual(['10.9.0.2', '10.9.0.3']);
    cli.removePeer('device', 'from-hub');
    expect(hub.findByKey(hub.getPeer('device', 'from-cli')!.publicKey)?.name).toBe('from-cli');
    expect(hub.listPeers()).toHaveLength(1);
  });

  it('a writer waits for another process holding the write lock (busy_timeout)', async () => {
    const dir = tmp();
    const reg = open(dir, '10.9.0.0/24');
    const script = `
      const Database = require('better-sqlite3');
      const db = new Database(process.argv[1]);
      db.exec('BEGIN IMMEDIATE');
      db.prepare("INSERT INTO meta (key, value) VALUES ('child', 'was here')").run();
      process.stdout.write('locked\\n');
      setTimeout(() => { db.exec('COMMIT'); db.close(); }, 400);`;
    const child = spawn(process.execPath, ['-e', script, join(dir, 'registry.sqlite')], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    const t0 = Date.now();
    const a = reg.addPeer(dev('waited'));
    expect(Date.now() - t0).toBeGreaterThan(200);
    expect(a.ipv4).toBe('10.9.0.2');
    await new Promise((r) => child.once('exit', r));
  });

  it('creates the hub key once (0600) and loads it afterwards', () => {
    const dir = tmp();
    expect(code(() => loadOrCreateHubKey(join(dir, 'nope'))).code).toBe('NOT_INITIALIZED');
    const k1 = loadOrCreateHubKey(dir);
    expect(k1).toHaveLength(32);
    const path = join(dir, 'hub.key');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, 'utf8').trim()).toBe(keyToBase64(k1));
    expect(loadOrCreateHubKey(dir)).toEqual(k1);
    writeFileSync(path, 'garbage\n');
    const e = code(() => loadOrCreateHubKey(dir));
    expect(e.code).toBe('INVALID_KEY');
  });
});

describe('Registry: property', () => {
  it('random add/remove sequences match an oracle: unique, inside, never reserved, lowest free', () => {
    const keys = Array.from({ length: 20 }, newKey);
    const names = Array.from({ length: 20 }, (_, i) => `p${i}`);
    const op = fc.oneof(
      fc.record({ t: fc.constant('add' as const), i: fc.nat(19) }),
      fc.record({ t: fc.constant('remove' as const), i: fc.nat(19) }),
      fc.record({ t: fc.constant('addAt' as const), i: fc.nat(19), host: fc.integer({ min: 0, max: 15 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        // tmpfs when available: this property opens a database per run and fsyncs every write.
        const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'tsguard-prop-'));
        const reg = Registry.open(dir, { create: { subnet: '10.9.0.0/28' } });
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
                reg.removePeer('device', name);
                oracle.delete(name);
              } else {
                expect(code(() => reg.removePeer('device', name)).code).toBe('NOT_FOUND');
              }
              continue;
            }
            const ip = o.t === 'addAt' ? `10.9.0.${o.host}` : undefined;
            const run = () => reg.addPeer({ kind: 'device', name, publicKey: key, source: 'cli', ...(ip ? { ip } : {}) });
            // The request is validated first: a reserved address fails even for a known identity.
            if (o.t === 'addAt' && (o.host === 0 || o.host === 15)) {
              expect(code(run).code).toBe('INVALID_IP');
              continue;
            }
            if (o.t === 'addAt' && o.host === 1) {
              expect(code(run)).toMatchObject({ code: 'ADDRESS_TAKEN', owner: 'hub' });
              continue;
            }
            if (oracle.has(name)) {
              expect(run().ipv4).toBe(`10.9.0.${oracle.get(name)}`); // idempotent
              continue;
            }
            if (o.t === 'addAt') {
              const h = o.host;
              const takenBy = [...oracle.entries()].find(([, v]) => v === h);
              if (takenBy) expect(code(run)).toMatchObject({ code: 'ADDRESS_TAKEN', owner: `device/${takenBy[0]}` });
              else {
                expect(run().ipv4).toBe(ip);
                oracle.set(name, h);
              }
              continue;
            }
            const want = lowestFree();
            if (want === null) {
              expect(code(run).code).toBe('SUBNET_EXHAUSTED');
            } else {
              expect(run().ipv4).toBe(`10.9.0.${want}`);
              oracle.set(name, want);
            }
          }
          const peers = reg.listPeers();
          const hosts = peers.map((p) => Number(p.ipv4.split('.')[3]));
          expect(new Set(hosts).size).toBe(hosts.length);
          for (const h of hosts) expect(h >= 2 && h <= 14).toBe(true);
          expect(new Map(peers.map((p) => [p.name, Number(p.ipv4.split('.')[3])]))).toEqual(oracle);
        } finally {
          reg.close();
          rmSync(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 80 },
    );
  }, 180_000);
});

describe('last endpoint (schema 2)', () => {
  it('stores the endpoint of the last handshake, keeps it when none is given, and survives a reopen', () => {
    const dir = tmp();
    const reg = Registry.open(dir, { create: { subnet: '10.40.0.0/24' } });
    const key = newKey();
    reg.addPeer({ kind: 'device', name: 'd1', publicKey: key, source: 'cli' });
    expect(reg.getPeer('device', 'd1')!.lastEndpoint).toBeNull();
    reg.touchLastSeen(key, 1000, '192.0.2.7:51820');
    reg.touchLastSeen(key, 2000); // no endpoint: keep the stored one
    expect(reg.getPeer('device', 'd1')).toMatchObject({ lastSeen: 2000, lastEndpoint: '192.0.2.7:51820' });
    reg.close();
    const again = Registry.open(dir);
    expect(again.getPeer('device', 'd1')!.lastEndpoint).toBe('192.0.2.7:51820');
    again.close();
  });

  it('upgrades a version 1 registry in place', () => {
    const dir = tmp();
    const reg = Registry.open(dir, { create: { subnet: '10.41.0.0/24' } });
    reg.addPeer({ kind: 'device', name: 'old', publicKey: newKey(), source: 'cli' });
    reg.close();
    // Make it look like a registry written before the column existed.
    const db = new Database(join(dir, 'registry.sqlite'));
    db.exec('ALTER TABLE peers DROP COLUMN last_endpoint');
    db.pragma('user_version = 1');
    db.close();
    const up = Registry.open(dir);
    expect(up.getPeer('device', 'old')).toMatchObject({ ipv4: '10.41.0.2', lastEndpoint: null });
    up.close();
  });
});
