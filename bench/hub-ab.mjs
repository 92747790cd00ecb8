#!/usr/bin/env node
// A/B of hub memory and start-up (bench/lib/hub-rss.mjs) between CLI builds on one registry fixture.
//
//   node bench/hub-ab.mjs --peers 50000 --rounds 2 main=/path/to/main/dist/cli/tsguard.js
//
// Builds one registry of N devices, then runs `hub up` of this checkout (`this`) and every
// NAME=PATH build on copies of it, alternating the order each round (A B, B A, ...), and writes
// every run (with the 1-minute load average at its start) to bench/results/hub-ab-TIME.json.
// Needs root (namespaces, TUN), wg, and a built dist/ in each build.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { ROOT, TSGUARD } from './lib/netns.mjs';
import { buildRegistry, fixtureDir, hubUp } from './lib/hub-rss.mjs';

const argv = process.argv.slice(2);
const val = (f, def) => {
  const i = argv.indexOf(f);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : def;
};
const peers = Number(val('--peers', 10_000));
const rounds = Math.max(1, Number(val('--rounds', 2)));
const builds = [{ name: 'this', tsguard: TSGUARD }];
for (const a of argv.filter((x) => /^[A-Za-z0-9._-]+=/.test(x))) builds.push({ name: a.slice(0, a.indexOf('=')), tsguard: a.slice(a.indexOf('=') + 1) });
if (!Number.isInteger(peers) || peers < 1) {
  process.stderr.write('hub-ab: --peers must be a positive whole number\n');
  process.exit(2);
}
const subnet = peers > 16_000 ? '10.100.0.0/16' : '10.100.0.0/18';

const fixture = fixtureDir();
const runs = [];
try {
  const build = await buildRegistry(fixture, peers, subnet);
  process.stdout.write(`registry of ${peers} devices built in ${build.seconds} s\n`);
  for (let r = 0; r < rounds; r++) {
    for (const b of r % 2 === 0 ? builds : [...builds].reverse()) {
      const load1 = Math.round(os.loadavg()[0] * 100) / 100;
      let res;
      try {
        res = await hubUp({ fixture, peers, subnet, tsguard: b.tsguard });
      } catch (e) {
        res = { error: String(e?.message ?? e).split('\n')[0].slice(0, 400) };
      }
      runs.push({ build: b.name, round: r, load1, ...res });
      process.stdout.write(`${JSON.stringify(runs.at(-1))}\n`);
    }
  }
} finally {
  rmSync(fixture, { recursive: true, force: true });
}
const dir = join(ROOT, 'bench/results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `hub-ab-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}Z.json`);
writeFileSync(file, JSON.stringify({ peers, subnet, builds, cpus: os.cpus().length, runs }, null, 2) + '\n');
process.stdout.write(`wrote ${file}\n`);
