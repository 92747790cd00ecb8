/**
 * Agents that ride out a hub outage (network namespaces, MeshTopology): an agent joined
 * through hub 1 (`tsguard join URL --token … --ca-hash …`) learns every hub from the answer;
 * SIGKILL hub 1 and it moves to hub 2 with the same address, and a client on hub 2 reaches it
 * again (the time it takes is printed, not asserted). Restarted with every hub down, the agent
 * brings its tunnel up from the stored registration at once and registers in the background
 * when a hub returns.
 *
 *   P1 agent (tsguard join, enrolled through hub 1)   P2 laptop (client, wireguard-go, hub 2)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredRegistration } from '../src/agent/agent.js';
import type { TestPostgres } from './helpers/postgres.js';
import { meshRegistry, MeshTopology, parseAdded, pingUntil, teardownMeshTopologies, type HubPeer } from './net/hub-topology.js';
import { genKeyPair, nsRun, shouldSkip, waitFor } from './net/netns.js';
import { spawnNode, TSGUARD, type Watched } from './helpers/proc.js';

const SKIP = shouldSkip('multihub-failover.test.ts', ['ip', 'wg', 'wireguard-go', 'ping']);
const SUBNET = '10.62.0.0/24';

describe.skipIf(SKIP)('agents fail over between hubs sharing a registry (network namespaces)', () => {
  let t: MeshTopology;
  let pg: TestPostgres | null = null;
  let laptop: HubPeer;
  let agent: Watched;
  let agentIp: string;
  let token: string;
  let pin: string;
  const stateDir = () => t.path('agent');
  const agentIf = () => `ag${t.tag}`;

  const startAgent = (): Watched => {
    t.ifnames.add(agentIf());
    return spawnNode(
      t.peerNs[0]!,
      [TSGUARD, 'join', t.hubs[0]!.apiUrl, '--token', token, '--ca-hash', pin, '--state-dir', stateDir(), '--interface', agentIf(), '--agent-id', 'ag1'],
      'agent',
    );
  };

  beforeAll(async () => {
    const reg = await meshRegistry('multihub-failover.test.ts');
    pg = reg.server;
    t = await MeshTopology.create({ registry: reg.url, hubs: 2, peers: 2, subnet: SUBNET });
    await t.startHub(1);
    await t.startHub(2);
    await t.waitMeshed([1, 2]);
    ({ token, pin } = await t.token(1));
    agent = startAgent();
    agentIp = (await agent.waitFor(/joined as ag1: address (\d+\.\d+\.\d+\.\d+)\//, 60_000))[1]!;
    const lk = await genKeyPair();
    const lip = parseAdded(await t.cliOk(2, ['client', 'add', 'laptop', '--public-key', lk.pub]));
    await waitFor('hub 2 to list the laptop', async () => (await t.hubAllowedIps(2)).has(lk.pub), 5000);
    laptop = await t.startWgPeer(2, 2, lk, lip);
  }, 120_000);

  afterAll(async () => {
    if (process.env.HUB_TEST_LOG) {
      console.log(`--- agent\n${agent?.output()}`);
    }
    await teardownMeshTopologies(pg);
  }, 60_000);

  it('the registration answer lists both hubs (endpoint, key, API URL, pin); the client on hub 2 reaches the agent on hub 1', async () => {
    const reg = JSON.parse(readFileSync(join(stateDir(), 'registration.json'), 'utf8')) as StoredRegistration;
    const keys = [await t.hubPublicKey(1), await t.hubPublicKey(2)];
    expect(reg.hubs?.map((h) => h.public_key)).toEqual(keys);
    expect(reg.hubs?.map((h) => h.endpoint)).toEqual([t.hubs[0]!.endpoint, t.hubs[1]!.endpoint]);
    expect(reg.hubs?.map((h) => h.api_url)).toEqual([t.hubs[0]!.apiUrl, t.hubs[1]!.apiUrl]);
    expect(reg.hubs?.[0]?.cert_pin).toBe(pin);
    expect(reg.hubs?.[1]?.cert_pin).toMatch(/^sha256:[0-9a-f]{64}$/);
    await pingUntil(laptop.ns, agentIp, 10_000);
  });

  it('SIGKILL hub 1: the agent moves to hub 2 with the same address and the client reaches it again', async () => {
    const t0 = Date.now();
    await t.stopHub(1, 'SIGKILL');
    const ms = await pingUntil(laptop.ns, agentIp, 90_000);
    console.log(`[multihub-failover.test.ts] SIGKILL of hub 1 → agent reachable through hub 2 again: ${ms} ms (${Date.now() - t0} ms incl. the kill)`);
    await agent.waitFor(/moved to hub \S+ at 192\.168\.90\.2:/, 5000);
    // Same address, now homed on hub 2 (its own peer there holds it), registered again through hub 2.
    const m = await t.hubAllowedIps(2);
    const agentKey = (JSON.parse(readFileSync(join(stateDir(), 'registration.json'), 'utf8')) as StoredRegistration).public_key;
    expect(m.get(agentKey)).toBe(`${agentIp}/32`);
    await agent.waitFor(/registered \((?:already_registered|rekeyed|registered)\) through https:\/\/192\.168\.90\.2:/, 30_000);
    const reg = JSON.parse(readFileSync(join(stateDir(), 'registration.json'), 'utf8')) as StoredRegistration;
    expect(reg.assigned_ip).toBe(agentIp);
  }, 120_000);

  it('restarted with every hub down, the agent comes up from its stored registration and registers when a hub returns', async () => {
    agent.child.kill('SIGTERM');
    await agent.exited;
    await t.stopHub(2);
    agent = startAgent();
    const up = await agent.waitFor(/joined as ag1: address (\d+\.\d+\.\d+\.\d+)\/\S+ on \S+, hub (\S+) at .*up from the stored registration/, 30_000);
    expect(up[1]).toBe(agentIp);
    expect(up[2]).toBe(await t.hubPublicKey(2)); // the hub last in use (home.json)
    await agent.waitFor(/registration through \S+ failed: .*retrying in/, 30_000);
    // The interface is up with its address while no hub answers.
    const addr = await nsRun(t.peerNs[0]!, 'ip', ['-4', 'addr', 'show', 'dev', agentIf()]);
    expect(addr.stdout).toContain(`inet ${agentIp}/`);
    await t.startHub(2);
    await agent.waitFor(/registered \(already_registered\) through https:\/\/192\.168\.90\.2:/, 90_000);
    await pingUntil(laptop.ns, agentIp, 30_000);
  }, 180_000);
});
