/**
 * Device metrics read at scrape time from a simulated device pair, and the
 * metrics server (/metrics, /healthz, errors) on loopback.
 */
import promClient from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { keyToBase64 } from '../src/crypto/keys.js';
import { DROP_REASONS } from '../src/device/types.js';
import { registerDeviceMetrics } from '../src/metrics/device-metrics.js';
import { MetricsServer, runHealth } from '../src/metrics/server.js';
import { parseMetrics, samples } from './helpers/metrics.js';
import { ipv4Packet, pair } from './helpers/sim.js';

describe('registerDeviceMetrics', () => {
  it("exports wireguard_exporter's families and ours, with the device's current counters", async () => {
    const { sim, a, pubA, pubB } = pair();
    const reg = new promClient.Registry();
    const detach = registerDeviceMetrics(reg, { ifname: 'wg-a', device: a.device, peerName: (pk) => (pk === keyToBase64(pubB) ? 'b' : undefined) });
    for (let i = 0; i < 5; i++) a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(100 + i)));
    sim.pump();
    a.device.receiveDatagram(new Uint8Array([9, 9, 9]), { host: '192.0.2.9', port: 1 }); // too short: malformed
    const m = parseMetrics(await reg.metrics());
    const b = keyToBase64(pubB);
    const info = a.device.peerInfo(a.device.getPeer(b)!);
    expect(info.rxBytes).toBeGreaterThan(0);
    expect(m.get(`wireguard_device_info{device="wg-a",public_key="${keyToBase64(pubA)}"}`)).toBe(1);
    expect(m.get(`wireguard_peer_info{device="wg-a",public_key="${b}",endpoint="192.0.2.2:51821",name="b"}`)).toBe(1);
    expect(m.get(`wireguard_peer_allowed_ips_info{device="wg-a",public_key="${b}",allowed_ips="10.0.0.2/32",family="IPv4"}`)).toBe(1);
    expect(m.get(`wireguard_peer_allowed_ips_info{device="wg-a",public_key="${b}",allowed_ips="fd00::2/128",family="IPv6"}`)).toBe(1);
    expect(m.get(`wireguard_peer_receive_bytes_total{device="wg-a",public_key="${b}"}`)).toBe(info.rxBytes);
    expect(m.get(`wireguard_peer_transmit_bytes_total{device="wg-a",public_key="${b}"}`)).toBe(info.txBytes);
    expect(m.get(`wireguard_peer_last_handshake_seconds{device="wg-a",public_key="${b}"}`)).toBe(Math.floor(info.lastHandshake / 1000));
    expect(a.device.stats.malformed).toBe(1);
    for (const reason of DROP_REASONS) expect(m.get(`tsguard_dropped_packets_total{device="wg-a",reason="${reason}"}`), reason).toBe(a.device.stats[reason]);
    expect(m.get('tsguard_handshakes_total{device="wg-a",role="initiator"}')).toBe(1);
    expect(m.get('tsguard_handshakes_total{device="wg-a",role="responder"}')).toBe(0);
    expect(m.get('tsguard_cookie_replies_sent_total{device="wg-a"}')).toBe(0);
    expect(m.get('tsguard_peers{device="wg-a"}')).toBe(1);

    // The next scrape reads the counters again (lazily: nothing was updated per packet).
    a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(500)));
    sim.pump();
    const m2 = parseMetrics(await reg.metrics());
    const tx2 = a.device.peerInfo(a.device.getPeer(b)!).txBytes;
    expect(tx2).toBeGreaterThan(info.txBytes);
    expect(m2.get(`wireguard_peer_transmit_bytes_total{device="wg-a",public_key="${b}"}`)).toBe(tx2);
    // A removed peer disappears from the next scrape.
    a.device.removePeer(b);
    expect(samples(parseMetrics(await reg.metrics()), 'wireguard_peer_info')).toEqual([]);
    detach();
  });
});

describe('MetricsServer', () => {
  let server: MetricsServer | null = null;
  afterEach(async () => {
    await server?.close();
    server = null;
  });

  it('serves /metrics, /healthz (200 only when every check passes), 404 and 405', async () => {
    const reg = new promClient.Registry();
    new promClient.Gauge({ name: 'x_up', help: 'x', registers: [reg] }).set(1);
    let registryOk = true;
    server = await MetricsServer.start({
      listen: { host: '127.0.0.1', port: 0 },
      registry: reg,
      health: {
        device: () => ({ ok: true, detail: 'up' }),
        registry: async () => {
          if (!registryOk) throw new Error('registry ping: the registry is closed');
          return { ok: true, detail: 'answers' };
        },
      },
      routes: { '/status.json': () => ({ type: 'application/json', body: '{"a":1}' }) },
    });
    const get = (path: string, init?: RequestInit) => fetch(`${server!.url}${path}`, init);
    const metrics = await get('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await metrics.text()).toContain('x_up 1');

    let h = await get('/healthz');
    expect(h.status).toBe(200);
    expect(await h.json()).toEqual({ status: 'ok', checks: { device: { ok: true, detail: 'up' }, registry: { ok: true, detail: 'answers' } } });
    registryOk = false;
    h = await get('/healthz');
    expect(h.status).toBe(503);
    expect(await h.json()).toMatchObject({ status: 'unavailable', checks: { registry: { ok: false, detail: 'registry ping: the registry is closed' } } });

    expect(await (await get('/status.json')).json()).toEqual({ a: 1 });
    expect((await get('/nope')).status).toBe(404);
    const post = await get('/metrics', { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });

  it('says clearly when the address is taken', async () => {
    server = await MetricsServer.start({ listen: { host: '127.0.0.1', port: 0 }, registry: new promClient.Registry(), health: {} });
    await expect(MetricsServer.start({ listen: server.address, registry: new promClient.Registry(), health: {} })).rejects.toThrow(
      `metrics: cannot listen on 127.0.0.1:${server.address.port}: address already in use`,
    );
  });

  it('runHealth counts a throwing probe as not ready', async () => {
    expect(await runHealth({ a: () => { throw new Error('no'); } })).toEqual({ status: 'unavailable', checks: { a: { ok: false, detail: 'no' } } });
  });
});
