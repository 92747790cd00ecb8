/**
 * Two hubs on one PostgreSQL registry (a real server the test starts), PostgreSQL stopped for
 * 10 s: traffic that crosses both hubs goes on, a registration is refused with 503
 * `store_unavailable`, and after the server is back registrations succeed and a CLI change
 * made through hub 2 is live on hub 1 again (the time it takes is printed, not asserted).
 *
 *   P1 laptop (client, wireguard-go, hub 1)   P2 dev1 (device, wireguard-go, hub 2)
 *   P3 a new agent (tsguard join through hub 2)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipPostgres, TestPostgres } from './helpers/postgres.js';
import { spawnNode, TSGUARD } from './helpers/proc.js';
import { MeshTopology, parseAdded, teardownMeshTopologies, type HubPeer } from './net/hub-topology.js';
import { genKeyPair, nsRun, ping, shouldSkip, sleep, waitFor } from './net/netns.js';

const FILE = 'multihub-outage.test.ts';
const SKIP = shouldSkip(FILE, ['ip', 'wg', 'wireguard-go', 'ping']) || skipPostgres(FILE);
const SUBNET = '10.63.0.0/24';

describe.skipIf(SKIP)('two hubs on PostgreSQL: a 10 s registry outage (network namespaces)', () => {
  let pg: TestPostgres;
  let t: MeshTopology;
  let laptop: HubPeer;
  let dev1: HubPeer;
  let token: string;
  let pin: string;

  const join = (n: number) => {
    const ifname = `oj${n}${t.tag}`;
    t.ifnames.add(ifname);
    return spawnNode(
      t.peerNs[2]!,
      [TSGUARD, 'join', t.hubs[1]!.apiUrl, '--token', token, '--ca-hash', pin, '--state-dir', t.path(`agent${n}`), '--interface', ifname, '--agent-id', `new${n}`],
      'agent',
    );
  };

  beforeAll(async () => {
    pg = await TestPostgres.start();
    t = await MeshTopology.create({ registry: await pg.newDatabase('outage'), hubs: 2, peers: 3, subnet: SUBNET });
    await t.startHub(1);
    await t.startHub(2);
    await t.waitMeshed([1, 2]);
    ({ token, pin } = await t.token(2));
    const lk = await genKeyPair();
    const dk = await genKeyPair();
    const lip = parseAdded(await t.cliOk(1, ['client', 'add', 'laptop', '--public-key', lk.pub]));
    const dip = parseAdded(await t.cliOk(2, ['device', 'add', 'dev1', '--public-key', dk.pub]));
    for (const k of [1, 2]) await waitFor(`hub ${k} to list both peers`, async () => { const m = await t.hubAllowedIps(k); return m.has(lk.pub) && m.has(dk.pub); }, 5000);
    laptop = await t.startWgPeer(1, 1, lk, lip);
    dev1 = await t.startWgPeer(2, 2, dk, dip);
    const r = await ping(laptop.ns, dev1.ip, { count: 3, interval: 0.2, deadline: 10 });
    expect(r.received, r.output).toBeGreaterThanOrEqual(1);
  }, 120_000);

  afterAll(async () => {
    await teardownMeshTopologies(pg);
  }, 60_000);

  it('traffic across both hubs continues, registrations get 503, and everything recovers without a restart', async () => {
    // 100 pings over 20 s from a client on hub 1 to a device on hub 2, across the outage.
    const flood = nsRun(laptop.ns, 'ping', ['-n', '-q', '-i', '0.2', '-c', '100', '-W', '2', dev1.ip], { allowFail: true, timeoutMs: 60_000 });
    await sleep(3000);
    await pg.stopServer();
    const down = Date.now();
    try {
      const refused = join(1);
      const m = await refused.waitFor(/refused the registration \((\w+), HTTP (\d+)\)/, 30_000);
      expect(m[1]).toBe('store_unavailable');
      expect(m[2]).toBe('503');
      expect((await refused.exited).code).not.toBe(0);
      await sleep(Math.max(0, 10_000 - (Date.now() - down)));
    } finally {
      await pg.startServer();
    }
    const out = (await flood).stdout;
    const sent = Number(/(\d+) packets transmitted/.exec(out)?.[1] ?? NaN);
    const got = Number(/(\d+) received/.exec(out)?.[1] ?? NaN);
    console.log(`[${FILE}] pings client (hub 1) → device (hub 2) across a 10 s PostgreSQL outage: ${got}/${sent} answered`);
    expect(sent).toBe(100);
    expect(got).toBe(sent);

    // Registrations succeed again (the hubs reconnect by themselves).
    let ok: string | null = null;
    for (let n = 2; ok === null && n < 20; n++) {
      const a = join(n);
      const m = await a.waitFor(/joined as new\d+: address (\S+) on |refused the registration/, 30_000).catch(() => null);
      if (m?.[1] !== undefined) ok = m[1];
      else {
        await a.exited;
        await sleep(500);
      }
    }
    expect(ok).not.toBeNull();

    // A CLI change through hub 2 is live on hub 1 (PostgreSQL NOTIFY after the reconnect, or the poll).
    const k = await genKeyPair();
    const t0 = Date.now();
    await t.cliOk(2, ['device', 'add', 'dev9', '--public-key', k.pub]);
    await waitFor('hub 1 to configure dev9', async () => (await t.hubAllowedIps(1)).has(k.pub), 10_000, 20);
    console.log(`[${FILE}] hub device add through hub 2 → live on hub 1: ${Date.now() - t0} ms (command included)`);
  }, 180_000);
});
