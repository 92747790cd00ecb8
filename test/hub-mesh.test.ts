/**
 * The hub mesh without network: a sans-IO hub device, its relay and its Mesh on a real
 * SQLite registry. Homes decide which peer holds an address; the relay's
 * policy looks through hub peers to the origin and final destination kinds; a locked store
 * refuses at once and a claim made meanwhile is written when it returns. Also the agent's
 * ICMP probe packet.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { icmpEchoRequest } from '../src/agent/probe.js';
import { keyFromBase64, keyToBase64 } from '../src/crypto/keys.js';
import { Mesh } from '../src/hub/mesh.js';
import { Registry, type HubRecord, type PeerRecord } from '../src/hub/registry/index.js';
import { Relay, type PeerKind } from '../src/hub/relay.js';
import { parseIp, parsePrefix } from '../src/routing/ip.js';
import { ipv4Packet, Sim } from './helpers/sim.js';

const PAYLOAD = new Uint8Array([1, 2, 3, 4]);

describe('hub mesh: homes, relay policy across hubs, store outage', () => {
  let dir: string;
  let registry: Registry;
  let other: Registry;
  let mesh: Mesh;
  let relay: Relay;
  let hubB: HubRecord;
  let hubC: HubRecord;
  const sim = new Sim();
  const hub = sim.add({ host: '192.0.2.1', port: 51820 });
  const c = hub.device.crypto;
  hub.device.setPrivateKey(c.generatePrivateKey());
  const self = keyToBase64(hub.device.publicKey!);
  const key = () => keyToBase64(c.publicKey(c.generatePrivateKey()));
  const peers: Record<'laptop' | 'dev1' | 'dev2' | 'far', { id: string; kind: PeerKind; ip: string }> = {
    laptop: { id: key(), kind: 'client', ip: '10.0.0.2' },
    dev1: { id: key(), kind: 'device', ip: '10.0.0.3' },
    dev2: { id: key(), kind: 'device', ip: '10.0.0.4' },
    far: { id: key(), kind: 'device', ip: '10.0.0.5' },
  };
  const owner = (ip: string) => hub.device.allowedIps.lookupIp(ip)?.id;
  /** What the hub does for a registry peer (src/hub/hub.ts #applyPeer). */
  const apply = (r: PeerRecord) => {
    const prefixes = [parsePrefix(`${r.ipv4}/32`)];
    hub.device.setPeer(keyFromBase64(r.publicKey), { replaceAllowedIps: true, allowedIps: prefixes });
    relay.setKind(r.publicKey, r.kind);
    mesh.placed(r.publicKey, r.kind, prefixes, r.homeHub);
  };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsguard-mesh-'));
    registry = await Registry.open(dir, { create: { subnet: '10.0.0.0/24' } });
    other = await Registry.open(dir);
    for (const [name, p] of Object.entries(peers)) await other.addPeer({ kind: p.kind, name, publicKey: p.id, ip: p.ip, source: 'cli' });
    relay = new Relay(hub.device, { allowDeviceToDevice: false });
    mesh = new Mesh({ registry, device: hub.device, relay, batch: (fn) => fn(), self: { publicKey: self, endpoint: '192.0.2.1:51820', apiUrl: null, certPin: null }, log: () => undefined });
    hubB = await other.announceHub({ publicKey: key(), endpoint: '192.0.2.2:51820', apiUrl: 'https://192.0.2.2:8443', certPin: null });
    hubC = await other.announceHub({ publicKey: key(), endpoint: '192.0.2.3:51820', apiUrl: null, certPin: null });
    const past = await Registry.open(dir, { now: () => Date.now() - 3_600_000 });
    await past.announceHub({ publicKey: key(), endpoint: '192.0.2.4:51820', apiUrl: null, certPin: null }); // no heartbeat for an hour
    await past.close();
    await other.setHomeHub(peers.dev1.id, hubB.id);
    await other.setHomeHub(peers.far.id, hubC.id);
    mesh.start(await registry.listHubs());
    await mesh.advertise(null, null); // the first heartbeat has listed this hub
    for (const r of await registry.listPeers()) apply(r);
  });

  afterEach(async () => {
    await mesh.stop();
    await registry.close();
    await other.close();
    hub.device.removeAllPeers();
    rmSync(dir, { recursive: true, force: true });
  });

  it('peers with the live hubs only, this hub listed first; addresses sit with the peer of their home', () => {
    const listed = mesh.listedHubs().map((h) => h.publicKey);
    expect(listed[0]).toBe(self);
    expect(listed.slice(1).sort()).toEqual([hubB.publicKey, hubC.publicKey].sort());
    expect(mesh.selfId).not.toBeNull();
    expect(owner(peers.dev1.ip)).toBe(hubB.publicKey);
    expect(owner(peers.far.ip)).toBe(hubC.publicKey);
    expect(owner(peers.laptop.ip)).toBe(peers.laptop.id);
    expect(owner(peers.dev2.ip)).toBe(peers.dev2.id);
  });

  it('relays under the kinds of origin and final destination, never hub → hub', () => {
    const send = (from: string, src: string, dst: string) => {
      const before = relay.counters(from).relayed;
      expect(relay.handle(ipv4Packet(src, dst, PAYLOAD), from)).toBe(true);
      return relay.counters(from).relayed > before;
    };
    const { laptop, dev1, dev2, far } = peers;
    const b = hubB.publicKey;
    expect(send(laptop.id, laptop.ip, dev1.ip)).toBe(true); // client → device on hub B
    expect(send(dev2.id, dev2.ip, dev1.ip)).toBe(false); // device → device on hub B
    expect(send(b, dev1.ip, laptop.ip)).toBe(true); // transit: device (origin) → client
    expect(send(b, dev1.ip, dev2.ip)).toBe(false); // transit: device → device, without the flag
    expect(send(b, dev1.ip, far.ip)).toBe(false); // hub B → hub C: one hop only
    expect(send(b, '10.0.0.99', laptop.ip)).toBe(false); // unknown origin
    relay.policy.allowDeviceToDevice = true;
    expect(send(dev2.id, dev2.ip, dev1.ip)).toBe(true);
    expect(send(b, dev1.ip, dev2.ip)).toBe(true);
    expect(send(b, dev1.ip, far.ip)).toBe(false);
  });

  it('a claim moves the addresses here at once and is recorded; a newer home read from the registry moves them on', async () => {
    const { dev1 } = peers;
    mesh.claim(dev1.id);
    expect(owner(dev1.ip)).toBe(dev1.id);
    await vi.waitFor(async () => expect((await other.findByKey(dev1.id))?.homeHub).toBe(mesh.selfId));
    await other.setHomeHub(dev1.id, hubB.id);
    apply((await registry.findByKey(dev1.id))!); // what the hub's sync of the change log does
    expect(owner(dev1.ip)).toBe(hubB.publicKey);
  });

  it('a hub whose heartbeat stops is dropped and its peers\' addresses come back to their own peers', async () => {
    const past = await Registry.open(dir, { now: () => Date.now() - 3_600_000 });
    await past.announceHub({ publicKey: hubC.publicKey, endpoint: hubC.endpoint, apiUrl: null, certPin: null });
    await past.close();
    await vi.waitFor(() => expect(owner(peers.far.ip)).toBe(peers.far.id), { timeout: 5000, interval: 100 });
    expect(hub.device.getPeer(hubC.publicKey)).toBeUndefined();
  });

  it('with the registry locked, the claim is live at once and written when the lock goes', async () => {
    const lock = new Database(join(dir, 'registry.sqlite'));
    lock.exec('BEGIN EXCLUSIVE');
    try {
      mesh.claim(peers.dev1.id);
      expect(owner(peers.dev1.ip)).toBe(peers.dev1.id);
      expect(owner(peers.far.ip)).toBe(hubC.publicKey);
      await expect(registry.setHomeHub(peers.laptop.id, hubB.id)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    } finally {
      lock.exec('COMMIT');
      lock.close();
    }
    await vi.waitFor(async () => expect((await other.findByKey(peers.dev1.id))?.homeHub).toBe(mesh.selfId), { timeout: 5000, interval: 100 });
  });
});

describe('agent probe', () => {
  it('is a valid IPv4 ICMP echo request (both checksums verify)', () => {
    const p = icmpEchoRequest('10.0.0.7', '10.0.0.1', 0x1234, 9);
    const sum = (from: number, to: number) => {
      let s = 0;
      for (let i = from; i < to; i += 2) s += (p[i]! << 8) | p[i + 1]!;
      while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
      return s;
    };
    expect(p[0]).toBe(0x45);
    expect((p[2]! << 8) | p[3]!).toBe(p.length);
    expect(p[9]).toBe(1);
    expect(p.subarray(12, 16)).toEqual(parseIp('10.0.0.7').bytes);
    expect(p.subarray(16, 20)).toEqual(parseIp('10.0.0.1').bytes);
    expect(sum(0, 20)).toBe(0xffff);
    expect(p[20]).toBe(8);
    expect((p[24]! << 8) | p[25]!).toBe(0x1234);
    expect((p[26]! << 8) | p[27]!).toBe(9);
    expect(sum(20, p.length)).toBe(0xffff);
  });
});
