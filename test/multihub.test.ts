/**
 * Two hubs on one registry (network namespaces, see MeshTopology in test/net/hub-topology.ts):
 * they list themselves, peer with each other, and relay between their peers in-process under
 * the kind policy of the origin (client ↔ device; device ↔ device only with the flag).
 *
 *   P1 laptop (client, wireguard-go, hub 1)   P2 dev1 (device, wireguard-go, hub 2)
 *   P3 dev2 (device, wireguard-go, hub 1)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestPostgres } from './helpers/postgres.js';
import { expectNoPings, expectPings, meshRegistry, MeshTopology, parseAdded, teardownMeshTopologies, type HubPeer } from './net/hub-topology.js';
import { genKeyPair, shouldSkip, waitFor } from './net/netns.js';

const SKIP = shouldSkip('multihub.test.ts', ['ip', 'wg', 'wireguard-go', 'ping']);
const SUBNET = '10.61.0.0/24';

describe.skipIf(SKIP)('two hubs on one registry: hub-to-hub relay (network namespaces)', () => {
  let t: MeshTopology;
  let pg: TestPostgres | null = null;
  let laptop: HubPeer;
  let dev1: HubPeer;
  let dev2: HubPeer;
  let hubKeys: string[];

  beforeAll(async () => {
    const reg = await meshRegistry('multihub.test.ts');
    pg = reg.server;
    t = await MeshTopology.create({ registry: reg.url, hubs: 2, peers: 3, subnet: SUBNET });
    await t.startHub(1);
    await t.startHub(2);
    await t.waitMeshed([1, 2]);
    hubKeys = [await t.hubPublicKey(1), await t.hubPublicKey(2)];
    // Peers are added through either hub's CLI: the registry is shared.
    const lk = await genKeyPair();
    const d1 = await genKeyPair();
    const d2 = await genKeyPair();
    const lip = parseAdded(await t.cliOk(1, ['client', 'add', 'laptop', '--public-key', lk.pub]));
    const d1ip = parseAdded(await t.cliOk(2, ['device', 'add', 'dev1', '--public-key', d1.pub]));
    const d2ip = parseAdded(await t.cliOk(1, ['device', 'add', 'dev2', '--public-key', d2.pub]));
    // Both hubs configure every fleet peer (any may become its home).
    for (const k of [1, 2]) {
      await waitFor(`hub ${k} to list the three peers`, async () => {
        const m = await t.hubAllowedIps(k);
        return [lk, d1, d2].every((x) => m.has(x.pub));
      }, 5000);
    }
    laptop = await t.startWgPeer(1, 1, lk, lip);
    dev1 = await t.startWgPeer(2, 2, d1, d1ip);
    dev2 = await t.startWgPeer(3, 1, d2, d2ip);
  }, 120_000);

  afterAll(async () => {
    await teardownMeshTopologies(pg);
  }, 60_000);

  it('a client on hub 1 reaches a device on hub 2 and back; each hub routes the other\'s peers to its hub peer', async () => {
    await expectPings(laptop.ns, dev1.ip, 'laptop (hub 1) → dev1 (hub 2)');
    await expectPings(dev1.ns, laptop.ip, 'dev1 (hub 2) → laptop (hub 1)');
    // Homes: laptop and dev2 on hub 1, dev1 on hub 2; each hub holds the other's addresses on its hub peer.
    await waitFor('the homes to settle on both hubs', async () => {
      const a = await t.hubAllowedIps(1);
      const b = await t.hubAllowedIps(2);
      return a.get(hubKeys[1]!) === `${dev1.ip}/32` && a.get(laptop.keys.pub) === `${laptop.ip}/32` && a.get(dev1.keys.pub) === '' &&
        b.get(hubKeys[0]!) === [`${dev2.ip}/32`, `${laptop.ip}/32`].sort().join(',') && b.get(dev1.keys.pub) === `${dev1.ip}/32` && b.get(laptop.keys.pub) === '';
    }, 5000);
  });

  it('device ↔ device across hubs is refused without --allow-device-to-device (the policy looks through the hubs)', async () => {
    await expectNoPings(dev2.ns, dev1.ip, 'dev2 (hub 1) → dev1 (hub 2)');
    const s = await t.show(1);
    expect(s.peers.find((p) => p.name === 'dev2')!.refused).toBeGreaterThan(0);
  });

  it('with --allow-device-to-device on both hubs, device ↔ device across hubs works', async () => {
    await t.stopHub(1);
    await t.stopHub(2);
    await t.startHub(1, ['--allow-device-to-device']);
    await t.startHub(2, ['--allow-device-to-device']);
    await t.waitMeshed([1, 2]);
    await expectPings(dev2.ns, dev1.ip, 'dev2 (hub 1) → dev1 (hub 2)');
    await expectPings(dev1.ns, dev2.ip, 'dev1 (hub 2) → dev2 (hub 1)');
    // Clients still never reach clients, and the client ↔ device path still works after the restart.
    await expectPings(laptop.ns, dev1.ip, 'laptop (hub 1) → dev1 (hub 2) after the restart');
  }, 90_000);
});
