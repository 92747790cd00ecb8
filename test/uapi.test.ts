/**
 * UAPI text protocol on an in-memory device: get rendering, set semantics
 * (wireguard-go's), transactional validation, and the syncconf diff.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { keyToHex } from '../src/crypto/keys.js';
import { Device } from '../src/device/device.js';
import { parseGetReply } from '../src/uapi/client.js';
import { applySet, Errno, UapiError, uapiGet, uapiGetChunks, type UapiHost } from '../src/uapi/protocol.js';
import { UapiServer } from '../src/uapi/server.js';
import { syncLines } from '../src/uapi/sync.js';
import { parsePrefix } from '../src/routing/ip.js';
import { FakeClock } from './helpers/sim.js';

function host(): UapiHost & { port: number; mark: number; sent: number } {
  const h = {
    port: 0,
    mark: 0,
    sent: 0,
    device: undefined as unknown as Device,
    setListenPort(p: number) {
      if (p === 1) throw new UapiError(Errno.EADDRINUSE, 'in use');
      h.port = p;
    },
    setFwmark(m: number) {
      h.mark = m;
      h.device.fwmark = m;
    },
  };
  h.device = new Device({ clock: new FakeClock(), io: { sendDatagram: () => void h.sent++, deliverPacket: () => undefined } });
  return h;
}

const hexKey = (d: Device) => keyToHex(d.crypto.generatePrivateKey());
const pubHex = (d: Device, privHex: string) => keyToHex(d.crypto.publicKey(Buffer.from(privHex, 'hex')));

describe('UAPI set/get', () => {
  it('configures a device and renders it as wireguard-go does', () => {
    const h = host();
    const priv = hexKey(h.device);
    const peer = pubHex(h.device, hexKey(h.device));
    applySet(h, [
      `private_key=${priv}`,
      'listen_port=51820',
      'fwmark=4660',
      `public_key=${peer}`,
      'endpoint=[2001:db8::1]:51820',
      'persistent_keepalive_interval=25',
      'allowed_ip=10.0.0.0/24',
      'allowed_ip=fd00::5/128',
      'protocol_version=1',
    ]);
    const text = uapiGet(h.device, h.port);
    expect(text).toBe(
      [
        `private_key=${priv}`,
        'listen_port=51820',
        'fwmark=4660',
        `public_key=${peer}`,
        `preshared_key=${'0'.repeat(64)}`,
        'protocol_version=1',
        'endpoint=[2001:db8::1]:51820',
        'last_handshake_time_sec=0',
        'last_handshake_time_nsec=0',
        // Turning on persistent keepalive sends one right away (a handshake initiation here).
        `tx_bytes=148`,
        'rx_bytes=0',
        'persistent_keepalive_interval=25',
        'allowed_ip=10.0.0.0/24',
        'allowed_ip=fd00::5/128',
        '',
      ].join('\n'),
    );
    expect(h.sent).toBe(1);
    const state = parseGetReply(text + 'errno=0\n\n');
    expect(state.peers[0]!.allowedIps).toEqual(['10.0.0.0/24', 'fd00::5/128']);
  });

  it('follows wireguard-go semantics for remove, update_only, replace_peers, own key and zero keys', () => {
    const h = host();
    const d = h.device;
    const priv = hexKey(d);
    const a = pubHex(d, hexKey(d));
    const b = pubHex(d, hexKey(d));
    applySet(h, [`private_key=${priv}`, `public_key=${a}`, 'allowed_ip=10.0.0.1/32', `public_key=${b}`, 'allowed_ip=10.0.0.1/32']);
    // The prefix moved to b (one owner per prefix).
    expect(parseGetReply(uapiGet(d, 0)).peers.map((p) => p.allowedIps)).toEqual([[], ['10.0.0.1/32']]);
    applySet(h, [`public_key=${a}`, 'remove=true']);
    expect(d.peerCount).toBe(1);
    const c = pubHex(d, hexKey(d));
    applySet(h, [`public_key=${c}`, 'update_only=true', 'allowed_ip=10.9.0.0/16']);
    expect(d.peerCount).toBe(1);
    applySet(h, [`public_key=${pubHex(d, priv)}`, 'allowed_ip=10.8.0.0/16']); // our own key: ignored
    expect(d.peerCount).toBe(1);
    applySet(h, [`public_key=${b}`, 'replace_allowed_ips=true', 'allowed_ip=10.7.0.0/16']);
    expect(parseGetReply(uapiGet(d, 0)).peers[0]!.allowedIps).toEqual(['10.7.0.0/16']);
    applySet(h, [`public_key=${b}`, `preshared_key=${'11'.repeat(32)}`]);
    expect(d.getPeer(Buffer.from(b, 'hex'))!.handshake.presharedKey[0]).toBe(0x11);
    applySet(h, [`public_key=${b}`, `preshared_key=${'0'.repeat(64)}`]);
    expect(d.getPeer(Buffer.from(b, 'hex'))!.handshake.presharedKey.every((x) => x === 0)).toBe(true);
    applySet(h, ['replace_peers=true']);
    expect(d.peerCount).toBe(0);
    applySet(h, [`private_key=${'0'.repeat(64)}`]);
    expect(d.privateKey).toBeNull();
  });

  it('refuses bad input with an errno and changes nothing', () => {
    const h = host();
    const d = h.device;
    const peer = pubHex(d, hexKey(d));
    applySet(h, [`public_key=${peer}`, 'allowed_ip=10.0.0.1/32']);
    const before = uapiGet(d, h.port);
    const bad: [string[], number, RegExp][] = [
      [['foo=bar'], Errno.EINVAL, /line 2: unknown device key "foo"/],
      [['private_key=zz'], Errno.EINVAL, /64 hexadecimal/],
      [['listen_port=70000'], Errno.EINVAL, /out of range/],
      [['endpoint=1.2.3.4:5'], Errno.EINVAL, /unknown device key "endpoint"/],
      [[`public_key=${peer}`, 'endpoint=1.2.3.4'], Errno.EINVAL, /line 3: invalid endpoint/],
      [[`public_key=${peer}`, 'endpoint=[::1:5'], Errno.EINVAL, /invalid endpoint/],
      [[`public_key=${peer}`, 'allowed_ip=10.0.0.0/40'], Errno.EINVAL, /0 to 32/],
      [[`public_key=${peer}`, 'protocol_version=2'], Errno.EINVAL, /protocol_version/],
      [[`public_key=${peer}`, 'remove=yes'], Errno.EINVAL, /only "true"/],
      [['no equals sign'], Errno.EPROTO, /not key=value/],
      // The first lines are valid: nothing of them may be applied either.
      [[`public_key=${peer}`, 'replace_allowed_ips=true', 'allowed_ip=10.5.0.0/16', 'bogus=1'], Errno.EINVAL, /unknown peer key/],
    ];
    for (const [lines, errno, msg] of bad) {
      let err: UapiError | undefined;
      try {
        applySet(h, lines);
      } catch (e) {
        err = e as UapiError;
      }
      expect(err?.errno, lines.join(' ')).toBe(errno);
      expect(err?.message).toMatch(msg);
      expect(uapiGet(d, h.port)).toBe(before);
    }
    expect(() => applySet(h, ['listen_port=1'])).toThrow(/in use/);
  });
});

describe('syncconf diff', () => {
  it('emits nothing for an identical configuration and only what differs otherwise', () => {
    const h = host();
    const d = h.device;
    const priv = hexKey(d);
    const a = pubHex(d, hexKey(d));
    const b = pubHex(d, hexKey(d));
    applySet(h, [`private_key=${priv}`, 'listen_port=51820', `public_key=${a}`, 'endpoint=192.0.2.1:1', 'allowed_ip=10.0.0.1/32', `public_key=${b}`, 'allowed_ip=10.0.0.2/32']);
    const cur = () => parseGetReply(uapiGet(d, h.port));
    const key = (x: string) => new Uint8Array(Buffer.from(x, 'hex'));
    const base = {
      privateKey: key(priv),
      listenPort: 51820,
      peers: [
        { publicKey: key(a), endpoint: '192.0.2.1:1', allowedIps: [parsePrefix('10.0.0.1/32')] },
        { publicKey: key(b), allowedIps: [parsePrefix('10.0.0.2/32')] },
      ],
    };
    expect(syncLines(cur(), base)).toEqual([]);
    // Only b's allowed IPs change; a gets no line at all.
    const changed = { ...base, peers: [base.peers[0]!, { publicKey: key(b), allowedIps: [parsePrefix('10.0.0.2/32'), parsePrefix('10.0.1.0/24')] }] };
    expect(syncLines(cur(), changed)).toEqual([`public_key=${b}`, 'replace_allowed_ips=true', 'allowed_ip=10.0.0.2/32', 'allowed_ip=10.0.1.0/24']);
    // a removed, c added.
    const c = pubHex(d, hexKey(d));
    const swapped = { ...base, peers: [base.peers[1]!, { publicKey: key(c), allowedIps: [parsePrefix('10.0.0.3/32')], persistentKeepalive: 25 }] };
    const lines = syncLines(cur(), swapped);
    expect(lines.slice(0, 2)).toEqual([`public_key=${a}`, 'remove=true']);
    expect(lines).toContain(`public_key=${c}`);
    expect(lines).toContain('persistent_keepalive_interval=25');
    applySet(h, lines);
    expect(syncLines(cur(), swapped)).toEqual([]);
  });
});

describe('UAPI server: get=1 of a large device', () => {
  it('is streamed in pieces that make up exactly the rendered reply, and the next operation waits for it', async () => {
    const h = host();
    const d = h.device;
    d.setPrivateKey(d.crypto.generatePrivateKey());
    for (let i = 0; i < 3000; i++) {
      d.setPeer(d.crypto.publicKey(d.crypto.generatePrivateKey()), { allowedIps: [parsePrefix(`10.${(i >> 8) & 255}.${i & 255}.1/32`)] });
    }
    const whole = uapiGet(d, 0);
    const pieces = [...uapiGetChunks(d, 0, 4096)];
    expect(pieces.length).toBeGreaterThan(10);
    expect(pieces.join('')).toBe(whole);
    // Every piece but the first starts at a peer.
    for (const p of pieces.slice(1)) expect(p.startsWith('public_key=')).toBe(true);

    const dir = mkdtempSync(join(tmpdir(), 'tsguard-uapi-test-'));
    const server = await UapiServer.listen(join(dir, 'x.sock'), { ...h, listenPort: () => 0 });
    try {
      const newPeer = hexKey(d);
      const reply = await new Promise<string>((resolve, reject) => {
        const sock = net.connect(join(dir, 'x.sock'));
        let got = '';
        sock.setEncoding('utf8');
        sock.on('data', (c: string) => {
          got += c;
          if (got.split('errno=').length === 4) {
            sock.end();
            resolve(got);
          }
        });
        sock.on('error', reject);
        // Three operations in one write: get, set (adds a peer), get.
        sock.write(`get=1\n\nset=1\npublic_key=${pubHex(d, newPeer)}\n\nget=1\n\n`);
      });
      const [first, setReply, second] = reply.split('errno=0\n\n');
      expect(first).toBe(whole);
      expect(setReply).toBe('');
      expect(second).toBe(uapiGet(d, 0));
      expect(second!.length).toBeGreaterThan(whole.length);
      expect(parseGetReply(second + 'errno=0\n\n').peers).toHaveLength(3001);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
