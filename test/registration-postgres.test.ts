/**
 * Several hubs on one PostgreSQL registry (a real server the test starts),
 * in-process over loopback HTTP: 400 agents registering concurrently across
 * two registration APIs get 400 distinct addresses and keep them when they
 * register again through the other hub; a change through one hub reaches the
 * other by NOTIFY; with the server stopped, registrations are refused with
 * 503 store_unavailable, and succeed again once it is back, without
 * restarting anything; a transaction whose connection the server drops
 * fails with STORE_UNAVAILABLE instead of crashing the process.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerWithHub } from '../src/agent/join.js';
import { RegistrationApi, type RegisterResponse } from '../src/hub/api.js';
import { Registry, RegistryError } from '../src/hub/registry/index.js';
import { PostgresStore } from '../src/hub/registry/postgres-store.js';
import { skipPostgres, TestPostgres } from './helpers/postgres.js';
import { newKey, refusal } from './helpers/registry.js';

const SKIP = skipPostgres('registration-postgres.test.ts');
let server: TestPostgres | null = null;
const dirs: string[] = [];

beforeAll(async () => {
  if (!SKIP) server = await TestPostgres.start();
}, 120_000);
afterAll(async () => {
  await server?.destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface TestHub {
  reg: Registry;
  api: RegistrationApi;
  close(): Promise<void>;
}

/** A "hub": its own data directory and registry connection, one shared database, its own API. */
async function hub(url: string, hubKey: string): Promise<TestHub> {
  const dir = mkdtempSync(join(tmpdir(), 'tsguard-pghub-'));
  dirs.push(dir);
  const reg = await Registry.open(dir, { url, create: { subnet: '10.70.0.0/22' } });
  const me = await reg.announceHub({ publicKey: hubKey, endpoint: null, apiUrl: null, certPin: null });
  const api = await RegistrationApi.start({ registry: reg, listen: { host: '127.0.0.1', port: 0 }, tls: null, hubPublicKey: hubKey, listenPort: 51820, hubId: () => me.id });
  return {
    reg,
    api,
    close: async () => {
      await api.close();
      await reg.close();
    },
  };
}

describe.skipIf(SKIP)('hubs sharing a PostgreSQL registry', () => {
  it('400 concurrent registrations across two hubs get 400 distinct addresses; re-registration through the other hub keeps each', async () => {
    const url = await server!.newDatabase('multi');
    const [ka, kb] = [newKey(), newKey()];
    const a = await hub(url, ka);
    const b = await hub(url, kb);
    try {
      const { token } = await a.reg.createToken({ maxUses: 1000 });
      const agents = Array.from({ length: 400 }, (_, i) => ({ agent_id: `agent-${i}`, public_key: newKey() }));
      const answers = await Promise.all(agents.map((ag, i) => registerWithHub((i % 2 ? a : b).api.url, ag, { token, timeoutMs: 60_000 })));
      expect(answers.every((r) => r.accepted && r.reason === 'registered')).toBe(true);
      const ips = answers.map((r) => r.assigned_ip!);
      expect(new Set(ips).size).toBe(400);
      // Lowest free, shared: exactly the 400 addresses after the hub's.
      const hosts = ips.map((ip) => ip.split('.').map(Number)).map(([, , c, d]) => c! * 256 + d!);
      expect(Math.min(...hosts)).toBe(2);
      expect(Math.max(...hosts)).toBe(401);
      expect(answers.every((r) => typeof r.agent_credential === 'string')).toBe(true);
      // Each agent's home hub is the hub that answered.
      const hubs = await b.reg.listHubs();
      expect(hubs.map((h) => h.publicKey).sort()).toEqual([ka, kb].sort());
      const idOf = new Map(hubs.map((h) => [h.publicKey, h.id]));
      expect((await a.reg.getPeer('agent', 'agent-1'))!.homeHub).toBe(idOf.get(ka));
      expect((await a.reg.getPeer('agent', 'agent-0'))!.homeHub).toBe(idOf.get(kb));

      // Again, through the other hub, concurrently: same addresses, nothing consumed.
      const again = await Promise.all(agents.map((ag, i) => registerWithHub((i % 2 ? b : a).api.url, ag, { token, timeoutMs: 60_000 })));
      again.forEach((r, i) => {
        expect(r.reason).toBe('already_registered');
        expect(r.assigned_ip).toBe(ips[i]);
      });
      expect((await a.reg.listTokens())[0]!.uses).toBe(400);
      expect(await b.reg.listPeers()).toHaveLength(400);
    } finally {
      await a.close();
      await b.close();
    }
  }, 180_000);

  it('a change made through one hub is announced to the other (NOTIFY) and read from the change log', async () => {
    const url = await server!.newDatabase('notify');
    const a = await hub(url, newKey());
    const b = await hub(url, newKey());
    try {
      const cursor = await b.reg.changeSeq();
      let notified!: () => void;
      const got = new Promise<void>((r) => (notified = r));
      const stop = await b.reg.listen(() => notified());
      // listen() calls back once when it (re)connects; wait for a notification caused by the write below.
      await new Promise((r) => setTimeout(r, 50));
      const next = new Promise<void>((r) => (notified = r));
      await a.reg.addPeer({ kind: 'device', name: 'from-a', publicKey: newKey(), source: 'cli' });
      await next;
      void got;
      expect((await b.reg.changesSince(cursor)).peers).toEqual([{ kind: 'device', name: 'from-a' }]);
      await stop!();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a server stop while a transaction holds its connection fails that call with STORE_UNAVAILABLE and does not crash the process', async () => {
    const url = await server!.newDatabase('dropped');
    const store = await PostgresStore.open(url, { timeoutMs: 5000 });
    try {
      let held!: () => void;
      const holding = new Promise<void>((r) => (held = r));
      let resume!: () => void;
      const resumed = new Promise<void>((r) => (resume = r));
      const call = store.write('a held transaction', async (tx) => {
        await tx.get('SELECT 1 AS one');
        held();
        await resumed; // the connection is checked out, no statement running: the server's FATAL arrives now
        return tx.get('SELECT 2 AS two');
      });
      await holding;
      await server!.stopServer();
      try {
        // Unhandled 'error' events of the pg client would surface here as an uncaught exception (vitest fails the run).
        await new Promise((r) => setTimeout(r, 300));
        resume();
        const err = await call.then(() => null, (e: unknown) => e);
        expect(err).toBeInstanceOf(RegistryError);
        expect((err as RegistryError).code).toBe('STORE_UNAVAILABLE');
      } finally {
        await server!.startServer();
      }
      expect(await store.read('after the restart', (tx) => tx.get<{ three: number }>('SELECT 3 AS three'))).toEqual({ three: 3 });
    } finally {
      await store.close();
    }
  }, 120_000);

  it('with PostgreSQL stopped registrations are refused with 503 store_unavailable; once it is back they succeed without a restart', async () => {
    const url = await server!.newDatabase('outage');
    const a = await hub(url, newKey());
    try {
      const { token } = await a.reg.createToken();
      const first = await registerWithHub(a.api.url, { agent_id: 'before', public_key: newKey() }, { token });
      expect(first.assigned_ip).toBe('10.70.0.2');
      await server!.stopServer();
      try {
        const r = await refusal(registerWithHub(a.api.url, { agent_id: 'during', public_key: newKey() }, { token, timeoutMs: 10_000 }));
        expect([r.reason, r.status]).toEqual(['store_unavailable', 503]);
        expect(r.message).toMatch(/registry/);
        // A re-registration is refused the same way (the hub keeps nothing in memory to answer from).
        const again = await refusal(registerWithHub(a.api.url, { agent_id: 'before', public_key: first.assigned_ip ? (await a.reg.getPeer('agent', 'before').catch(() => null))?.publicKey ?? newKey() : newKey() }, { token }));
        expect(again.reason).toBe('store_unavailable');
      } finally {
        await server!.startServer();
      }
      const after: RegisterResponse = await registerWithHub(a.api.url, { agent_id: 'during', public_key: newKey() }, { token });
      expect([after.reason, after.assigned_ip]).toEqual(['registered', '10.70.0.3']);
      expect((await a.reg.listPeers()).map((p) => p.name)).toEqual(['before', 'during']);
    } finally {
      await a.close();
    }
  }, 120_000);
});
