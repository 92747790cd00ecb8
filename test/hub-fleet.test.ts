/**
 * Fleet API source of the hub, end to end (network namespaces): a fake fleet API (node:http,
 * run inside the hub's namespace on 127.0.0.1) serves a JSON file that the test edits;
 * `tsguard hub up --factory … --api-url … --api-token-file … --api-interval 1` must reflect
 * every change in `wg show HUBIF`, keep the live peers while the API fails or hangs, and
 * never show the token in its log or command line.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_API_SCRIPT, HubTopology, teardownHubTopologies, type HubPeer } from './net/hub-topology.js';
import { collect, nsSpawn, ping, rand, run, shouldSkip, waitFor, type KeyPair } from './net/netns.js';

const SKIP = shouldSkip('hub-fleet.test.ts', ['ip', 'wg', 'wireguard-go', 'ping']);

const SUBNET = '10.61.0.0/24';
const HUB_IP = '10.61.0.1';
const FACTORY = 'acme-factory';
const API_PORT = 18080;

interface ApiDevice {
  name: string;
  pubkey: string;
  ip: string;
  enabled: boolean;
}

interface ApiRequest {
  t: number;
  method: string;
  url: string;
  token: string | null;
  mode: string;
}

describe.skipIf(SKIP)('tsguard hub: fleet API source (network namespaces)', () => {
  let t: HubTopology;
  let dataFile: string;
  let modeFile: string;
  let reqLog: string;
  let token: string;
  let fa: HubPeer; // the one real (wireguard-go) device
  const k: Record<string, KeyPair> = {};
  let devices: ApiDevice[] = [];
  const timings: Record<string, number> = {};

  const publish = (list: ApiDevice[]) => {
    devices = list;
    t.writeAtomic(dataFile, JSON.stringify(list));
  };
  const setMode = (m: 'ok' | '500' | 'hang' | 'badjson') => t.writeAtomic(modeFile, m + '\n');
  const requests = (): ApiRequest[] =>
    readFileSync(reqLog, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as ApiRequest);
  /** Expected `wg show` allowed-ips: enabled devices only. */
  const expected = () => new Map(devices.filter((d) => d.enabled).map((d) => [d.pubkey, `${d.ip}/32`]));
  const sameMap = (a: Map<string, string>, b: Map<string, string>) => a.size === b.size && [...a].every(([key, v]) => b.get(key) === v);

  /** Publish `list` and wait until the hub shows exactly it; returns the ms it took. */
  async function publishAndWait(what: string, list: ApiDevice[]): Promise<number> {
    const t0 = Date.now();
    publish(list);
    await t.waitHub(what, (m) => sameMap(m, expected()), 3000);
    return (timings[what] = Date.now() - t0);
  }

  beforeAll(async () => {
    t = await HubTopology.create({ peers: 1, subnet: SUBNET });
    dataFile = t.path('api.json');
    modeFile = t.path('api.mode');
    reqLog = t.path('api.log');
    writeFileSync(reqLog, '');
    const script = t.path('fake-api.mjs');
    writeFileSync(script, FAKE_API_SCRIPT);
    token = `osf-${rand(18)}`;
    const tokenFile = t.path('api.token');
    writeFileSync(tokenFile, token + '\n', { mode: 0o600 });

    for (const n of ['fa', 'fb', 'fc', 'fc2', 'fd', 'fe']) k[n] = await t.keys();
    setMode('ok');
    publish([
      { name: 'fa', pubkey: k.fa!.pub, ip: '10.61.0.10', enabled: true },
      { name: 'fb', pubkey: k.fb!.pub, ip: '10.61.0.11', enabled: true },
      { name: 'fc', pubkey: k.fc!.pub, ip: '10.61.0.12', enabled: true },
    ]);

    const api = nsSpawn(t.hubNs, process.execPath, [script, String(API_PORT), dataFile, modeFile, reqLog]);
    const apiDone = collect(api, 600_000);
    let out = '';
    api.stdout!.on('data', (d: string) => (out += d));
    await waitFor('the fake API to listen', async () => {
      if (api.exitCode !== null) throw new Error(`fake API exited: ${JSON.stringify(await apiDone)}`);
      return out.includes('listening');
    }, 10_000);

    await t.startHub([
      '--factory', FACTORY, '--api-url', `http://127.0.0.1:${API_PORT}`, '--api-token-file', tokenFile, '--api-interval', '1',
    ]);
    await t.waitHub('the three API devices on the hub', (m) => sameMap(m, expected()), 5000);
    fa = await t.startPeer(1, 'fa', k.fa!, '10.61.0.10');
    await t.waitHandshake(fa.keys.pub);
    const r = await ping(fa.ns, HUB_IP, { count: 3, interval: 0.1 });
    expect(r.received, r.output).toBeGreaterThanOrEqual(3);
  }, 60_000);

  afterAll(async () => {
    if (Object.keys(timings).length) console.log(`[hub-fleet.test.ts] observed latencies (ms): ${JSON.stringify(timings)}`);
    if (process.env.HUB_TEST_LOG && t?.hub) console.log(t.hub.log());
    await teardownHubTopologies();
  }, 60_000);

  it('devices added, removed, re-addressed, re-keyed and disabled in the API are reflected in `wg show`', async () => {
    const reqs = requests();
    expect(reqs.length).toBeGreaterThan(0);
    for (const q of reqs) expect(q).toMatchObject({ method: 'GET', url: `/ota/factories/${FACTORY}/wireguard-ips/`, token });

    const base = devices.slice();
    await publishAndWait('add fd', [...base, { name: 'fd', pubkey: k.fd!.pub, ip: '10.61.0.13', enabled: true }]);
    await publishAndWait('remove fb', devices.filter((d) => d.name !== 'fb'));
    await publishAndWait('re-address fc', devices.map((d) => (d.name === 'fc' ? { ...d, ip: '10.61.0.20' } : d)));
    await publishAndWait('re-key fc', devices.map((d) => (d.name === 'fc' ? { ...d, pubkey: k.fc2!.pub } : d)));
    await publishAndWait('disable fd', devices.map((d) => (d.name === 'fd' ? { ...d, enabled: false } : d)));

    const show = new Map((await t.show()).peers.map((p) => [p.name, p]));
    expect([...show.keys()].sort()).toEqual(['fa', 'fc', 'fd']);
    expect(show.get('fc')).toMatchObject({ kind: 'device', source: 'fleet-api', address: '10.61.0.20', publicKey: k.fc2!.pub, enabled: true });
    expect(show.get('fd')).toMatchObject({ address: '10.61.0.13', enabled: false });
    const hubKeys = new Set((await t.hubDump()).peers.map((p) => p.publicKey));
    expect(hubKeys.has(k.fb!.pub) || hubKeys.has(k.fc!.pub) || hubKeys.has(k.fd!.pub)).toBe(false);

    await publishAndWait('enable fd', devices.map((d) => (d.name === 'fd' ? { ...d, enabled: true } : d)));
    // The real device was never disturbed.
    const r = await ping(fa.ns, HUB_IP, { count: 3, interval: 0.1 });
    expect(r.received, r.output).toBeGreaterThanOrEqual(3);
  }, 60_000);

  it('an API answering 500, invalid JSON or nothing at all for several polls leaves the live peers untouched', async () => {
    const live = await t.hubAllowedIps();
    expect(sameMap(live, expected())).toBe(true);
    const cfg = await t.peersConfig();
    const unchanged = async (what: string) => {
      expect(sameMap(await t.hubAllowedIps(), live), what).toBe(true);
      expect(await t.peersConfig(), what).toEqual(cfg);
      const r = await ping(fa.ns, HUB_IP, { count: 2, interval: 0.1 });
      expect(r.received, `${what}: fa → hub\n${r.output}`).toBeGreaterThanOrEqual(2);
    };
    const countIn = (mode: string, since: number) => requests().filter((q) => q.mode === mode && q.t >= since).length;
    // What the API will say once it recovers: applying it would remove every device but fa.
    const recovered: ApiDevice[] = [devices.find((d) => d.name === 'fa')!, { name: 'fe', pubkey: k.fe!.pub, ip: '10.61.0.14', enabled: true }];

    // ── 500 ──
    let since = Date.now();
    setMode('500');
    t.writeAtomic(dataFile, JSON.stringify(recovered)); // not served while failing
    await waitFor('three polls answered with 500', () => countIn('500', since) >= 3, 10_000);
    await unchanged('during 500s');
    expect(t.hub!.log()).toMatch(/fleet-api: GET .* failed: HTTP 500.*keeping the last known devices/);

    // ── invalid JSON ──
    since = Date.now();
    setMode('badjson');
    await waitFor('three polls answered with invalid JSON', () => countIn('badjson', since) >= 3, 10_000);
    await unchanged('during invalid JSON');
    expect(t.hub!.log()).toMatch(/the answer is not JSON/);

    // ── hang: the hub's request timeout is 15 s, then it retries (and hangs again) ──
    since = Date.now();
    setMode('hang');
    await waitFor('two hanging polls (one timed out)', () => countIn('hang', since) >= 2, 25_000, 200);
    timings.hangRetryAfter = Date.now() - since;
    expect(t.hub!.log()).toMatch(/no complete answer within 15 s/);
    await unchanged('during a hanging API');

    // ── recovery: the next good answer applies ──
    since = Date.now();
    devices = recovered;
    setMode('ok');
    await t.waitHub('the recovered answer applied', (m) => sameMap(m, expected()), 5000);
    timings.recovery = Date.now() - since;
    const r = await ping(fa.ns, HUB_IP, { count: 2, interval: 0.1 });
    expect(r.received, r.output).toBeGreaterThanOrEqual(2);
  }, 90_000);

  it('the API token appears neither in the hub log nor in its command line / `ps`', async () => {
    const pid = t.hub!.pid;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    expect(cmdline.some((a) => a.endsWith('tsguard.js'))).toBe(true);
    expect(cmdline).toContain('--api-token-file');
    expect(cmdline.join(' ')).not.toContain(token);
    expect(readFileSync(`/proc/${pid}/environ`, 'utf8')).not.toContain(token);
    const ps = await run('ps', ['-eww', '-o', 'pid=,args=']);
    expect(ps.stdout).toContain(String(pid));
    expect(ps.stdout).not.toContain(token);
    const log = t.hub!.log();
    expect(log.length).toBeGreaterThan(0);
    expect(log).not.toContain(token);
    expect(log).not.toContain(token.slice(4)); // not even partially
    expect((await t.cli(['show', '--json'])).stdout).not.toContain(token);
    // …while every request carried it.
    const reqs = requests();
    expect(reqs.length).toBeGreaterThan(10);
    expect(reqs.every((q) => q.token === token)).toBe(true);
  });
});
