/**
 * Fleet hub acceptance (network namespaces): `tsguard hub up` in namespace H, wireguard-go
 * devices and clients each in a namespace of its own (see test/net/hub-topology.ts).
 *
 *   P1 dev1, P2 dev2, P3 dev3 (+ route 10.99.3.0/24): devices added with `hub device add`
 *   P4 cli1: client added with `hub client add --public-key`
 *   P5 alice: client added/removed through the clients file
 *   P6 bob: client added (generated key + wg-quick config) and removed with `hub client add/remove`
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REGISTRY_FILE } from '../src/hub/registry/index.js';
import { HubTopology, parseAdded, teardownHubTopologies, type HubPeer } from './net/hub-topology.js';
import { nsRun, ping, run, shouldSkip, sleep, waitFor, type PingResult } from './net/netns.js';

const SKIP = shouldSkip('hub.test.ts', ['ip', 'wg', 'wireguard-go', 'ping']);

const SUBNET = '10.60.0.0/24';
const HUB_IP = '10.60.0.1';
const DEV3_ROUTE = '10.99.3.0/24';

/** Ping with one probe per second until one is answered; returns the ms it took. */
async function pingUntil(ns: string, dst: string, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const r = await nsRun(ns, 'ping', ['-n', '-q', '-c', '1', '-W', '1', dst], { allowFail: true, timeoutMs: 10_000 });
    if (r.code === 0) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`no reply from ${dst} in ${ns} within ${timeoutMs} ms:\n${r.stdout}`);
  }
}

async function expectPings(ns: string, dst: string, what: string): Promise<void> {
  const r = await ping(ns, dst, { count: 3, interval: 0.1, deadline: 10 });
  expect(r.received, `${what}:\n${r.output}`).toBeGreaterThanOrEqual(3);
}

async function expectNoPings(ns: string, dst: string, what: string): Promise<void> {
  const r = await ping(ns, dst, { count: 3, interval: 0.2, deadline: 3, wait: 1 });
  expect(r.received, `${what}:\n${r.output}`).toBe(0);
}

describe.skipIf(SKIP)('tsguard hub: relay between wireguard-go devices and clients (network namespaces)', () => {
  let t: HubTopology;
  let clientsFile: string;
  const devs: HubPeer[] = [];
  let cli1: HubPeer;
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    t = await HubTopology.create({ peers: 6, subnet: SUBNET });
    clientsFile = t.path('clients.conf');
    t.writeAtomic(clientsFile, '# engineers\n');
    await t.startHub(['--clients-file', clientsFile]);

    // Register every peer, wait until the hub lists it, only then configure its wireguard-go.
    const reg: Array<{ i: number; name: string; keys: Awaited<ReturnType<HubTopology['keys']>>; ip: string }> = [];
    for (const [i, name] of [
      [1, 'dev1'],
      [2, 'dev2'],
      [3, 'dev3'],
    ] as const) {
      const keys = await t.keys();
      const extra = name === 'dev3' ? ['--route', DEV3_ROUTE] : [];
      const ip = parseAdded(await t.cliOk(['device', 'add', name, '--public-key', keys.pub, ...extra]));
      reg.push({ i, name, keys, ip });
    }
    const ck = await t.keys();
    reg.push({ i: 4, name: 'cli1', keys: ck, ip: parseAdded(await t.cliOk(['client', 'add', 'cli1', '--public-key', ck.pub])) });
    await t.waitHub('the hub to list all four peers', (m) => reg.every((r) => m.has(r.keys.pub)), 5000);
    const peers = await Promise.all(reg.map((r) => t.startPeer(r.i, r.name, r.keys, r.ip)));
    await Promise.all(peers.map((p) => t.waitHandshake(p.keys.pub)));
    devs.push(...peers.slice(0, 3));
    cli1 = peers[3]!;
  }, 90_000);

  afterAll(async () => {
    if (Object.keys(timings).length) console.log(`[hub.test.ts] observed latencies (ms): ${JSON.stringify(timings)}`);
    if (t?.hub) {
      const log = t.hub.log();
      if (process.env.HUB_TEST_LOG) console.log(log);
    }
    await teardownHubTopologies();
  }, 60_000);

  it('relays client ↔ device, refuses (and counts) device → device, answers hub-addressed pings', async () => {
    const show = await t.show();
    expect(show.address).toBe(HUB_IP);
    expect(show.allowDeviceToDevice).toBe(false);
    const byName = new Map(show.peers.map((p) => [p.name, p]));
    for (const p of [...devs, cli1]) {
      expect(byName.get(p.name), p.name).toMatchObject({ address: p.ip, publicKey: p.keys.pub, kind: p.name.startsWith('dev') ? 'device' : 'client' });
    }
    expect(byName.get('dev3')!.routes).toEqual([DEV3_ROUTE]);
    // The hub's own allowed-ips: /32 each, plus dev3's route.
    const allowed = await t.hubAllowedIps();
    expect(allowed.get(devs[2]!.keys.pub)).toBe([`${devs[2]!.ip}/32`, DEV3_ROUTE].sort().join(','));

    for (const d of devs) await expectPings(cli1.ns, d.ip, `client cli1 → ${d.name}`);
    for (const p of [...devs, cli1]) await expectPings(p.ns, HUB_IP, `${p.name} → hub`);

    // Device → device: refused by policy without --allow-device-to-device.
    await expectNoPings(devs[0]!.ns, devs[1]!.ip, 'dev1 → dev2 must be refused');
    const after = new Map((await t.show()).peers.map((p) => [p.name, p]));
    expect(after.get('dev1')!.refused).toBeGreaterThanOrEqual(3);
    expect(after.get('dev2')!.refused).toBe(0);
    expect(after.get('cli1')!.relayed).toBeGreaterThanOrEqual(9); // echo requests to the devices
    expect(after.get('dev1')!.relayed).toBeGreaterThanOrEqual(3); // echo replies to cli1
    expect(after.get('cli1')!.latestHandshake).toBeGreaterThan(0);
    expect(after.get('cli1')!.endpoint).toMatch(/^192\.168\.64\.2:\d+$/);
  });

  it('clients file and `hub client add/remove` take effect within a second while a client → device flood loses nothing', async () => {
    const flood = { stop: false, results: [] as PingResult[] };
    const floodDone = (async () => {
      while (!flood.stop) flood.results.push(await ping(cli1.ns, devs[0]!.ip, { count: 1500, interval: 0.002, deadline: 30, wait: 2 }));
    })();
    try {
      await sleep(200);

      // ── clients file: add alice ──
      const alice = await t.keys();
      const aliceIp = '10.60.0.50';
      let t0 = Date.now();
      t.writeAtomic(clientsFile, `# engineers\n${alice.pub} ${aliceIp} alice laptop\n`);
      await t.waitHub('alice (clients file) on the hub', (m) => m.get(alice.pub) === `${aliceIp}/32`, 3000);
      timings.clientsFileAdd = Date.now() - t0;
      const alicePeer = await t.startPeer(5, 'alice', alice, aliceIp);
      await t.waitHandshake(alice.pub);
      await expectPings(alicePeer.ns, devs[1]!.ip, 'alice → dev2');
      await expectPings(alicePeer.ns, HUB_IP, 'alice → hub');
      const s = (await t.show()).peers.find((p) => p.publicKey === alice.pub);
      expect(s).toMatchObject({ kind: 'client', name: 'alice', source: 'clients-file', address: aliceIp });
      // client ↔ client is not relayed
      await expectNoPings(alicePeer.ns, cli1.ip, 'alice → cli1 (client ↔ client) must be refused');

      // ── clients file: remove alice ──
      t0 = Date.now();
      t.writeAtomic(clientsFile, '# engineers\n');
      await t.waitHub('alice gone from the hub', (m) => !m.has(alice.pub), 3000);
      timings.clientsFileRemove = Date.now() - t0;
      await expectNoPings(alicePeer.ns, devs[1]!.ip, 'alice removed: alice → dev2');
      expect((await t.show()).peers.some((p) => p.publicKey === alice.pub)).toBe(false);
      await t.stopPeer(alicePeer);

      // ── CLI: add bob without a key (generated config) ──
      t0 = Date.now();
      const conf = await t.cliOk(['client', 'add', 'bob']);
      const priv = /^PrivateKey = (\S+)$/m.exec(conf)?.[1];
      const addr = /^Address = (\d+\.\d+\.\d+\.\d+)\/32$/m.exec(conf)?.[1];
      expect(priv, conf).toBeDefined();
      expect(addr, conf).toBeDefined();
      const bobPub = (await run('wg', ['pubkey'], { input: priv + '\n' })).stdout.trim();
      await t.waitHub('bob (CLI) on the hub', (m) => m.get(bobPub) === `${addr}/32`, 3000);
      timings.cliAdd = Date.now() - t0; // includes the CLI process start
      expect(conf).toMatch(new RegExp(`^PublicKey = ${(await t.hubPublicKey()).replace(/[+/]/g, '\\$&')}$`, 'm'));
      expect(conf).toMatch(/^AllowedIPs = 10\.60\.0\.0\/24$/m);
      expect(conf).toMatch(new RegExp(`^Endpoint = ${t.hubOuter(1).replace(/\./g, '\\.')}:${t.port}$`, 'm'));
      const bobPeer = await t.startPeer(6, 'bob', { priv: priv!, pub: bobPub }, addr!);
      await t.waitHandshake(bobPub);
      await expectPings(bobPeer.ns, devs[2]!.ip, 'bob → dev3');

      // ── CLI: remove bob ──
      t0 = Date.now();
      expect(await t.cliOk(['client', 'remove', 'bob'])).toContain('client bob removed');
      await t.waitHub('bob gone from the hub', (m) => !m.has(bobPub), 3000);
      timings.cliRemove = Date.now() - t0;
      await expectNoPings(bobPeer.ns, devs[2]!.ip, 'bob removed: bob → dev3');
      await t.stopPeer(bobPeer);
    } finally {
      flood.stop = true;
      await floodDone;
    }
    expect(flood.results.length).toBeGreaterThan(0);
    for (const r of flood.results) {
      expect(r.transmitted, r.output).toBe(1500);
      expect(r.received, `flood cli1 → dev1 lost packets:\n${r.output}`).toBe(1500);
      expect(r.loss).toBe('0');
    }
    timings.floodChunks = flood.results.length;
  }, 120_000);

  it('a restart keeps every address and key; peers reconnect by themselves; device → device then works', async () => {
    const before = await t.peersConfig();
    const allowedBefore = await t.hubAllowedIps();
    const hubPub = await t.hubPublicKey();
    expect(before.map((p) => p.name)).toEqual(['cli1', 'dev1', 'dev2', 'dev3']);

    const exit = await t.stopHub();
    expect(exit, t.hub!.log()).toEqual({ code: 0, signal: null });
    expect((await run('ip', ['-n', t.hubNs, 'link', 'show', t.hubIf], { allowFail: true })).code).not.toBe(0);
    expect((await nsRun(t.hubNs, 'wg', ['show', t.hubIf], { allowFail: true })).code).not.toBe(0);
    // Stopped: `hub show` falls back to the registry, same addresses.
    expect(await t.peersConfig()).toEqual(before);

    await t.startHub(['--clients-file', clientsFile, '--allow-device-to-device']);
    expect(t.hub!.log()).toMatch(/4 peers restored/);
    expect(await t.peersConfig()).toEqual(before);
    expect(await t.hubAllowedIps()).toEqual(allowedBefore);
    expect((await t.hubDump()).iface.publicKey).toBe(hubPub);
    expect((await t.show()).allowDeviceToDevice).toBe(true);

    // The hub forgot the sessions; wireguard-go re-handshakes when its data gets no answer.
    const t0 = Date.now();
    const took = await Promise.all([...devs, cli1].map((p) => pingUntil(p.ns, HUB_IP, 30_000)));
    timings.reconnectAfterRestart = Date.now() - t0;
    timings.reconnectSlowest = Math.max(...took);
    for (const d of devs) await expectPings(cli1.ns, d.ip, `after restart: cli1 → ${d.name}`);
    await expectPings(devs[0]!.ns, devs[1]!.ip, 'after restart with --allow-device-to-device: dev1 → dev2');
    await expectPings(devs[1]!.ns, devs[2]!.ip, 'after restart with --allow-device-to-device: dev2 → dev3');
    const st = new Map((await t.show()).peers.map((p) => [p.name, p]));
    expect(st.get('dev1')!.refused).toBe(0);
    expect(st.get('dev1')!.relayed).toBeGreaterThanOrEqual(3);
  }, 90_000);

  it('conflicting, malformed and unknown input gets clear errors and changes nothing', async () => {
    const before = await t.peersConfig();
    const allowedBefore = await t.hubAllowedIps();
    const [dev1, dev2] = devs as [HubPeer, HubPeer, HubPeer];
    const fresh = (await t.keys()).pub;

    const cases: Array<{ args: string[]; code?: number; stderr: RegExp }> = [
      { args: ['device', 'add', 'x1', '--public-key', fresh, '--ip', dev1.ip], stderr: new RegExp(`${dev1.ip.replace(/\./g, '\\.')} is already assigned to device/dev1`) },
      { args: ['client', 'add', 'x1', '--public-key', fresh, '--ip', cli1.ip], stderr: /already assigned to client\/cli1/ },
      { args: ['device', 'add', 'x2', '--public-key', fresh, '--ip', HUB_IP], stderr: /hub's own address/ },
      { args: ['device', 'add', 'x3', '--public-key', fresh, '--ip', '10.61.0.5'], stderr: /outside the hub subnet 10\.60\.0\.0\/24/ },
      { args: ['device', 'add', 'x4', '--public-key', fresh, '--route', '10.99.3.128/25'], stderr: /overlaps route 10\.99\.3\.0\/24 of device\/dev3/ },
      { args: ['device', 'add', 'x5', '--public-key', fresh, '--route', `${dev2.ip}/32`], stderr: /the address of device\/dev2/ },
      { args: ['device', 'add', 'x5', '--public-key', fresh, '--route', '10.99.5.1/24'], stderr: /host bits set/ },
      { args: ['device', 'add', 'x6', '--public-key', 'not-a-key'], stderr: /public key/i },
      { args: ['device', 'add', 'x6', '--public-key', 'A'.repeat(43) + '='], stderr: /all-zero/ },
      { args: ['client', 'add', 'x7', '--public-key', dev1.keys.pub], stderr: /already used by device\/dev1/ },
      { args: ['device', 'add', 'bad/name', '--public-key', fresh], stderr: /name "bad\/name" is not valid/ },
      { args: ['device', 'add', 'x8'], code: 2, stderr: /missing --public-key/ },
      { args: ['device', 'remove', 'nosuch'], stderr: /no device named "nosuch"/ },
      { args: ['client', 'remove', 'nosuch'], stderr: /no client named "nosuch"/ },
      { args: ['client', 'remove', 'dev1'], stderr: /no client named "dev1"/ },
      { args: ['device', 'add', 'dev1', '--public-key', dev1.keys.pub, '--ip', '10.60.0.200'], stderr: /dev1 already exists with address/ },
      { args: ['device', 'add', 'dev1', '--public-key', dev1.keys.pub, '--route', '10.98.0.0/24'], stderr: /dev1 already exists with routes/ },
    ];
    for (const c of cases) {
      const r = await t.cli(c.args);
      const what = `hub ${c.args.join(' ')} → exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
      expect(r.code, what).toBe(c.code ?? 1);
      expect(r.stderr, what).toMatch(c.stderr);
      expect(r.stdout, what).toBe('');
    }
    await sleep(600); // > two registry polls of the hub
    expect(await t.peersConfig()).toEqual(before);
    expect(await t.hubAllowedIps()).toEqual(allowedBefore);

    // Malformed clients-file lines are logged with their line number; the good line still applies.
    const carol = await t.keys();
    const k = await Promise.all([1, 2, 3, 4, 5].map(() => t.keys()));
    const lines = [
      '# clients', //                                        1
      `${carol.pub} 10.60.0.60 carol laptop`, //             2 good
      'not-a-key 10.60.0.61 badkey', //                      3
      `${k[0]!.pub} 10.60.0.999 badip`, //                   4
      `${k[1]!.pub}`, //                                     5 missing address
      `${k[2]!.pub} 10.60.0.60 dupip`, //                    6 address of line 2
      `${k[3]!.pub} 10.61.0.7 outside`, //                   7 outside the subnet (registry)
      `${k[4]!.pub} ${dev1.ip} taken`, //                    8 dev1's address (registry)
      `${dev2.keys.pub} 10.60.0.62 stolenkey`, //            9 dev2's key (registry)
    ];
    const logStart = t.hub!.log().length;
    const t0 = Date.now();
    t.writeAtomic(clientsFile, lines.join('\n') + '\n');
    await t.waitHub('carol (good clients-file line) on the hub', (m) => m.get(carol.pub) === '10.60.0.60/32', 3000);
    timings.clientsFileWithBadLines = Date.now() - t0;
    await sleep(300);
    const log = t.hub!.log().slice(logStart);
    for (const n of [3, 4, 5, 6]) {
      expect(log, log).toContain(`${clientsFile}:${n}:`);
      expect(log, log).not.toContain(`${clientsFile}:${n}: ${clientsFile}:${n}:`); // the location once
    }
    expect(log).not.toContain('(line skipped) (line skipped)');
    expect(log).toMatch(/outside the hub subnet/);
    expect(log).toMatch(/already assigned to device\/dev1/);
    expect(log).toMatch(/already used by device\/dev2/);
    const withCarol = await t.peersConfig();
    expect(withCarol.filter((p) => p.name !== 'carol')).toEqual(before);
    expect(withCarol.find((p) => p.name === 'carol')).toMatchObject({ kind: 'client', address: '10.60.0.60', source: 'clients-file' });
    const m = await t.hubAllowedIps();
    expect(m.size).toBe(allowedBefore.size + 1);
    for (const [key, ips] of allowedBefore) expect(m.get(key)).toBe(ips);

    t.writeAtomic(clientsFile, '# clients\n');
    await t.waitHub('carol gone', (mm) => !mm.has(carol.pub), 3000);
    expect(await t.peersConfig()).toEqual(before);
    expect(await t.hubAllowedIps()).toEqual(allowedBefore);
    // A registry row written behind the registry's back (with a change log entry, as the
    // registry's own writers make) that overlaps another peer's route is refused by the hub,
    // naming the owner; the route stays with its owner.
    const db = new Database(join(t.dataDir, REGISTRY_FILE));
    const rawUpdate = db.transaction((routes: string) => {
      db.prepare("UPDATE peers SET routes = ? WHERE kind = 'device' AND name = 'dev2'").run(routes);
      const { change_seq: seq } = db.prepare('UPDATE registry_state SET change_seq = change_seq + 1 WHERE id = 1 RETURNING change_seq').get() as { change_seq: number };
      db.prepare("INSERT INTO changes (seq, kind, name, at) VALUES (?, 'device', 'dev2', ?)").run(seq, Date.now());
    });
    try {
      db.pragma('busy_timeout = 5000');
      const logAt = t.hub!.log().length;
      rawUpdate(JSON.stringify(['10.99.3.0/25']));
      await waitFor('the hub to refuse dev2', () => t.hub!.log().slice(logAt).includes('peer device/dev2 not applied'), 3000, 25);
      expect(t.hub!.log().slice(logAt)).toContain('peer device/dev2 not applied: 10.99.3.0/25 overlaps 10.99.3.0/24 of device/dev3');
      expect(await t.hubAllowedIps()).toEqual(allowedBefore);
      rawUpdate('[]');
    } finally {
      db.close();
    }
    await sleep(600); // > two registry polls of the hub
    expect(await t.hubAllowedIps()).toEqual(allowedBefore);

    // The peers still work.
    await expectPings(cli1.ns, dev1.ip, 'cli1 → dev1 after the rejected changes');
  }, 90_000);
});
