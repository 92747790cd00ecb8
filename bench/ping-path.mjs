#!/usr/bin/env node
// Where a ping's time goes through a loaded tunnel: tcpdump (kernel timestamps) on both TUN interfaces
// and on the veth between the namespaces while a one-stream TCP run A → B is going and A pings B every
// 10 ms. Per ping, four legs:
//   a_out  A's TUN (the request enters it)  → the veth (A's datagram carrying it leaves)
//   b_in   the veth                           → B's TUN (B wrote the decrypted request)
//   b_out  B's TUN (the reply enters it)     → the veth (B's datagram carrying it leaves)
//   a_in   the veth                           → A's TUN (A wrote the decrypted reply)
// A ping's datagram is told from the stream's by its size (an 84-byte echo padded to 96, plus 32 bytes of
// WireGuard: IP length 156); the first such datagram in the right direction after the leg started is
// taken as the ping's.
//
//   node bench/ping-path.mjs --rounds 2 --seconds 6 this q0:TSGUARD_TUN_QUEUE=0 d0=wggo:/path/to/wireguard-go
//
// Pair specs as in bench/tcp-drops.mjs. Needs root, iperf3, ping, tcpdump and a built tree. Writes
// bench/results/ping-path-TIME.json.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './lib/netns.mjs';
import { abArgs, alternating, closePairs, openPairs } from './lib/pair-spec.mjs';

const { rounds, seconds, specs } = abArgs('ping-path', { rounds: 2, seconds: 6, minSeconds: 3 });

const median = (xs) => (xs.length === 0 ? null : [...xs].sort((a, b) => a - b)[xs.length >> 1]);
const ms = (x) => Math.round(x * 1000) / 1000;

/** tcpdump in `ns` on `dev` with `filter`; stop() resolves its lines (`-tt`: seconds since the epoch). */
function capture(ns, dev, filter) {
  const p = spawn('ip', ['netns', 'exec', ns, 'tcpdump', '-tt', '-n', '-l', '-i', dev, filter], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (err += d));
  const ready = new Promise((resolve, reject) => {
    let done = false;
    const fail = (why) => {
      if (!done) reject(new Error(`ping-path: tcpdump in ${ns} on ${dev} ${why}${err.trim() ? `: ${err.trim()}` : ''} (install it with: apt-get install tcpdump)`));
      done = true;
    };
    p.once('error', (e) => fail(`could not start (${e.message})`));
    p.once('exit', (code) => fail(`exited with ${code}`));
    const check = () => {
      if (done) return;
      if (err.includes('listening on')) {
        done = true;
        resolve();
      } else setTimeout(check, 20);
    };
    check();
  });
  return {
    ready,
    async stop() {
      p.kill('SIGINT');
      await new Promise((resolve) => p.once('close', resolve));
      return out.split('\n').filter(Boolean);
    },
  };
}

/** Echo requests and replies by sequence number from a TUN capture: { req: Map, rep: Map } of times. */
function icmpTimes(lines) {
  const req = new Map();
  const rep = new Map();
  for (const l of lines) {
    const m = /^(\d+\.\d+) .*ICMP echo (request|reply), id \d+, seq (\d+)/.exec(l);
    if (m) (m[2] === 'request' ? req : rep).set(Number(m[3]), Number(m[1]));
  }
  return { req, rep };
}

/** Times of the 156-byte datagrams from `src` in a veth capture, ascending. */
function datagramTimes(lines, src) {
  return lines
    .filter((l) => l.split(' ')[2]?.startsWith(`${src}.`))
    .map((l) => Number(l.split(' ')[0]));
}

/** The first time in the ascending `times` at or after `t`. */
function firstAfter(times, t) {
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (times[mid] < t) lo = mid + 1;
    else hi = mid;
  }
  return lo < times.length ? times[lo] : null;
}

const pairs = [];
try {
  await openPairs(specs, 'ping-path', pairs);
  for (const [r, p] of alternating(pairs, rounds)) {
    const { lib } = p;
    const { a, b } = p.pair;
    const caps = {
      tunA: capture(a.ns, a.ifname, 'icmp'),
      tunB: capture(b.ns, b.ifname, 'icmp'),
      veth: capture(a.ns, 'vA', 'udp and ip[2:2] = 156'),
    };
    await Promise.all(Object.values(caps).map((c) => c.ready));
    const tcpP = lib.iperf3(b.ns, b.inner4, a.ns, { seconds });
    await lib.sleep(700);
    const ping = await lib.pingStats(a.ns, b.inner4, { count: Math.max(50, Math.round((seconds - 1.5) / 0.01)), interval: 0.01, deadline: seconds + 5 });
    const tcp = await tcpP;
    const tunA = icmpTimes(await caps.tunA.stop());
    const tunB = icmpTimes(await caps.tunB.stop());
    const veth = await caps.veth.stop();
    const fromA = datagramTimes(veth, a.outer4);
    const fromB = datagramTimes(veth, b.outer4);
    const legs = { a_out: [], b_in: [], b_out: [], a_in: [], rtt: [] };
    for (const [seq, t0] of tunA.req) {
      const t5 = tunA.rep.get(seq);
      const t2 = tunB.req.get(seq);
      const t3 = tunB.rep.get(seq);
      if (t5 === undefined || t2 === undefined || t3 === undefined) continue;
      const t1 = firstAfter(fromA, t0);
      const t4 = firstAfter(fromB, t3);
      if (t1 === null || t4 === null || t1 > t2 || t4 > t5) continue;
      legs.a_out.push(t1 - t0);
      legs.b_in.push(t2 - t1);
      legs.b_out.push(t4 - t3);
      legs.a_in.push(t5 - t4);
      legs.rtt.push(t5 - t0);
    }
    const run = {
      round: r + 1,
      mbps: Math.round(tcp.mbps),
      ping_p50_ms: ping.p50,
      matched: legs.rtt.length,
      p50_ms: Object.fromEntries(Object.entries(legs).map(([k, v]) => [k, v.length === 0 ? null : ms(median(v) * 1000)])),
    };
    p.runs.push(run);
    process.stdout.write(`${p.name} ${JSON.stringify(run)}\n`);
  }
} finally {
  await closePairs(pairs);
}
for (const p of pairs) {
  const keys = Object.keys(p.runs[0]?.p50_ms ?? {});
  const s = Object.fromEntries(keys.map((k) => [k, median(p.runs.map((x) => x.p50_ms[k]).filter((x) => x !== null))]));
  process.stdout.write(`median ${p.name} ping ${median(p.runs.map((x) => x.ping_p50_ms))} ms, legs ${JSON.stringify(s)}\n`);
}
const out = join(ROOT, 'bench/results', `ping-path-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}Z.json`);
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), seconds, rounds, pairs: pairs.map((p) => ({ name: p.name, env: p.env, impl: p.impl, runs: p.runs })) }, null, 2) + '\n');
process.stdout.write(`wrote ${out}\n`);
