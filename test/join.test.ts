/**
 * `tsguard join` in namespace B against a hub in namespace A (veth between
 * them; the hub's registration API on its veth address over HTTPS, pinned
 * with --ca-hash): the address is assigned and the first ping through the
 * tunnel to the hub works with no fixed delay; an agent restart keeps the
 * address; a hub killed with SIGKILL and restarted brings the agent's tunnel
 * back without a new address; a re-keyed agent keeps its address and its
 * old key leaves the hub's live device; a certificate that does not match
 * the pin is refused before anything is created. Also the library `join()`.
 */
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Registry } from '../src/hub/registry/index.js';
import { dump, ifname, nsRun, OUTER, ping, ROOT, run, shouldSkip, teardownAll, Topology } from './net/netns.js';
import { spawnNode, TSGUARD, type Watched } from './helpers/proc.js';

const SKIP = shouldSkip('join.test.ts', ['ip', 'wg', 'ping']);
const SUBNET = '10.79.0.0/22';
const HUB_ADDR = '10.79.0.1';
const API_URL = `https://${OUTER.a4}:18443`;

afterAll(teardownAll);

interface HubSetup {
  t: Topology;
  dir: string;
  hubIf: string;
  hubArgs: string[];
  hub: Watched;
  token: string;
  caHash: string;
}

async function setup(): Promise<HubSetup> {
  const t = await Topology.create();
  const dir = t.tempDir();
  const hubIf = ifname('tsh');
  t.ifnames.add(hubIf);
  const hubArgs = [TSGUARD, 'hub', 'up', '--data-dir', dir, '--interface', hubIf, '--subnet', SUBNET, '--listen-port', '51840', '--api', `${OUTER.a4}:18443`];
  const hub = spawnNode(t.a, hubArgs, 'hub');
  await hub.waitFor(/registration API listening on https:\/\//);
  const created = JSON.parse((await nsRun(t.a, process.execPath, [TSGUARD, 'hub', 'token', 'create', '--data-dir', dir, '--json'])).stdout) as {
    token: string;
    caHash: string;
    url: string;
    join: string;
  };
  expect(created.url).toBe(API_URL);
  expect(created.join).toContain(`tsguard join ${API_URL} --token ${created.token} --ca-hash ${created.caHash}`);
  return { t, dir, hubIf, hubArgs, hub, token: created.token, caHash: created.caHash };
}

function startAgent(s: HubSetup, stateDir: string, agentIf: string, extra: string[] = []): Watched {
  s.t.ifnames.add(agentIf);
  return spawnNode(
    s.t.b!,
    [TSGUARD, 'join', API_URL, '--token', s.token, '--ca-hash', s.caHash, '--state-dir', stateDir, '--interface', agentIf, '--agent-id', 'agent-b', '--label', 'site=lab', ...extra],
    'agent',
  );
}

async function joined(a: Watched): Promise<string> {
  return (await a.waitFor(/joined as agent-b: address (\S+) on /, 60_000))[1]!;
}

async function stop(w: Watched): Promise<number | null> {
  w.child.kill('SIGTERM');
  return (await w.exited).code;
}

describe.skipIf(SKIP)('tsguard join across namespaces', () => {
  it('joins, pings the hub at once, keeps its address across agent and hub restarts and re-keys', async () => {
    const s = await setup();
    try {
      const B = s.t.b!;
      const stateDir = s.t.tempDir();
      const agentIf = ifname('tsj');
      let agent = startAgent(s, stateDir, agentIf);
      const cidr = await joined(agent);
      expect(cidr).toBe('10.79.0.2/22');
      // The key is kept 0600 in the state directory.
      expect(statSync(join(stateDir, 'private.key')).mode & 0o777).toBe(0o600);
      const key1 = readFileSync(join(stateDir, 'private.key'), 'utf8').trim();
      // The interface carries the address, MTU 1420, and is up.
      const link = (await run('ip', ['-n', B, '-o', 'addr', 'show', 'dev', agentIf])).stdout;
      expect(link).toContain(`inet ${cidr}`);
      expect((await run('ip', ['-n', B, 'link', 'show', 'dev', agentIf])).stdout).toMatch(/mtu 1420 .*state (UP|UNKNOWN)/);
      // The handshake is done when join prints: the first ping goes through.
      const p1 = await ping(B, HUB_ADDR, { count: 1, wait: 5 });
      expect(p1.received).toBeGreaterThanOrEqual(1);
      // wg show works on the agent (UAPI): the hub peer with keepalive 25 and the mesh subnet.
      const d = await dump(B, agentIf);
      expect(d.peers).toHaveLength(1);
      expect(d.peers[0]!.allowedIps).toBe(SUBNET);
      expect(d.peers[0]!.keepalive).toBe('25');
      expect(d.peers[0]!.endpoint).toBe(`${OUTER.a4}:51840`);
      expect(d.peers[0]!.latestHandshake).toBeGreaterThan(0);
      // The hub lists the agent with its labels.
      const show = (await run(process.execPath, [TSGUARD, 'hub', 'show', '--data-dir', s.dir])).stdout;
      expect(show).toMatch(/agent agent-b: 10\.79\.0\.2/);
      expect(show).toContain('labels: site=lab');

      // Agent restart: same key, same address, interface created again.
      expect(await stop(agent)).toBe(0);
      expect((await run('ip', ['-n', B, 'link', 'show', 'dev', agentIf], { allowFail: true })).code).not.toBe(0);
      agent = startAgent(s, stateDir, agentIf);
      expect(await joined(agent)).toBe(cidr);
      expect(readFileSync(join(stateDir, 'private.key'), 'utf8').trim()).toBe(key1);
      expect((await ping(B, HUB_ADDR, { count: 1, wait: 5 })).received).toBeGreaterThanOrEqual(1);

      // Hub killed and restarted: the agent (still running) gets its tunnel back, same address.
      s.hub.child.kill('SIGKILL');
      await s.hub.exited;
      s.hub = spawnNode(s.t.a, s.hubArgs, 'restarted hub');
      await s.hub.waitFor(/registration API listening/);
      await s.hub.waitFor(/1 peers restored/);
      // The agent's old session is unknown to the new hub process; WireGuard's own timers
      // (new handshake after KEEPALIVE_TIMEOUT + REKEY_TIMEOUT without an answer) recover it.
      const back = await ping(B, HUB_ADDR, { count: 1, interval: 1, deadline: 45 });
      expect(back.received).toBeGreaterThanOrEqual(1);
      expect(agent.output()).toContain(`address ${cidr}`);
      const reg = await Registry.open(s.dir);
      try {
        expect((await reg.getPeer('agent', 'agent-b'))!.ipv4).toBe('10.79.0.2');
        expect((await reg.listPeers())).toHaveLength(1);
      } finally {
        await reg.close();
      }

      // Re-key: a new key for the same agent id keeps the address; the old key leaves the live hub device.
      expect(await stop(agent)).toBe(0);
      const oldPub = (await run('wg', ['pubkey'], { input: key1 + '\n' })).stdout.trim();
      expect((await dump(s.t.a, s.hubIf)).peers.map((p) => p.publicKey)).toEqual([oldPub]);
      rmSync(join(stateDir, 'private.key'));
      agent = startAgent(s, stateDir, agentIf);
      expect(await joined(agent)).toBe(cidr);
      const key2 = readFileSync(join(stateDir, 'private.key'), 'utf8').trim();
      expect(key2).not.toBe(key1);
      const newPub = (await run('wg', ['pubkey'], { input: key2 + '\n' })).stdout.trim();
      const hubPeers = (await dump(s.t.a, s.hubIf)).peers;
      expect(hubPeers.map((p) => [p.publicKey, p.allowedIps])).toEqual([[newPub, '10.79.0.2/32']]);
      expect((await ping(B, HUB_ADDR, { count: 1, wait: 5 })).received).toBeGreaterThanOrEqual(1);
      expect(await stop(agent)).toBe(0);
    } finally {
      await s.t.teardown();
    }
  }, 240_000);

  it('refuses a hub certificate that does not match --ca-hash, before creating anything', async () => {
    const s = await setup();
    try {
      const stateDir = s.t.tempDir();
      const agentIf = ifname('tsj');
      const wrong = `sha256:${'0f'.repeat(32)}`;
      const bad = startAgent({ ...s, caHash: wrong }, stateDir, agentIf);
      const { code } = await bad.exited;
      expect(code).toBe(1);
      expect(bad.output()).toMatch(/does not match --ca-hash: it has sha256:[0-9a-f]{64}, expected sha256:(0f){32}/);
      expect(bad.output()).toContain(s.caHash);
      expect((await run('ip', ['-n', s.t.b!, 'link', 'show', 'dev', agentIf], { allowFail: true })).code).not.toBe(0);
      const reg = await Registry.open(s.dir);
      try {
        expect((await reg.listPeers())).toEqual([]);
        expect((await reg.listTokens())[0]!.uses).toBe(0);
      } finally {
        await reg.close();
      }
      expect(s.hub.output()).not.toMatch(/registration (registered|refused)/);
      // https without a pin is refused too (no --insecure).
      const noPin = spawnNode(s.t.b!, [TSGUARD, 'join', API_URL, '--token', s.token, '--state-dir', stateDir, '--interface', agentIf], 'agent without pin');
      expect((await noPin.exited).code).toBe(1);
      expect(noPin.output()).toMatch(/without checking the hub's certificate: pass --ca-hash/);
    } finally {
      await s.t.teardown();
    }
  }, 120_000);

  it('library join() resolves with address, subnet and a device that has done the handshake', async () => {
    const s = await setup();
    try {
      const stateDir = s.t.tempDir();
      const agentIf = ifname('tsl');
      s.t.ifnames.add(agentIf);
      const lib = spawnNode(
        s.t.b!,
        [join(ROOT, 'test/fixtures/join-lib.mjs'), join(ROOT, 'dist/agent/join.js'), API_URL, s.token, s.caHash, stateDir, agentIf, 'lib-agent'],
        'library join',
      );
      expect((await lib.exited).code).toBe(0);
      const r = JSON.parse(lib.output().split('\n').find((l) => l.startsWith('{'))!) as Record<string, unknown>;
      expect(r).toMatchObject({ address: '10.79.0.2', cidr: '10.79.0.2/22', meshSubnet: SUBNET, keepalive: 25, allowedIps: 1, hasEvents: true });
      expect(r.lastHandshake).toBeGreaterThan(0);
      expect(existsSync(join(stateDir, 'registration.json'))).toBe(true);
      expect(readFileSync(join(stateDir, 'registration.json'), 'utf8')).not.toContain(s.token.split('.')[1]!);
      // close() removed the interface.
      expect((await run('ip', ['-n', s.t.b!, 'link', 'show', 'dev', agentIf], { allowFail: true })).code).not.toBe(0);
    } finally {
      await s.t.teardown();
    }
  }, 120_000);
});
