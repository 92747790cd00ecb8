#!/usr/bin/env node
// CPU profile of tsguard's data path: tsguard ↔ tsguard in two namespaces, both daemons in the
// foreground under `node --cpu-prof`, one iperf3 TCP run A → B, then SIGTERM (the profiles are
// written on exit) and a summary of the top self-time functions of each side.
// With --handshakes, B is profiled as a handshake responder instead: bench/lib/handshake-load.mjs
// floods it from A (as `npm run bench` measures handshakes/s) and A's daemon is left out.
//
//   npm run bench:profile [-- --seconds 10 --parallel 1 --top 15 --no-readme]
//   npm run bench:profile -- --handshakes [--seconds 5 --identities 256 --window 120 --top 25]
// Writes bench/results/profile-latest.json and .md and the README's profile section (the raw .cpuprofile files stay in a temp dir,
// printed at the end, so that they can be opened in Chrome DevTools).
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NS_PREFIX, Topology, collect, configurePair, iperf3, nsSpawn, removeStale, teardownAll, wg, ROOT } from './lib/netns.mjs';
import { handshakeLoadArgs, prepareResponder } from './lib/handshake-load.mjs';
import { summarize } from './lib/cpuprofile.mjs';
import { replaceSection } from './lib/render.mjs';
import { sleep, terminate, waitFor } from './lib/proc.mjs';

const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : def;
};
const seconds = opt('seconds', 10);
const parallel = opt('parallel', 1);
const top = opt('top', 15);
const handshakes = argv.includes('--handshakes');

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n${sig}: cleaning up namespaces`);
    teardownAll().finally(() => process.exit(130));
  });
}

async function main() {
  await removeStale();
  const profDir = mkdtempSync(join(tmpdir(), 'tsguard-prof-'));
  const t = await Topology.create({ prefix: NS_PREFIX });
  let load;
  try {
    const p = await configurePair(t, 'tsguard', 'tsguard', { profileDir: profDir });
    await waitFor('tunnel', async () => {
      try {
        await iperf3(p.b.ns, p.b.inner4, p.a.ns, { seconds: 1 });
        return true;
      } catch {
        return false;
      }
    }, 20_000, 500);
    load = handshakes ? await handshakeFlood(p) : await tcpRun(p);
    for (const d of [p.a.daemon, p.b.daemon]) await terminate([d.pid], 15_000);
    await sleep(500);
  } finally {
    await t.teardown();
  }
  const result = { date: new Date().toISOString(), seconds, ...load, sides: {} };
  for (const side of handshakes ? ['B'] : ['A', 'B']) {
    const files = readdirSync(join(profDir, side)).filter((f) => f.endsWith('.cpuprofile'));
    if (files.length === 0) throw new Error(`no .cpuprofile written for side ${side} in ${profDir}`);
    result.sides[side] = { file: join(profDir, side, files[0]), ...summarize(join(profDir, side, files[0]), top) };
  }
  if (handshakes) {
    const s = result.sides.B;
    const md = [`Profile of a tsguard handshake responder: ${result.handshakes_per_s} handshakes/s for ${seconds} s (${result.date}).`];
    md.push('', `**B: responder** — busy ${(s.busyMs / 1000).toFixed(1)} s of ${(s.totalMs / 1000).toFixed(1)} s profiled (the main thread only)`, '');
    table(md, s);
    console.log(md.join('\n'));
    console.log(`\nraw profile: ${s.file}`);
    return;
  }
  const md = [];
  md.push(`Profile of tsguard ↔ tsguard, iperf3 TCP ${seconds} s -P ${result.parallel}: ${result.mbps} Mbit/s (${result.date}).`);
  for (const [side, role] of [
    ['A', 'A: iperf3 client side — TUN read → encrypt → UDP send'],
    ['B', 'B: iperf3 server side — UDP receive → decrypt → TUN write'],
  ]) {
    const s = result.sides[side];
    md.push('', `**${role}** — busy ${(s.busyMs / 1000).toFixed(1)} s of ${(s.totalMs / 1000).toFixed(1)} s profiled`, '');
    table(md, s);
  }
  const outDir = join(ROOT, 'bench/results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'profile-latest.json'), JSON.stringify(result, null, 2) + '\n');
  writeFileSync(join(outDir, 'profile-latest.md'), md.join('\n') + '\n');
  if (!argv.includes('--no-readme')) {
    try {
      replaceSection(join(ROOT, 'bench/README.md'), 'profile', md.join('\n'));
    } catch (e) {
      console.error(`README not updated: ${e.message}`);
    }
  }
  console.log(md.join('\n'));
  console.log(`\nraw profiles: ${result.sides.A.file}, ${result.sides.B.file}`);
}

/** The self-time tables of one side's summary, appended to `md`. */
function table(md, s) {
  md.push('| self % | self ms | function | where |', '|---:|---:|---|---|');
  for (const f of s.functions) md.push(`| ${f.pct} | ${f.selfMs} | \`${f.name}\` | ${f.where} |`);
  md.push('', '| self % | file |', '|---:|---|');
  for (const f of s.files.slice(0, 8)) md.push(`| ${f.pct} | ${f.file} |`);
}

/** One iperf3 TCP run A → B. */
async function tcpRun(p) {
  console.error(`profiling: iperf3 TCP ${seconds} s, -P ${parallel}, A (client) → B`);
  const r = await iperf3(p.b.ns, p.b.inner4, p.a.ns, { seconds, parallel });
  return { parallel, mbps: Math.round(r.mbps) };
}

/** B flooded with initiations from A's namespace, as `npm run bench` measures handshakes/s. */
async function handshakeFlood(p) {
  const identities = opt('identities', 256);
  const keys = await prepareResponder((args) => wg(p.b.ns, args), p.b.ifname, identities, p.dir);
  console.error(`profiling: handshake flood ${seconds} s, ${identities} identities, A → responder B`);
  const child = nsSpawn(p.a.ns, process.execPath, handshakeLoadArgs(p, keys, { seconds, window: opt('window', 120) }));
  const r = await collect(child, 300_000);
  if (r.code !== 0) throw new Error(`handshake-load exited ${r.code}: ${r.stderr.slice(-1500)}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  return { identities, handshakes_per_s: out.handshakes_per_s, handshakes_per_responder_cpu_s: out.handshakes_per_responder_cpu_s };
}

main().catch(async (e) => {
  console.error(e?.stack ?? e);
  await teardownAll();
  process.exit(1);
});
