// Agent registration: join latency and registrations per second against `tsguard hub up --api`.
//
// joinLatency: hub in namespace A (API https://192.168.241.1:18443, pinned with --ca-hash), agents
//   in namespace B (veth). Per run: fresh state dir, agent id and interface; the clock starts when
//   `tsguard join` is spawned; "printed" = join printed "joined as … address …" (registered, interface
//   up, handshake done); "first reply" = first `ping -c 1 -W 1 HUB` from B that gets a reply, started
//   right after the print (each attempt is a fresh `ip netns exec B ping`, ~5 ms of process start
//   included). The agent is stopped (SIGTERM) before the next run.
// registrationRate: hub in one namespace with --api 127.0.0.1:18080 --api-insecure-http; the client
//   (bench/lib/register-load.mjs) runs in the same namespace and POSTs /v1/register for N distinct
//   agents with a fixed concurrency. Accepted registrations ÷ wall time of the whole run, and the hub's
//   CPU time (all threads) per accepted registration.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { collect, cpuSeconds, percentile, waitFor } from './proc.mjs';
import { NS_PREFIX, OUTER, ROOT, TSGUARD, Topology, ifname, nsRun, nsSpawn } from './netns.mjs';
import { makeAgents } from './register-load.mjs';

/**
 * The agent's environment: ours without NODE_EXTRA_CA_CERTS and NODE_OPTIONS. A default Node
 * installation sets neither; this workplace sets NODE_EXTRA_CA_CERTS to the system CA bundle, which
 * makes every Node start parse ~140 certificates (~50 ms here). join pins the hub with --ca-hash and
 * never uses them.
 */
const AGENT_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_EXTRA_CA_CERTS' && k !== 'NODE_OPTIONS'));
export const AGENT_ENV_NOTE = 'agent processes run without NODE_EXTRA_CA_CERTS / NODE_OPTIONS (a default Node installation sets neither)';

const r1 = (x) => (x === null || x === undefined ? null : Math.round(x * 10) / 10);

/** Spawn `tsguard hub up …` in ns; resolves once the registration API listens. */
async function startHub(t, ns, dir, { subnet, port, api, insecure, nodeArgs = [], tsguard = TSGUARD }) {
  const name = ifname('tsgreg');
  t.ifnames.add(name);
  const args = [...nodeArgs, tsguard, 'hub', 'up', '--data-dir', dir, '--interface', name, '--subnet', subnet, '--listen-port', String(port), '--api', api];
  if (insecure) args.push('--api-insecure-http');
  const hub = nsSpawn(ns, process.execPath, args, { ...process.env, LOG_LEVEL: 'info' });
  let out = '';
  hub.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  hub.stderr.setEncoding('utf8').on('data', (d) => (out += d));
  await waitFor(
    'hub registration API to listen',
    () => {
      if (hub.exitCode !== null || hub.signalCode !== null) throw new Error(`hub exited early: ${out.slice(-2000)}`);
      return out.includes('registration API listening on');
    },
    30_000,
    20,
  );
  const tok = JSON.parse((await nsRun(ns, process.execPath, [tsguard, 'hub', 'token', 'create', '--data-dir', dir, '--json'])).stdout);
  return { hub, name, token: tok.token, caHash: tok.caHash, url: tok.url, output: () => out };
}

async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

const hubAddress = (subnet) => subnet.split('/')[0].replace(/\.0$/, '.1');

/** Median of `runs` joins: { join_to_first_reply_ms, join_printed_address_ms, runs: [...] }. */
export async function joinLatency({ runs = 3, subnet = '10.90.0.0/16', log = () => {} } = {}) {
  const t = await Topology.create({ prefix: NS_PREFIX });
  try {
    const dir = t.tempDir();
    const h = await startHub(t, t.a, dir, { subnet, port: 51910, api: `${OUTER.a4}:18443`, insecure: false });
    const hubIp = hubAddress(subnet);
    const results = [];
    for (let i = 0; i < runs; i++) {
      const stateDir = join(t.tempDir(), 'agent');
      const agentIf = ifname('tsgjoin');
      t.ifnames.add(agentIf);
      const agentId = `bench-join-${i}-${Date.now()}`;
      const t0 = performance.now();
      const agent = nsSpawn(t.b, process.execPath, [TSGUARD, 'join', h.url, '--token', h.token, '--ca-hash', h.caHash, '--agent-id', agentId,
        '--state-dir', stateDir, '--interface', agentIf], AGENT_ENV);
      let out = '';
      let printedAt = null;
      agent.stdout.setEncoding('utf8').on('data', (d) => {
        out += d;
        if (printedAt === null && /joined as \S+: address \S+/.test(out)) printedAt = performance.now();
      });
      agent.stderr.setEncoding('utf8').on('data', (d) => (out += d));
      try {
        await waitFor(
          'join to print its address',
          () => {
            if (printedAt !== null) return true;
            if (agent.exitCode !== null || agent.signalCode !== null) throw new Error(`join exited early: ${out.slice(-2000)}`);
            return false;
          },
          30_000,
          1,
        );
        let attempts = 0;
        let replyAt = null;
        while (replyAt === null) {
          attempts++;
          const r = await nsRun(t.b, 'ping', ['-n', '-c', '1', '-W', '1', hubIp], { allowFail: true, timeoutMs: 5000 });
          if (r.code === 0) replyAt = performance.now();
          else if (performance.now() - t0 > 30_000) throw new Error(`no ping reply from ${hubIp} within 30 s: ${out.slice(-1000)}`);
        }
        const run = { printed_ms: r1(printedAt - t0), first_reply_ms: r1(replyAt - t0), ping_attempts: attempts };
        log(`join run ${i + 1}: printed address ${run.printed_ms} ms, first reply ${run.first_reply_ms} ms (${attempts} ping(s))`);
        results.push(run);
      } finally {
        await stopChild(agent);
      }
    }
    // The same through the library, as an agent embedding tsguard joins (modules already loaded).
    const embedded = [];
    for (let i = 0; i < runs; i++) {
      const agentIf = ifname('tsgjoin');
      t.ifnames.add(agentIf);
      const r = await collect(
        nsSpawn(t.b, process.execPath, [join(ROOT, 'bench/lib/join-embedded.mjs'), h.url, h.token, h.caHash,
          `bench-embedded-${i}-${Date.now()}`, join(t.tempDir(), 'agent'), agentIf, hubIp], AGENT_ENV),
        60_000,
      );
      if (r.code !== 0) throw new Error(`join-embedded exited ${r.code}: ${r.stderr.slice(-1500)}`);
      const run = JSON.parse(r.stdout.trim().split('\n').pop());
      log(`embedded join run ${i + 1}: joined ${run.joined_ms} ms, first reply ${run.first_reply_ms} ms`);
      embedded.push(run);
    }
    // Baseline: spawning `tsguard join --help` in B until it exits (Node start + loading the CLI).
    // And bare Node (`node -e 0`): the part of any Node CLI's time that no code of ours can remove.
    const starts = [];
    const bare = [];
    for (let i = 0; i < runs; i++) {
      const s0 = performance.now();
      await nsRun(t.b, process.execPath, [TSGUARD, 'join', '--help'], { env: AGENT_ENV });
      starts.push(r1(performance.now() - s0));
      const b0 = performance.now();
      await nsRun(t.b, process.execPath, ['-e', '0'], { env: AGENT_ENV });
      bare.push(r1(performance.now() - b0));
    }
    return {
      join_to_first_reply_ms: percentile(results.map((r) => r.first_reply_ms), 50),
      join_printed_address_ms: percentile(results.map((r) => r.printed_ms), 50),
      runs: results,
      cli_start_ms: percentile(starts, 50),
      node_start_ms: percentile(bare, 50),
      embedded_first_reply_ms: percentile(embedded.map((r) => r.first_reply_ms), 50),
      embedded_joined_ms: percentile(embedded.map((r) => r.joined_ms), 50),
      embedded_runs: embedded,
      transport: 'https with --ca-hash over the veth',
      environment: AGENT_ENV_NOTE,
    };
  } finally {
    await t.teardown();
  }
}

/**
 * N registrations of distinct agents, `concurrency` in flight. `hubNodeArgs`: Node options for the
 * hub process (e.g. `['--cpu-prof', '--cpu-prof-dir', DIR]`: written when the hub stops at teardown);
 * `tsguard`: the CLI to run the hub with (another build, for an A/B comparison).
 */
export async function registrationRate({ n = 2000, concurrency = 32, subnet = '10.96.0.0/16', log = () => {}, hubNodeArgs = [], tsguard = TSGUARD } = {}) {
  const t = await Topology.create({ single: true, prefix: NS_PREFIX });
  try {
    const dir = t.tempDir();
    const h = await startHub(t, t.a, dir, { subnet, port: 51911, api: '127.0.0.1:18080', insecure: true, nodeArgs: hubNodeArgs, tsguard });
    const agents = makeAgents(n, 'bench-reg-');
    const file = join(t.tempDir(), 'agents.json');
    writeFileSync(file, JSON.stringify(agents));
    log(`registrations: ${n} agents, concurrency ${concurrency}`);
    const cpu0 = cpuSeconds(h.hub.pid);
    const child = nsSpawn(t.a, process.execPath, [join(ROOT, 'bench/lib/register-load.mjs'), h.url, h.token, file, String(concurrency)]);
    const r = await collect(child, 300_000);
    const hubCpu = cpuSeconds(h.hub.pid) - cpu0;
    if (r.code !== 0) throw new Error(`register-load exited ${r.code}: ${r.stderr.slice(-1500)}`);
    const res = JSON.parse(r.stdout.trim().split('\n').pop());
    if (res.accepted === 0) throw new Error(`no registration accepted: ${JSON.stringify(res).slice(0, 500)}; hub: ${h.output().slice(-1000)}`);
    // The hub's CPU time (all threads, /proc/PID/stat) per accepted registration: less sensitive to the other load of the machine than the rate.
    const hub_cpu_ms_per_registration = Math.round((hubCpu * 1000 * 100) / res.accepted) / 100;
    return { ...res, hub_cpu_ms_per_registration, transport: 'plain HTTP on 127.0.0.1 inside the hub namespace', subnet };
  } finally {
    await t.teardown();
  }
}
