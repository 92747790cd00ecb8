/**
 * The hub mesh without network: a sans-IO hub device, its relay and its Mesh on a real
 * registry file (SqliteMeshStore). Homes decide which peer holds an address; the relay's
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
import { SqliteMeshStore } from '../src/hub/mesh-store.js';
import { Registry } from '../src/hub/registry.js';
import { Relay, type PeerKind } from '../src/hub/relay.js';
import { parseIp, parsePrefix } from '../src/routing/ip.js';
import { ipv4Packet, Sim } from './helpers/sim.js';

const PAYLOAD = new Uint8Array([1, 2, 3, 4]);

describe('hub mesh: homes, relay policy across hubs, store outage', () => {
  let dir: string;
  let registry: Registry;
  let store: SqliteMeshStore;
  let other: SqliteMeshStore;
  let mesh: Mesh;
  let relay: Relay;
  const sim = new Sim();
  const hub = sim.add({ host: '192.0.2.1', port: 51820 });
  const c = hub.device.crypto;
  hub.device.setPrivateKey(c.generatePrivateKey());
  const self = keyToBase64(hub.device.publicKey!);
  const key = () => keyToBase64(c.publicKey(c.generatePrivateKey()));
  const hubB = key();
  const hubC = key();
  const peers: Record<string, { id: string; kind: PeerKind; ip: string }> = {
    laptop: { id: key(), kind: 'client', ip: '10.0.0.2' },
    dev1: { id: key(), kind: 'device', ip: '10.0.0.3' },
    dev2: { id: key(), kind: 'agent', ip: '10.0.0.4' },
    far: { id: key(), kind: 'device', ip: '10.0.0.5' },
  };
  const owner = (ip: string) => hub.device.allowedIps.lookupIp(ip)?.id;
  const logs: string[] = [];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsguard-mesh-'));
    registry = Registry.open(dir, { create: { subnet: '10.0.0.0/24' } });
    store = SqliteMeshStore.open(registry.path);
    other = SqliteMeshStore.open(registry.path);
    relay = new Relay(hub.device, { allowDeviceToDevice: false });
    mesh = new Mesh({ store, device: hub.device, relay, batch: (fn) => fn(), self: { id: self, endpoint: '192.0.2.1:51820' }, log: (_l, m) => logs.push(m) });
    const now = Date.now();
    await other.upsertHub({ id: hubB, endpoint: '192.0.2.2:51820', apiUrl: 'https://192.0.2.2:8443', certPin: null, lastSeen: now });
    await other.upsertHub({ id: hubC, endpoint: '192.0.2.3:51820', apiUrl: null, certPin: null, lastSeen: now });
    await other.upsertHub({ id: key(), endpoint: '192.0.2.4:51820', apiUrl: null, certPin: null, lastSeen: now - 3_600_000 }); // stale
    await other.setHome(peers.dev1!.id, hubB);
    await other.setHome(peers.far!.id, hubC);
    await mesh.start();
    // What the hub does for every registry peer (src/hub/hub.ts #applyPeer).
    for (const p of Object.values(peers)) {
      const prefixes = [parsePrefix(`${p.ip}/32`)];
      hub.device.setPeer(keyFromBase64(p.id), { replaceAllowedIps: true, allowedIps: prefixes });
      relay.setKind(p.id, p.kind);
      mesh.placed(p.id, p.kind, prefixes);
    }
  });

  afterEach(async () => {
    await mesh.stop(true);
    store.close();
    other.close();
    registry.close();
    hub.device.removeAllPeers();
    rmSync(dir, { recursive: true, force: true });
  });

  it('peers with the live hubs only, this hub listed first; addresses sit with the peer of their home', () => {
    const listed = mesh.listedHubs().map((h) => h.id);
    expect(listed[0]).toBe(self);
    expect(listed.slice(1).sort()).toEqual([hubB, hubC].sort());
    expect(owner(peers.dev1!.ip)).toBe(hubB);
    expect(owner(peers.far!.ip)).toBe(hubC);
    expect(owner(peers.laptop!.ip)).toBe(peers.laptop!.id);
    expect(owner(peers.dev2!.ip)).toBe(peers.dev2!.id);
  });

  it('relays under the kinds of origin and final destination, never hub → hub', () => {
    const send = (from: string, src: string, dst: string) => {
      const before = relay.counters(from).relayed;
      expect(relay.handle(ipv4Packet(src, dst, PAYLOAD), from)).toBe(true);
      return relay.counters(from).relayed > before;
    };
    const { laptop, dev1, dev2, far } = peers as Required<typeof peers>;
    expect(send(laptop.id, laptop.ip, dev1.ip)).toBe(true); // client → device on hub B
    expect(send(dev2.id, dev2.ip, dev1.ip)).toBe(false); // agent → device on hub B: device ↔ device
    expect(send(hubB, dev1.ip, laptop.ip)).toBe(true); // transit: device (origin) → client
    expect(send(hubB, dev1.ip, dev2.ip)).toBe(false); // transit: device → agent, without the flag
    expect(send(hubB, dev1.ip, far.ip)).toBe(false); // hub B → hub C: one hop only
    expect(send(hubB, '10.0.0.99', laptop.ip)).toBe(false); // unknown origin
    relay.policy.allowDeviceToDevice = true;
    expect(send(dev2.id, dev2.ip, dev1.ip)).toBe(true);
    expect(send(hubB, dev1.ip, dev2.ip)).toBe(true);
    expect(send(hubB, dev1.ip, far.ip)).toBe(false);
  });

  it('a claim moves the addresses here at once and is recorded; a newer claim elsewhere moves them to that hub', async () => {
    const dev1 = peers.dev1!;
    mesh.claim(dev1.id);
    expect(owner(dev1.ip)).toBe(dev1.id);
    await vi.waitFor(async () => expect((await other.homesSince(0)).find((h) => h.publicKey === dev1.id)?.hubId).toBe(self));
    await other.setHome(dev1.id, hubB);
    await vi.waitFor(() => expect(owner(dev1.ip)).toBe(hubB), { timeout: 3000 });
  });

  it('a hub unlisted from the registry is dropped and its peers\' addresses come back to their own peers', async () => {
    await other.removeHub(hubC);
    await vi.waitFor(() => expect(owner(peers.far!.ip)).toBe(peers.far!.id), { timeout: 5000, interval: 100 });
    expect(hub.device.getPeer(hubC)).toBeUndefined();
  });

  it('with the registry locked, writes fail at once, live routing is unchanged, a claim is written afterwards', async () => {
    const lock = new Database(registry.path);
    lock.exec('BEGIN EXCLUSIVE');
    try {
      await expect(store.setHome(peers.laptop!.id, hubB)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      mesh.claim(peers.dev1!.id);
      expect(owner(peers.dev1!.ip)).toBe(peers.dev1!.id);
      expect(owner(peers.far!.ip)).toBe(hubC);
    } finally {
      lock.exec('COMMIT');
      lock.close();
    }
    await vi.waitFor(async () => expect((await other.homesSince(0)).find((h) => h.publicKey === peers.dev1!.id)?.hubId).toBe(self), { timeout: 3000 });
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
