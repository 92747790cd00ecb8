/**
 * The hub's relay policy (src/hub/relay.ts): the pure rule, then the Relay on a real hub device
 * with four spokes over the in-memory network (handshakes included), no namespaces.
 */
import { describe, expect, it } from 'vitest';
import { keyToBase64 } from '../src/crypto/keys.js';
import { Relay, relayAllowed, type PeerKind } from '../src/hub/relay.js';
import { parsePrefix } from '../src/routing/ip.js';
import { ipv4Packet, Sim, type Node } from './helpers/sim.js';

describe('relayAllowed', () => {
  const kinds: PeerKind[] = ['device', 'agent', 'client'];
  it('client ↔ device always, client ↔ client never, device ↔ device only when allowed', () => {
    const expected = (from: PeerKind, to: PeerKind, d2d: boolean): boolean => {
      const fromClient = from === 'client';
      const toClient = to === 'client';
      if (fromClient && toClient) return false;
      if (fromClient !== toClient) return true;
      return d2d;
    };
    for (const allowDeviceToDevice of [false, true]) {
      for (const from of kinds) {
        for (const to of kinds) {
          expect(relayAllowed(from, to, { allowDeviceToDevice }), `${from} → ${to}, d2d ${allowDeviceToDevice}`).toBe(expected(from, to, allowDeviceToDevice));
        }
      }
    }
    // Spelled out: agents count as devices.
    expect(relayAllowed('agent', 'device', { allowDeviceToDevice: false })).toBe(false);
    expect(relayAllowed('agent', 'client', { allowDeviceToDevice: false })).toBe(true);
    expect(relayAllowed('client', 'agent', { allowDeviceToDevice: false })).toBe(true);
  });
});

describe('Relay on a hub device', () => {
  function mesh() {
    const sim = new Sim();
    const hubEp = { host: '192.0.2.100', port: 51820 };
    let relay!: Relay;
    const hub = sim.add(hubEp, {}, (packet, fromPeer) => relay.handle(packet, fromPeer));
    relay = new Relay(hub.device, { allowDeviceToDevice: false });
    const c = hub.device.crypto;
    const hubKey = c.generatePrivateKey();
    hub.device.setPrivateKey(hubKey);
    const spokes = new Map<string, { node: Node; ip: string; id: string }>();
    const add = (name: string, kind: PeerKind, n: number) => {
      const node = sim.add({ host: `192.0.2.${n}`, port: 51820 });
      const key = c.generatePrivateKey();
      node.device.setPrivateKey(key);
      node.device.setPeer(c.publicKey(hubKey), { endpoint: hubEp, allowedIps: [parsePrefix('10.9.0.0/24')] });
      const ip = `10.9.0.${n}`;
      const id = keyToBase64(c.publicKey(key));
      hub.device.setPeer(c.publicKey(key), { endpoint: node.endpoint, allowedIps: [parsePrefix(`${ip}/32`)] });
      relay.setKind(id, kind);
      spokes.set(name, { node, ip, id });
    };
    add('d1', 'device', 2);
    add('d2', 'agent', 3);
    add('c1', 'client', 4);
    add('c2', 'client', 5);
    const send = (from: string, dst: string, tag: number) => {
      const s = spokes.get(from)!;
      s.node.device.sendPacket(ipv4Packet(s.ip, dst, new Uint8Array([tag, tag, tag]), tag));
      sim.advance(100);
    };
    const got = (name: string, tag: number) => spokes.get(name)!.node.delivered.filter((p) => p[4] === 0 && p[5] === tag).length;
    return { sim, hub, relay, spokes, send, got };
  }

  it('relays what the policy allows, refuses the rest and counts both', () => {
    const m = mesh();
    const ip = (n: string) => m.spokes.get(n)!.ip;
    const id = (n: string) => m.spokes.get(n)!.id;

    m.send('c1', ip('d1'), 1); // client → device
    expect(m.got('d1', 1)).toBe(1);
    m.send('d1', ip('c2'), 2); // device → client
    expect(m.got('c2', 2)).toBe(1);
    m.send('c1', ip('c2'), 3); // client → client
    expect(m.got('c2', 3)).toBe(0);
    m.send('d1', ip('d2'), 4); // device → agent, device-to-device off
    expect(m.got('d2', 4)).toBe(0);
    expect(m.relay.counters(id('c1'))).toEqual({ relayed: 1, refused: 1 });
    expect(m.relay.counters(id('d1'))).toEqual({ relayed: 1, refused: 1 });

    m.relay.policy = { allowDeviceToDevice: true };
    m.send('d1', ip('d2'), 5);
    expect(m.got('d2', 5)).toBe(1);
    expect(m.relay.counters(id('d1'))).toEqual({ relayed: 2, refused: 1 });

    // The hub's own address (nobody's prefix) goes to the hub's interface, not counted.
    m.send('d1', '10.9.0.1', 6);
    expect(m.hub.delivered.filter((p) => p[5] === 6)).toHaveLength(1);
    // A peer whose kind the relay does not know is refused.
    m.relay.setKind(id('d2'), null);
    m.send('d1', ip('d2'), 7);
    expect(m.got('d2', 7)).toBe(0);
    expect(m.relay.counters(id('d1'))).toEqual({ relayed: 2, refused: 2 });
    expect(m.relay.counters(id('d2'))).toEqual({ relayed: 0, refused: 0 }); // forgotten with its kind
  });
});
