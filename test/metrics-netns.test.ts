/**
 * Metrics, health and logs of a real daemon in network namespaces:
 * `tsguard-wg --metrics` against a wireguard-go peer (the scraped counters equal
 * `wg show … transfer`), JSON logs with peer events and no secrets, a normal stop
 * at info; `tsguard up` with TSGUARD_METRICS.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { nsGet } from './net/http.js';
import {
  daemonPid,
  dump,
  genKeyPair,
  INNER,
  nsRun,
  OUTER,
  ping,
  rand,
  ROOT,
  run,
  shouldSkip,
  SOCKET_DIR,
  stableDumps,
  stopDaemon,
  teardownAll,
  Topology,
  TSGUARD_WG,
  waitFor,
  wg,
  wireguardGoPeerB,
} from './net/netns.js';
import { parseMetrics } from './helpers/metrics.js';

const SKIP = shouldSkip('metrics-netns.test.ts', ['ip', 'wg', 'wireguard-go', 'ping']);
const TSGUARD = join(ROOT, 'dist/cli/tsguard.js');

describe.skipIf(SKIP)('metrics and logs of a running tsguard-wg (network namespaces)', () => {
  let t: Topology | null = null;
  afterEach(async () => {
    await t?.teardown();
    t = null;
  });
  afterAll(async () => {
    await teardownAll();
  });

  it('tsguard-wg --metrics: /healthz turns 200 when the tunnel is up, the scraped counters equal wg show transfer, JSON logs carry peer events and no secret', async () => {
    t = await Topology.create();
    const a = await genKeyPair();
    const b = await wireguardGoPeerB(t, a.pub);
    const name = `tsm${rand(3)}`;
    t.ifnames.add(name);
    const dir = t.tempDir();
    const logFile = join(dir, 'daemon.log');
    const base = 'http://127.0.0.1:9586';
    const env = { ...process.env, LOG_LEVEL: 'verbose', TSGUARD_LOG_FILE: logFile };
    await nsRun(t.a, process.execPath, [TSGUARD_WG, '--metrics', '127.0.0.1:9586', '--log-format', 'json', name], { env, timeoutMs: 20_000 });
    const pid = await waitFor('the daemon pid', () => daemonPid(t!.a, name), 5000);

    // Up, but not configured: not ready.
    let h = await nsGet(t.a, `${base}/healthz`);
    expect(h.status).toBe(503);
    expect(JSON.parse(h.body).checks.device.ok).toBe(false);

    const keyFile = join(dir, 'a.key');
    writeFileSync(keyFile, a.priv + '\n', { mode: 0o600 });
    await wg(t.a, ['set', name, 'private-key', keyFile, 'listen-port', '51820', 'peer', b.keys.pub, 'endpoint', `${OUTER.b4}:51821`, 'allowed-ips', `${INNER.b4}/32`]);
    h = await nsGet(t.a, `${base}/healthz`);
    expect(h.status, h.body).toBe(503); // key set, interface still down
    expect(JSON.parse(h.body).checks.device.detail).toBe(`interface ${name} is down`);
    await run('ip', ['-n', t.a, 'addr', 'add', `${INNER.a4}/24`, 'dev', name]);
    await run('ip', ['-n', t.a, 'link', 'set', name, 'up', 'mtu', '1420']);
    h = await nsGet(t.a, `${base}/healthz`);
    expect(h.status, h.body).toBe(200);
    expect(JSON.parse(h.body)).toEqual({ status: 'ok', checks: { device: { ok: true, detail: 'up' } } });

    const r = await ping(t.a, INNER.b4, { count: 10, interval: 0.05 });
    expect(r.received, r.output).toBe(10);
    const [da] = await stableDumps({ ns: t.a, ifname: name }, { ns: t.b!, ifname: b.daemon.ifname });
    const scrape = await nsGet(t.a, `${base}/metrics`);
    expect(scrape.status).toBe(200);
    expect(scrape.type).toMatch(/^text\/plain/);
    const after = await dump(t.a, name);
    const peer = da.peers[0]!;
    expect(after.peers[0]!.rx).toBe(peer.rx); // nothing moved during the scrape
    expect(peer.rx).toBeGreaterThan(10 * 84);
    const m = parseMetrics(scrape.body);
    const labels = `device="${name}",public_key="${b.keys.pub}"`;
    expect(m.get(`wireguard_peer_receive_bytes_total{${labels}}`)).toBe(peer.rx);
    expect(m.get(`wireguard_peer_transmit_bytes_total{${labels}}`)).toBe(peer.tx);
    expect(m.get(`wireguard_peer_last_handshake_seconds{${labels}}`)).toBe(peer.latestHandshake);
    expect(m.get(`wireguard_device_info{device="${name}",public_key="${a.pub}"}`)).toBe(1);
    expect(m.get(`wireguard_peer_info{${labels},endpoint="${OUTER.b4}:51821",name=""}`)).toBe(1);
    expect(m.get(`wireguard_peer_allowed_ips_info{${labels},allowed_ips="${INNER.b4}/32",family="IPv4"}`)).toBe(1);
    expect(m.get(`tsguard_handshakes_total{device="${name}",role="initiator"}`)).toBe(1);

    // A normal stop is logged at info; the JSON log has the peer event and never the private key.
    await stopDaemon({ ns: t.a, impl: 'tsguard', ifname: name, pid, socket: `${SOCKET_DIR}/${name}.sock` });
    const text = readFileSync(logFile, 'utf8');
    const lines = text.trim().split('\n').map((l) => JSON.parse(l) as { level: string; msg: string; time: string; endpoint?: string });
    expect(lines.find((l) => l.msg.startsWith('handshake completed with'))).toMatchObject({ level: 'verbose', endpoint: `${OUTER.b4}:51821` });
    expect(lines.find((l) => l.msg === 'shutting down: received SIGTERM')).toMatchObject({ level: 'info' });
    expect(lines.filter((l) => l.level === 'error'), text).toEqual([]);
    const hex = Buffer.from(a.priv, 'base64').toString('hex');
    expect(text).not.toContain(a.priv);
    expect(text).not.toContain(hex);
  });

  it('tsguard up with TSGUARD_METRICS serves /healthz and /metrics; deleting the interface stops the daemon with an info line', async () => {
    t = await Topology.create();
    const a = await genKeyPair();
    const b = await wireguardGoPeerB(t, a.pub);
    const name = `tsq${rand(3)}`;
    t.ifnames.add(name);
    const dir = t.tempDir();
    const conf = join(dir, `${name}.conf`);
    const logFile = join(dir, 'daemon.log');
    writeFileSync(
      conf,
      ['[Interface]', `PrivateKey = ${a.priv}`, `Address = ${INNER.a4}/24`, 'ListenPort = 51820', '', '[Peer]', `PublicKey = ${b.keys.pub}`, `Endpoint = ${OUTER.b4}:51821`, `AllowedIPs = ${INNER.b4}/32`, ''].join('\n'),
      { mode: 0o600 },
    );
    const env = { ...process.env, TSGUARD_METRICS: '127.0.0.1:9587', TSGUARD_LOG_FILE: logFile, LOG_LEVEL: 'info' };
    const up = await nsRun(t.a, process.execPath, [TSGUARD, 'up', conf], { env, allowFail: true, timeoutMs: 30_000 });
    expect(up.code, up.stderr).toBe(0);
    expect(up.stderr).toContain(`[#] tsguard-wg ${name}`);
    const h = await nsGet(t.a, 'http://127.0.0.1:9587/healthz');
    expect(h.status, h.body).toBe(200);
    expect((await ping(t.a, INNER.b4, { count: 3, interval: 0.1 })).received).toBeGreaterThanOrEqual(3);
    const m = parseMetrics((await nsGet(t.a, 'http://127.0.0.1:9587/metrics')).body);
    expect(m.get(`wireguard_peer_receive_bytes_total{device="${name}",public_key="${b.keys.pub}"}`)).toBeGreaterThan(0);

    const pid = await waitFor('the daemon pid', () => daemonPid(t!.a, name), 5000);
    const down = await nsRun(t.a, process.execPath, [TSGUARD, 'down', conf], { allowFail: true, timeoutMs: 30_000 });
    expect(down.code, down.stderr).toBe(0);
    await waitFor('the daemon to exit', async () => (await nsRun(t!.a, 'kill', ['-0', String(pid)], { allowFail: true })).code !== 0, 10_000);
    const log = readFileSync(logFile, 'utf8');
    expect(log).toMatch(/INFO: tun: TUN interface '.+' is gone/);
    expect(log).toMatch(/INFO: shutting down: interface .+ was deleted/);
    expect(log).not.toContain('ERROR');
  });
});
