/**
 * A real hub process (`tsguard hub up --api 127.0.0.1:PORT --api-insecure-http`)
 * in a network namespace is killed with SIGKILL in the middle of a
 * registration storm sent by a client process inside the same namespace.
 * After a restart: every accepted registration is there with its address,
 * no address is held twice, the live device has exactly the registered
 * peers, and registering everyone again gives the same addresses.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeAgents } from '../bench/lib/register-load.mjs';
import { Registry } from '../src/hub/registry/index.js';
import { dump, ifname, nsRun, ROOT, shouldSkip, teardownAll, Topology } from './net/netns.js';
import { spawnNode, TSGUARD, type Watched } from './helpers/proc.js';

const SKIP = shouldSkip('registration-crash.test.ts', ['ip', 'wg']);
// The registration load client of the benchmark, one line per request (--each).
const STORM = join(ROOT, 'bench/lib/register-load.mjs');
const SUBNET = '10.78.0.0/22';
const API = '127.0.0.1:18080';

afterAll(teardownAll);

interface StormLine {
  i: number;
  status?: number;
  reason?: string;
  ip?: string;
  error?: string;
}

function lines(w: Watched): StormLine[] {
  return w
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as StormLine);
}

describe.skipIf(SKIP)('hub killed during a registration storm', () => {
  it('keeps every accepted registration, without duplicates, and restores all peers', async () => {
    const t = await Topology.create({ single: true });
    try {
      const ns = t.a;
      const dir = t.tempDir();
      const hubIf = ifname('tsh');
      t.ifnames.add(hubIf);
      const hubArgs = [TSGUARD, 'hub', 'up', '--data-dir', dir, '--interface', hubIf, '--subnet', SUBNET, '--listen-port', '51830', '--api', API, '--api-insecure-http'];
      let hub = spawnNode(ns, hubArgs, 'hub');
      await hub.waitFor(/registration API listening on http:\/\/127\.0\.0\.1:18080/);
      const created = await nsRun(ns, process.execPath, [TSGUARD, 'hub', 'token', 'create', '--data-dir', dir, '--ttl', '1h', '--json']);
      const token = (JSON.parse(created.stdout) as { token: string }).token;

      const all = makeAgents(400, 'storm-');
      const file = join(dir, 'agents.json');
      writeFileSync(file, JSON.stringify(all));
      const storm = spawnNode(ns, [STORM, `http://${API}`, token, file, '40', '--each'], 'storm client');
      // Kill the hub once a good part of the storm has been answered (and more is in flight).
      await storm.waitFor(/(?:\{"i":\d+,"status":200[^\n]*\n){60}/, 60_000);
      hub.child.kill('SIGKILL');
      expect((await hub.exited).signal).toBe('SIGKILL');
      expect((await storm.exited).code).toBe(0);
      const first = lines(storm);
      const accepted = first.filter((l) => l.status === 200);
      expect(accepted.length).toBeGreaterThanOrEqual(60);
      expect(accepted.length).toBeLessThan(all.length); // the kill did interrupt the storm
      expect(first.filter((l) => l.status !== undefined && l.status !== 200)).toEqual([]); // no refusal, only lost connections

      hub = spawnNode(ns, hubArgs, 'restarted hub');
      await hub.waitFor(/registration API listening/);
      const restored = Number((await hub.waitFor(/up: 10\.78\.0\.1 on UDP \d+, (\d+) peers restored/))[1]);

      const reg = await Registry.open(dir);
      let rows;
      try {
        rows = (await reg.listPeers());
      } finally {
        await reg.close();
      }
      console.info(`storm: ${accepted.length} of ${all.length} answered before SIGKILL, ${rows.length} registered after the restart`);
      expect(restored).toBe(rows.length);
      const byName = new Map(rows.map((r) => [r.name, r]));
      for (const a of accepted) {
        const r = byName.get(all[a.i]!.agent_id);
        expect(r, `accepted ${all[a.i]!.agent_id} missing after the crash`).toBeDefined();
        expect(r!.ipv4).toBe(a.ip);
        expect(r!.publicKey).toBe(all[a.i]!.public_key);
      }
      expect(new Set(rows.map((r) => r.ipv4)).size).toBe(rows.length);
      expect(new Set(rows.map((r) => r.publicKey)).size).toBe(rows.length);
      // The live device holds exactly the registered peers with their /32.
      const live = await dump(ns, hubIf);
      expect(new Map(live.peers.map((p) => [p.publicKey, p.allowedIps]))).toEqual(new Map(rows.map((r) => [r.publicKey, `${r.ipv4}/32`])));

      // Everyone registers again: the survivors keep their addresses, the rest get new distinct ones.
      const again = spawnNode(ns, [STORM, `http://${API}`, token, file, '40', '--each'], 'second storm');
      expect((await again.exited).code).toBe(0);
      const second = lines(again);
      expect(second).toHaveLength(all.length);
      expect(second.filter((l) => l.status !== 200)).toEqual([]);
      const ipOf = new Map(second.map((l) => [l.i, l.ip]));
      for (const a of accepted) expect(ipOf.get(a.i)).toBe(a.ip);
      for (const r of rows) expect(ipOf.get(all.findIndex((a) => a.agent_id === r.name))).toBe(r.ipv4);
      expect(new Set(second.map((l) => l.ip)).size).toBe(all.length);
      const final = await dump(ns, hubIf);
      expect(final.peers).toHaveLength(all.length);
    } finally {
      await t.teardown();
    }
  }, 180_000);
});
