/**
 * `hub up --metrics` in network namespaces: the status page in a real headless chromium
 * (Debian's, through playwright-core) shows a device and a client going online and the
 * transfer and relay numbers updating as traffic flows; the hub's metrics (relay per
 * peer, registrations by result, free addresses, registry); /healthz turns 503 while
 * the registry file is gone and 200 when it is back; refused relays are logged.
 *
 *   ns P1: wireguard-go device dev1      ns P2: wireguard-go client cli1    (client ↔ device is relayed)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMetrics } from './helpers/metrics.js';
import { HubTopology, parseAdded, teardownHubTopologies, type HubPeer } from './net/hub-topology.js';
import { nsFetch, nsGet } from './net/http.js';
import { ping, ROOT, shouldSkip, waitFor } from './net/netns.js';

const SKIP = shouldSkip('hub-status.test.ts', ['ip', 'wg', 'wireguard-go', 'ping', 'chromium']);
const METRICS = 'http://127.0.0.1:9590';
const FIXTURE = join(ROOT, 'test/fixtures/status-browser.mjs');

interface Row {
  name: string;
  kind: string;
  address: string;
  state: string;
  rx: number;
  rxText: string;
  relayed: number;
  refused: number;
}
type Step = { step: string; rows?: Row[]; registry?: string; errors?: string[] };

/** The browser fixture, its JSON steps as they arrive. */
function browser(ns: string, args: string[]): { child: ChildProcess; next: (step: string) => Promise<Step>; stderr: () => string } {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, FIXTURE, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const steps: Step[] = [];
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  createInterface({ input: child.stdout! }).on('line', (l) => steps.push(JSON.parse(l) as Step));
  const next = (step: string) =>
    waitFor(`browser step "${step}"`, () => {
      if (child.exitCode !== null && !steps.some((s) => s.step === step)) throw new Error(`browser exited (${child.exitCode}): ${err}`);
      return steps.find((s) => s.step === step) ?? null;
    }, 60_000, 50);
  return { child, next, stderr: () => err };
}

/** Let the fixture close chromium and exit (it does after its last step); SIGTERM, then SIGKILL, if it does not. */
async function stopBrowser(child: ChildProcess): Promise<void> {
  const exited = (ms: number) =>
    child.exitCode !== null || child.signalCode !== null
      ? Promise.resolve(true)
      : new Promise<boolean>((resolve) => {
          const t = setTimeout(() => resolve(false), ms);
          child.once('exit', () => {
            clearTimeout(t);
            resolve(true);
          });
        });
  if (await exited(10_000)) return;
  child.kill('SIGTERM');
  if (await exited(10_000)) return;
  child.kill('SIGKILL');
  await exited(5_000);
}

describe.skipIf(SKIP)('hub status page, metrics and health (network namespaces, headless chromium)', () => {
  let t: HubTopology;
  let dev1: HubPeer;
  let cli1: HubPeer;

  beforeAll(async () => {
    t = await HubTopology.create({ peers: 2, subnet: '10.62.0.0/24' });
    await t.startHub(['--metrics', '127.0.0.1:9590', '--api', '127.0.0.1:8443', '--api-insecure-http'], { LOG_LEVEL: 'verbose' });
    const kd = await t.keys();
    const kc = await t.keys();
    const ipd = parseAdded(await t.cliOk(['device', 'add', 'dev1', '--public-key', kd.pub]));
    const ipc = parseAdded(await t.cliOk(['client', 'add', 'cli1', '--public-key', kc.pub]));
    await t.waitHub('the hub to list both peers', (m) => m.has(kd.pub) && m.has(kc.pub), 5000);
    [dev1, cli1] = await Promise.all([t.startPeer(1, 'dev1', kd, ipd), t.startPeer(2, 'cli1', kc, ipc)]);
    await Promise.all([t.waitHandshake(kd.pub), t.waitHandshake(kc.pub)]);
  }, 90_000);

  afterAll(async () => {
    if (process.env.HUB_TEST_LOG && t?.hub) console.log(t.hub.log());
    await teardownHubTopologies();
  });

  it('the status page shows both peers going online, then rx and relay counts updating while traffic flows', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tsguard-chromium-'));
    const shotDir = mkdtempSync(join(tmpdir(), 'tsguard-shot-'));
    const shot = join(shotDir, 'status-page.png');
    const b = browser(t.hubNs, [`${METRICS}/`, dataDir, shot, 'dev1', 'cli1']);
    try {
      const online = await b.next('online');
      const byName = new Map(online.rows!.map((r) => [r.name, r]));
      expect(byName.get('dev1')).toMatchObject({ kind: 'device', address: dev1.ip, state: 'online' });
      expect(byName.get('cli1')).toMatchObject({ kind: 'client', address: cli1.ip, state: 'online' });
      const rx0 = byName.get('dev1')!.rx;
      const relayed0 = byName.get('cli1')!.relayed;

      // cli1 → dev1 through the hub's relay.
      const r = await ping(cli1.ns, dev1.ip, { count: 10, interval: 0.05 });
      // With a deadline ping sends until 10 replies are in; two replies read in one wakeup can make it 11.
      expect(r.received, r.output).toBeGreaterThanOrEqual(10);
      expect(r.received, r.output).toBeLessThanOrEqual(r.transmitted);
      b.child.stdin!.write(`traffic dev1 ${rx0} cli1 ${relayed0}\n`);
      const updated = await b.next('updated');
      await b.next('done');
      const after = new Map(updated.rows!.map((x) => [x.name, x]));
      expect(after.get('dev1')!.rx).toBeGreaterThan(rx0);
      expect(after.get('dev1')!.rxText).toMatch(/^\d+(\.\d\d)? (B|KiB|MiB)$/);
      expect(after.get('cli1')!.relayed).toBeGreaterThanOrEqual(10);
      expect(updated.registry).toBe('ok');
      expect(updated.errors).toEqual([]);
      expect(existsSync(shot)).toBe(true);
      const keep = process.env.STATUS_PAGE_SCREENSHOT;
      if (keep) {
        mkdirSync(dirname(keep), { recursive: true });
        copyFileSync(shot, keep);
      }
    } finally {
      await stopBrowser(b.child);
      // chromium may still be flushing its profile when the fixture exits: retry on ENOTEMPTY/EBUSY.
      rmSync(dataDir, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
      rmSync(shotDir, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
    }
    // The page's numbers are the device's: /status.json agrees with wg show.
    const status = JSON.parse((await nsGet(t.hubNs, `${METRICS}/status.json`)).body) as { peers: Array<{ publicKey: string; rxBytes: number; txBytes: number }> };
    const dump = await t.hubDump();
    for (const p of status.peers) {
      const d = dump.peers.find((x) => x.publicKey === p.publicKey)!;
      expect(p.rxBytes).toBeLessThanOrEqual(d.rx); // keepalives may arrive between the two reads
      expect(p.rxBytes).toBeGreaterThan(0);
    }
  }, 120_000);

  it('hub metrics: wireguard_exporter families with names, relayed/refused per peer, registrations by result, free addresses, registry up', async () => {
    // One refused and one accepted registration.
    const noToken = await nsFetch(t.hubNs, 'http://127.0.0.1:8443/v1/register', { method: 'POST', body: '{}' });
    expect(noToken.status).toBe(401);
    const token = (JSON.parse(await t.cliOk(['token', 'create', '--json'])) as { token: string }).token;
    const agent = await t.keys();
    const ok = await nsFetch(t.hubNs, 'http://127.0.0.1:8443/v1/register', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ agent_id: 'agent1', public_key: agent.pub }),
    });
    expect(ok.status, ok.body).toBe(200);
    const m = parseMetrics((await nsGet(t.hubNs, `${METRICS}/metrics`)).body);
    const dump = await t.hubDump();
    const dev = dump.peers.find((p) => p.publicKey === dev1.keys.pub)!;
    const hubIf = t.hubIf;
    expect(m.get(`wireguard_peer_info{device="${hubIf}",public_key="${dev1.keys.pub}",endpoint="${dev.endpoint}",name="device/dev1"}`)).toBe(1);
    expect(m.get(`wireguard_peer_receive_bytes_total{device="${hubIf}",public_key="${dev1.keys.pub}"}`)).toBeLessThanOrEqual(dev.rx);
    expect(m.get(`tsguard_hub_relayed_packets_total{device="${hubIf}",public_key="${cli1.keys.pub}",kind="client",name="cli1"}`)).toBeGreaterThanOrEqual(10);
    expect(m.get(`tsguard_hub_refused_packets_total{device="${hubIf}",public_key="${cli1.keys.pub}",kind="client",name="cli1"}`)).toBe(0);
    expect(m.get('tsguard_hub_registrations_total{result="unauthorized"}')).toBe(1);
    expect(m.get('tsguard_hub_registrations_total{result="registered"}')).toBe(1);
    expect(m.get('tsguard_hub_free_addresses')).toBe(253 - 3); // .2–.254 minus dev1, cli1, agent1
    expect(m.get('tsguard_hub_registry_up')).toBe(1);
    expect(m.get('tsguard_hub_registry_latency_seconds')).toBeGreaterThan(0);
    expect(m.get('tsguard_hub_peers{kind="agent"}')).toBe(1);
    expect(m.get(`tsguard_handshakes_total{device="${hubIf}",role="responder"}`)).toBeGreaterThanOrEqual(2);
  });

  it('refused relays are counted per peer and logged (rate limited) at verbose', async () => {
    // dev1 → agent1 (device → device) is refused: device-to-device relay is off.
    const agentIp = (await t.show()).peers.find((p) => p.name === 'agent1')!.address;
    const r = await ping(dev1.ns, agentIp, { count: 5, interval: 0.05, deadline: 2, wait: 1 });
    expect(r.received).toBe(0);
    expect(r.transmitted).toBeGreaterThanOrEqual(5); // without replies ping sends until the deadline
    const m = parseMetrics((await nsGet(t.hubNs, `${METRICS}/metrics`)).body);
    expect(m.get(`tsguard_hub_refused_packets_total{device="${t.hubIf}",public_key="${dev1.keys.pub}",kind="device",name="dev1"}`)).toBe(r.transmitted);
    const lines = t.hub!.log().split('\n').filter((l) => l.includes('relay refused by policy: device dev1 → agent agent1'));
    expect(lines).toHaveLength(1); // every packet refused, one line
    expect(lines[0]).toMatch(/ VERBOSE: /);
    // Peer events were logged too, with names.
    expect(t.hub!.log()).toMatch(/VERBOSE: handshake completed with device dev1 \(/);
  });

  it('/healthz is 503 while the registry file is gone and 200 when it is back; the status page keeps showing the live peers', async () => {
    const file = join(t.dataDir, 'registry.sqlite');
    let h = await nsGet(t.hubNs, `${METRICS}/healthz`);
    expect(h.status, h.body).toBe(200);
    expect(JSON.parse(h.body).checks).toEqual({ device: { ok: true, detail: 'up' }, registry: { ok: true, detail: 'answers' } });
    renameSync(file, `${file}.away`);
    try {
      h = await nsGet(t.hubNs, `${METRICS}/healthz`);
      expect(h.status).toBe(503);
      const body = JSON.parse(h.body) as { status: string; checks: { device: { ok: boolean }; registry: { ok: boolean; detail: string } } };
      expect(body.status).toBe('unavailable');
      expect(body.checks.device.ok).toBe(true);
      expect(body.checks.registry.detail).toMatch(/registry ping: .*registry\.sqlite is gone/);
      const m = parseMetrics((await nsGet(t.hubNs, `${METRICS}/metrics`)).body);
      expect(m.get('tsguard_hub_registry_up')).toBe(0);
      const status = JSON.parse((await nsGet(t.hubNs, `${METRICS}/status.json`)).body) as { registry: { ok: boolean }; peers: { name: string }[] };
      expect(status.registry.ok).toBe(false);
      expect(status.peers.map((p) => p.name).sort()).toEqual(['agent1', 'cli1', 'dev1']);
    } finally {
      renameSync(`${file}.away`, file);
    }
    h = await nsGet(t.hubNs, `${METRICS}/healthz`);
    expect(h.status, h.body).toBe(200);
  });

  it('a normal stop is logged at info, not error', async () => {
    const r = await t.stopHub();
    expect(r.code).toBe(0);
    const log = t.hub!.log();
    expect(log).toMatch(/INFO: hub shutting down: received SIGTERM/);
    expect(log.split('\n').filter((l) => / ERROR: /.test(l)), log).toEqual([]);
  });
});
