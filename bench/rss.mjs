#!/usr/bin/env node
// Daemon memory: RSS of both daemons of a tsguard ↔ tsguard and a wireguard-go ↔ wireguard-go
// pair, idle after the handshake and at the end of a TCP run through the tunnel (see
// bench/README.md, "Step 4: memory"). Needs root, wireguard-go, wg, iperf3 and a built dist/.
//   node bench/rss.mjs [--seconds N] [--wggo PATH]   (PATH: another wireguard-go build; default the one in PATH)
import { readFileSync } from 'node:fs';
import { configurePair, iperf3, NS_PREFIX, pingStats, teardownAll, Topology } from './lib/netns.mjs';
import { memKiB, sleep } from './lib/proc.mjs';

const argv = process.argv.slice(2);
const val = (f, d) => (argv.includes(f) ? argv[argv.indexOf(f) + 1] : d);
const SECONDS = Number(val('--seconds', 3));
const wggoPath = val('--wggo', null);
const wggo = wggoPath === null ? 'wireguard-go' : { name: 'wggo', path: wggoPath };

/** VmRSS, RssAnon and RssFile of a process in MiB. */
function rss(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  const mib = (k) => Math.round(kib(k) / 102.4) / 10;
  return { rss: mib('VmRSS'), anon: mib('RssAnon'), file: mib('RssFile'), hwm: Math.round(memKiB(pid).hwm / 102.4) / 10 };
}

const out = {};
try {
  for (const [name, impl] of [
    ['tsguard', 'tsguard'],
    ['wireguard-go', wggo],
  ]) {
    const t = await Topology.create({ prefix: NS_PREFIX });
    try {
      const p = await configurePair(t, impl, impl);
      await pingStats(p.a.ns, p.b.inner4, { count: 20, interval: 0.01 });
      await sleep(1000);
      const idle = { a: rss(p.a.daemon.pid), b: rss(p.b.daemon.pid) };
      const run = iperf3(p.b.ns, p.b.inner4, p.a.ns, { seconds: SECONDS });
      await sleep(SECONDS * 1000 - 500);
      const loaded = { a: rss(p.a.daemon.pid), b: rss(p.b.daemon.pid) };
      const r = await run;
      out[name] = { idle, loaded, tcp_mbps: Math.round(r.mbps) };
    } finally {
      await t.teardown();
    }
  }
} finally {
  await teardownAll();
}
process.stdout.write(JSON.stringify(out) + '\n');
