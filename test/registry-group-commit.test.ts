/**
 * Group commit of the registry (src/hub/registry/group-commit.ts): concurrent
 * changes share one transaction, each in its own savepoint, and are answered
 * after its commit. On both backends (SQLite: the whole group in the worker;
 * PostgreSQL: statement by statement from this thread):
 * - refusals inside a group consume nothing and do not roll back the others;
 * - a job that aborts the transaction (a constraint violation) is rejected
 *   alone, the others are committed;
 * - a group that has run for its time budget leaves the rest to the next one;
 * - a group whose transaction fails (locked store, a deadline passed before
 *   the commit) answers none of its jobs as accepted, and stores none.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GROUP_BUDGET_MS, GroupCommit, storeRunner } from '../src/hub/registry/group-commit.js';
import { Registry, RegistryError, type RegistryOpenOptions } from '../src/hub/registry/index.js';
import type { RegistryStore } from '../src/hub/registry/store.js';
import { SqliteStore } from '../src/hub/registry/sqlite-store.js';
import { sqliteExecutor, type ExecutorAnswer } from '../src/hub/registry/sqlite-worker.js';
import { parseSubnet4 } from '../src/hub/registry/subnet.js';
import { usePostgres } from './helpers/postgres.js';
import { holdLock, newKey } from './helpers/registry.js';

const dirs: string[] = [];
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'tsguard-group-'));
  dirs.push(d);
  return d;
}

const postgres = usePostgres('registry-group-commit.test.ts');
const pgAvailable = postgres.available;

interface Backend {
  name: 'sqlite' | 'postgresql';
  opts(): Promise<RegistryOpenOptions>;
  /** A bare store on a fresh database. */
  store(): Promise<RegistryStore>;
}

const backends: Backend[] = [
  {
    name: 'sqlite',
    opts: async () => ({}),
    store: async () => {
      const dir = tmp();
      // Registry.open creates the file (and the schema, unused here).
      await (await Registry.open(dir, { create: { subnet: '10.9.0.0/24' } })).close();
      return SqliteStore.open(join(dir, 'registry.sqlite'), 2000);
    },
  },
  {
    name: 'postgresql',
    opts: async () => ({ url: await postgres.server().newDatabase() }),
    store: async () => {
      const { PostgresStore } = await import('../src/hub/registry/postgres-store.js');
      return PostgresStore.open(await postgres.server().newDatabase(), { timeoutMs: 2000 });
    },
  },
];

async function open(b: Backend, subnet = '10.9.0.0/24', extra: RegistryOpenOptions = {}): Promise<{ reg: Registry; dir: string }> {
  const dir = tmp();
  const reg = await Registry.open(dir, { create: { subnet }, ...(await b.opts()), ...extra });
  closers.push(() => reg.close());
  return { reg, dir };
}

const host = (ip: string) => Number(ip.split('.')[3]);

for (const b of backends) {
  describe.skipIf(b.name === 'postgresql' && !pgAvailable)(`group commit (${b.name})`, () => {
    it('refusals inside a group consume nothing and do not roll back the registrations beside them', async () => {
      const { reg } = await open(b);
      const { token, info } = await reg.createToken({ ttlSeconds: 0 });
      const wrongSecret = `${info.id}.${'x'.repeat(43)}`;
      const first = await reg.registerAgent({ token, agentId: 'owner', publicKey: newKey() });
      expect(first.ipv4).toBe('10.9.0.2');
      const ownerKey = first.publicKey;
      // Submitted in one tick: one group, refusals mixed in.
      const jobs: Array<{ kind: 'ok' | 'UNAUTHORIZED' | 'IDENTITY_CONFLICT' | 'KEY_CONFLICT'; p: Promise<unknown> }> = [];
      for (let i = 0; i < 40; i++) {
        const kind = i % 10 === 3 ? 'UNAUTHORIZED' : i % 10 === 6 ? 'IDENTITY_CONFLICT' : i % 10 === 9 ? 'KEY_CONFLICT' : 'ok';
        const input =
          kind === 'UNAUTHORIZED'
            ? { token: wrongSecret, agentId: `a${i}`, publicKey: newKey() }
            : kind === 'IDENTITY_CONFLICT'
              ? { token, agentId: 'owner', publicKey: newKey() }
              : kind === 'KEY_CONFLICT'
                ? { token, agentId: `a${i}`, publicKey: ownerKey }
                : { token, agentId: `a${i}`, publicKey: newKey() };
        jobs.push({ kind, p: reg.registerAgent(input) });
      }
      const settled = await Promise.allSettled(jobs.map((j) => j.p));
      const accepted: string[] = [];
      settled.forEach((s, i) => {
        const kind = jobs[i]!.kind;
        if (kind === 'ok') {
          expect(s.status).toBe('fulfilled');
          accepted.push((s as PromiseFulfilledResult<{ ipv4: string }>).value.ipv4);
        } else {
          expect(s.status).toBe('rejected');
          const e = (s as PromiseRejectedResult).reason as RegistryError;
          expect(e).toBeInstanceOf(RegistryError);
          expect(e.code).toBe(kind);
        }
      });
      // The accepted ones hold exactly the next addresses: no refusal consumed one.
      expect(accepted.map(host).sort((x, y) => x - y)).toEqual(Array.from({ length: 28 }, (_, i) => 3 + i));
      const peers = await reg.listPeers();
      expect(peers).toHaveLength(29);
      expect((await reg.getPeer('agent', 'owner'))!.publicKey).toBe(ownerKey);
      const t = (await reg.listTokens()).find((x) => x.id === info.id)!;
      expect(t.uses).toBe(29);
      // The change log names every accepted agent.
      const changes = await reg.changesSince(0);
      for (const p of peers) expect(changes.peers.some((c) => c.name === p.name)).toBe(true);
    });

    it('a job that aborts the transaction is rejected alone; the others of its group are committed', async () => {
      const store = await b.store();
      closers.push(() => store.close());
      await store.write('setup', (tx) => tx.run('CREATE TABLE t (k TEXT PRIMARY KEY)'));
      const group = new GroupCommit(storeRunner(store));
      const put = (...keys: string[]) =>
        group.run('test', async (tx) => {
          for (const k of keys) await tx.run('INSERT INTO t (k) VALUES (?)', [k]);
          return keys.join();
        });
      const refuse = group.run('test', async (tx) => {
        await tx.run('INSERT INTO t (k) VALUES (?)', ['refused']);
        throw new RegistryError('INVALID_VALUE', 'refused by the test');
      });
      const results = await Promise.allSettled([put('a'), put('b', 'b'), refuse, put('c')]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled']);
      expect((results[1] as PromiseRejectedResult).reason).not.toBeInstanceOf(RegistryError); // the constraint violation itself
      expect(((results[2] as PromiseRejectedResult).reason as RegistryError).code).toBe('INVALID_VALUE');
      const rows = await store.read('check', (tx) => tx.all<{ k: string }>('SELECT k FROM t ORDER BY k'));
      expect(rows.map((r) => r.k)).toEqual(['a', 'c']);
    });

    it('a group that has run for its time budget leaves the remaining jobs to the next transaction', async () => {
      const store = await b.store();
      closers.push(() => store.close());
      await store.write('setup', (tx) => tx.run('CREATE TABLE t (k TEXT PRIMARY KEY)'));
      // The transactions the runner opens, by name (the real store runs them).
      const transactions: string[] = [];
      const watched = { write: (what: string, fn: Parameters<RegistryStore['write']>[1]) => (transactions.push(what), store.write(what, fn)) } as RegistryStore;
      const group = new GroupCommit(storeRunner(watched));
      const put = (k: string, holdMs: number) =>
        group.run(k, async (tx) => {
          await tx.run('INSERT INTO t (k) VALUES (?)', [k]);
          if (holdMs > 0) await new Promise((r) => setTimeout(r, holdMs));
          return k;
        });
      expect(await Promise.all([put('slow', GROUP_BUDGET_MS + 50), put('a', 0), put('b', 0)])).toEqual(['slow', 'a', 'b']);
      expect(transactions).toEqual(['slow and 2 more in one transaction', 'a and 1 more in one transaction']);
      const rows = await store.read('check', (tx) => tx.all<{ k: string }>('SELECT k FROM t ORDER BY k'));
      expect(rows.map((r) => r.k)).toEqual(['a', 'b', 'slow']);
    });
  });
}

describe('group commit (sqlite): a failed transaction answers none of its group as accepted', () => {
  it('a locked store refuses the whole group with STORE_UNAVAILABLE, stores none, and works on after the lock', async () => {
    const { reg, dir } = await open(backends[0]!, '10.9.0.0/24', { timeoutMs: 800 });
    const { token, info } = await reg.createToken({ ttlSeconds: 0 });
    const release = await holdLock(join(dir, 'registry.sqlite'));
    const settled = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => reg.registerAgent({ token, agentId: `a${i}`, publicKey: newKey() })));
    await release();
    for (const s of settled) {
      expect(s.status).toBe('rejected');
      expect(((s as PromiseRejectedResult).reason as RegistryError).code).toBe('STORE_UNAVAILABLE');
    }
    expect(await reg.listPeers()).toEqual([]);
    expect((await reg.listTokens()).find((t) => t.id === info.id)!.uses).toBe(0);
    expect((await reg.registerAgent({ token, agentId: 'after', publicKey: newKey() })).ipv4).toBe('10.9.0.2');
  });

  it('a group still running at its deadline is rolled back instead of committed', async () => {
    const { reg, dir } = await open(backends[0]!);
    const { token } = await reg.createToken({ ttlSeconds: 0 });
    await reg.close();
    const require = createRequire(import.meta.url);
    const ex = sqliteExecutor(require, { path: join(dir, 'registry.sqlite'), driver: require.resolve('better-sqlite3'), busyTimeoutMs: 1000 });
    if (!ex.ready) throw new Error(ex.error.message);
    const job = (name: string) => ({
      proc: 'registerAgent' as const,
      args: { token, name, key: newKey(), labels: undefined, credential: undefined, homeHub: null },
      now: Date.now(),
    });
    const geometry = { v4: parseSubnet4('10.9.0.0/24'), v6: null };
    const late: ExecutorAnswer = await ex.handle({ id: 1, op: 'group', jobs: [job('x'), job('y')], geometry, deadline: Date.now() - 1 });
    expect(late.error?.message).toMatch(/rolled back/);
    expect(late.failed).toBe(2);
    expect(await ex.handle({ id: 2, op: 'get', sql: 'SELECT COUNT(*) AS n FROM peers', read: true })).toEqual({ id: 2, result: { n: 0 } });
    // In time, the same group commits.
    const ok = await ex.handle({ id: 3, op: 'group', jobs: [job('x'), job('y')], geometry, deadline: Date.now() + 5000 });
    expect(ok.error).toBeUndefined();
    expect((ok.result as Array<{ ok: boolean }>).map((o) => o.ok)).toEqual([true, true]);
    expect(await ex.handle({ id: 4, op: 'get', sql: 'SELECT COUNT(*) AS n FROM peers', read: true })).toEqual({ id: 4, result: { n: 2 } });
    await ex.handle({ id: 5, op: 'close' });
  });
});
