// Two hubs on one throw-away PostgreSQL registry (bench/lib/postgres.mjs), one per namespace of a
// veth pair: how long a CLI change made through hub B (`tsguard hub device add … --registry URL`
// with hub B's data dir) takes to be live on hub A's interface (`wg show IF peers` polled every
// few ms). Reported from the start of the command and from its return (hub B has applied it by
// then; hub A gets it through PostgreSQL NOTIFY).
//
//   node bench/lib/multihub.mjs [RUNS]     (root; prints the JSON figures)
import { pathToFileURL } from 'node:url';
import { OUTER, TSGUARD, Topology, genKeyPair, ifname, nsSpawn, wg } from './netns.mjs';
import { postgresBin, TestPostgres } from './postgres.mjs';
import { collect, percentile, run, waitFor } from './proc.mjs';

/** The measurement; always tears down its namespaces and server. */
export async function cliChangeAcrossHubs({ runs = 20, log = () => {} } = {}) {
  if (postgresBin() === null) throw new Error('PostgreSQL server binaries not found (Debian package "postgresql")');
  const server = await TestPostgres.start();
  const t = await Topology.create(true);
  const hubs = [];
  try {
    const url = await server.newDatabase('multihub');
    for (const [ns, outer] of [[t.a, OUTER.a], [t.b, OUTER.b]]) {
      const dir = t.tempDir();
      const name = ifname('tsgmh');
      t.ifnames.add(name);
      const args = [TSGUARD, 'hub', 'up', '--data-dir', dir, '--registry', url, '--interface', name, '--subnet', '10.101.0.0/16', '--listen-port', '51910', '--endpoint', `${outer}:51910`];
      const child = nsSpawn(ns, process.execPath, args, { ...process.env, LOG_LEVEL: 'error' });
      const done = collect(child, 600_000);
      hubs.push({ ns, dir, name, child, done });
      await waitFor(`hub in ${ns}`, async () => (await wg(ns, ['show', name, 'public-key']).catch(() => '')).trim() !== '', 30_000, 100);
    }
    const [a, b] = hubs;
    log(`multihub: two hubs on PostgreSQL up; ${runs} device adds through hub B`);
    const fromStart = [];
    const fromReturn = [];
    for (let i = 0; i < runs; i++) {
      const k = await genKeyPair();
      const t0 = performance.now();
      await run(process.execPath, [TSGUARD, 'hub', 'device', 'add', `bench-${i}`, '--public-key', k.pub, '--data-dir', b.dir, '--registry', url], { timeoutMs: 30_000 });
      const t1 = performance.now();
      await waitFor('the device on hub A', async () => (await wg(a.ns, ['show', a.name, 'peers'])).includes(k.pub), 10_000, 2);
      const t2 = performance.now();
      fromStart.push(t2 - t0);
      fromReturn.push(t2 - t1);
    }
    const r = (x) => Math.round(x * 10) / 10;
    return {
      runs,
      registry: 'PostgreSQL (unix socket), NOTIFY',
      live_on_a_from_command_start_ms: { median: r(percentile(fromStart, 50)), p95: r(percentile(fromStart, 95)) },
      live_on_a_after_command_returned_ms: { median: r(percentile(fromReturn, 50)), p95: r(percentile(fromReturn, 95)) },
    };
  } finally {
    for (const h of hubs) h.child.kill('SIGTERM');
    for (const h of hubs) await h.done.catch(() => undefined);
    await t.teardown();
    await server.destroy();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const runs = Number(process.argv[2] ?? 20);
  cliChangeAcrossHubs({ runs, log: (m) => console.error(m) }).then(
    (r) => console.log(JSON.stringify(r, null, 2)),
    (e) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
