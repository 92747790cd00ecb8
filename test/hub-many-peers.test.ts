/**
 * A hub restored from a registry of a few thousand devices (network namespaces): every peer is
 * live at start-up — `wg show` lists all of them, and the device registered last (the last one
 * the hub restores) completes a handshake and is reached through the hub's relay by a client.
 * Per-peer handshake state is derived on first contact, so this is the peer whose state the
 * hub builds last.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyToBase64 } from '../src/crypto/keys.js';
import { getCrypto } from '../src/crypto/index.js';
import { Registry } from '../src/hub/registry/index.js';
import { expectPings, HubTopology, teardownHubTopologies, type HubPeer } from './net/hub-topology.js';
import { shouldSkip } from './net/netns.js';

const SKIP = shouldSkip('hub-many-peers.test.ts', ['ip', 'wg', 'wireguard-go', 'ping']);

const SUBNET = '10.61.0.0/20';
/** Devices registered before the two live peers (CI-sized; the bench measures 50,000). */
const FILLER = 2998;

describe.skipIf(SKIP)(`tsguard hub with ${FILLER + 2} registered peers (network namespaces)`, () => {
  let t: HubTopology;
  let last: HubPeer;
  let client: HubPeer;

  beforeAll(async () => {
    t = await HubTopology.create({ peers: 2, subnet: SUBNET });
    const c = getCrypto();
    const lastKeys = await t.keys();
    const clientKeys = await t.keys();
    const reg = await Registry.open(t.dataDir, { create: { subnet: SUBNET } });
    let lastIp: string;
    let clientIp: string;
    try {
      clientIp = (await reg.addPeer({ kind: 'client', name: 'laptop', publicKey: clientKeys.pub, source: 'cli' })).ipv4;
      for (let i = 0; i < FILLER; i++) {
        await reg.addPeer({ kind: 'device', name: `dev-${i}`, publicKey: keyToBase64(c.publicKey(c.generatePrivateKey())), source: 'cli' });
      }
      // Peers are restored by kind, then name: this device comes last.
      lastIp = (await reg.addPeer({ kind: 'device', name: 'zz-last', publicKey: lastKeys.pub, source: 'cli' })).ipv4;
    } finally {
      await reg.close();
    }
    await t.startHub();
    await t.waitHub(`the hub to list all ${FILLER + 2} peers`, (m) => m.size === FILLER + 2, 60_000);
    last = await t.startPeer(2, 'zz-last', lastKeys, lastIp);
    client = await t.startPeer(1, 'laptop', clientKeys, clientIp);
  }, 240_000);

  afterAll(async () => {
    await teardownHubTopologies();
  }, 60_000);

  it('answers a handshake of the last restored device and relays a client to it', async () => {
    await t.waitHandshake(last.keys.pub);
    await expectPings(client.ns, last.ip, 'client laptop → device zz-last (relayed by the hub)');
    await expectPings(last.ns, t.hubIp, 'zz-last → the hub itself');
    const live = await t.hubAllowedIps();
    expect(live.size).toBe(FILLER + 2);
    expect(live.get(last.keys.pub)).toBe(`${last.ip}/32`);
    const show = await t.show();
    const byName = new Map(show.peers.map((p) => [p.name, p]));
    expect(byName.get('zz-last')).toMatchObject({ kind: 'device', address: last.ip, publicKey: last.keys.pub });
    expect(byName.get('zz-last')!.latestHandshake).toBeGreaterThan(0);
    expect(byName.get('laptop')!.relayed).toBeGreaterThanOrEqual(3);
    // A filler device never called: it has no handshake, but it is configured.
    expect(byName.get('dev-0')).toMatchObject({ kind: 'device', latestHandshake: null });
  });
});
