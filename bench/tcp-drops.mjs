#!/usr/bin/env node
// Where TCP through the tunnel loses datagrams: alternating A/B of tsguard ↔ tsguard configurations
// (environment switches, other builds) and wireguard-go builds on the bench topology (bench/lib/netns.mjs).
//
//   node bench/tcp-drops.mjs --rounds 3 --seconds 5 this rcv0:TSGUARD_UDP_RCVBUF=0 main@/path/to/main d0=wggo:/path/to/wireguard-go
//
// Each NAME is a pair: `this` (this checkout), NAME:KEY=VALUE[,KEY=VALUE] (this checkout with that
// environment), NAME@DIR (the checkout or copy at DIR: its dist/, build/ and bench/lib) or
// NAME=wggo:PATH (a wireguard-go binary on both sides). Per iperf3 TCP run (one stream, or --parallel N; A sends): Mbit/s,
// retransmits, the growth of `Udp: RcvbufErrors` in each namespace, B's socket `skmem` (ss), Mbit per
// CPU-second of both daemons and ping A → B every 10 ms during the stream (not with --no-ping); then
// medians per pair.
// --probe also samples, every 150 ms, where the stream's bytes stand (A's TCP srtt, cwnd, unacked and
// unsent bytes; both daemons' UDP receive queues; the TUN qdiscs' backlog; medians in `queues`).
// Writes every run to bench/results/tcp-drops-TIME.json. Needs root, iperf3, ping, ss and a built tree.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { ROOT } from './lib/netns.mjs';
import { abArgs, alternating, closePairs, openPairs } from './lib/pair-spec.mjs';

const { val, has, rounds, seconds, specs } = abArgs('tcp-drops', { rounds: 3, seconds: 5, minSeconds: 2, valueFlags: ['--parallel'] });
const probe = has('--probe');
// iputils ping spins on sched_yield between a reply and its next send when the interval is at most
// one clock tick (10 ms here), so on 2 cores the pinger takes CPU from the pair under test — the more
// the lower the RTT. --no-ping measures throughput without it.
const withPing = !has('--no-ping');
const parallel = Math.max(1, Number(val('--parallel', 1)));

/** Bytes waiting in a socket's receive queue (`skmem:(r…)`, kernel truesize) from one `ss` line. */
const skmemR = (line) => Number(/skmem:\(r(\d+)/.exec(line)?.[1] ?? NaN);

/**
 * One sample of where the stream's bytes stand: A's TCP sender (srtt, cwnd, unacked segments,
 * bytes not yet sent), the queued bytes of both daemons' UDP sockets and the TUN qdiscs' backlog.
 */
async function sampleQueues(lib, a, b) {
  const [tcp, ua, ub, qa, qb] = await Promise.all([
    lib.nsRun(a.ns, 'ss', ['-tinH', 'dst', b.inner4, 'dport', '=', ':5201']),
    lib.nsRun(a.ns, 'ss', ['-uamnH', 'sport', '=', `:${a.port}`]),
    lib.nsRun(b.ns, 'ss', ['-uamnH', 'sport', '=', `:${b.port}`]),
    lib.nsRun(a.ns, 'tc', ['-s', 'qdisc', 'show', 'dev', a.ifname], { allowFail: true }),
    lib.nsRun(b.ns, 'tc', ['-s', 'qdisc', 'show', 'dev', b.ifname], { allowFail: true }),
  ]);
  // The data connection is the one with the most bytes acked (iperf3's control connection is idle).
  const conns = tcp.stdout.split(/\n(?=\S)/).map((c) => ({
    rtt_ms: Number(/ rtt:([\d.]+)/.exec(c)?.[1] ?? NaN),
    cwnd: Number(/ cwnd:(\d+)/.exec(c)?.[1] ?? NaN),
    unacked: Number(/ unacked:(\d+)/.exec(c)?.[1] ?? 0),
    notsent: Number(/ notsent:(\d+)/.exec(c)?.[1] ?? 0),
    acked: Number(/ bytes_acked:(\d+)/.exec(c)?.[1] ?? 0),
  }));
  const data = conns.sort((x, y) => y.acked - x.acked)[0] ?? {};
  const backlog = (out) => Number(/backlog (\d+)b/.exec(out.stdout)?.[1] ?? 0);
  return { ...data, acked: undefined, udp_a: skmemR(ua.stdout), udp_b: skmemR(ub.stdout), qdisc_a: backlog(qa), qdisc_b: backlog(qb) };
}

/** The Udp counters of /proc/net/snmp in `ns`. */
async function udpCounters(lib, ns) {
  const lines = (await lib.nsRun(ns, 'cat', ['/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  const keys = lines[0].split(/\s+/);
  const values = lines[1].split(/\s+/).map(Number);
  return Object.fromEntries(keys.map((k, i) => [k, values[i]]));
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const pairs = [];
try {
  await openPairs(specs, 'tcp-drops', pairs);
  for (const [r, p] of alternating(pairs, rounds)) {
    const { lib } = p;
    const { a, b } = p.pair;
    const load1 = Math.round(os.loadavg()[0] * 100) / 100;
    const u0 = [await udpCounters(lib, a.ns), await udpCounters(lib, b.ns)];
    const c0 = [lib.cpuSeconds(a.daemon.pid), lib.cpuSeconds(b.daemon.pid)];
    const tcpP = lib.iperf3(b.ns, b.inner4, a.ns, { seconds, parallel });
    await lib.sleep(700);
    const skmem = (await lib.nsRun(b.ns, 'ss', ['-uamnH', 'sport', '=', `:${b.port}`])).stdout.match(/skmem:\([^)]*\)/)?.[0] ?? null;
    const pingP = !withPing ? Promise.resolve({ p50: null, p99: null }) : lib.pingStats(a.ns, b.inner4, { count: Math.max(50, Math.round((seconds - 1.5) / 0.01)), interval: 0.01, deadline: seconds + 5 });
    const samples = [];
    let sampling = probe;
    const sampler = (async () => {
      while (sampling) {
        samples.push(await sampleQueues(lib, a, b));
        await lib.sleep(150);
      }
    })();
    const [tcp, ping] = await Promise.all([tcpP, pingP]);
    sampling = false;
    await sampler;
    const c1 = [lib.cpuSeconds(a.daemon.pid), lib.cpuSeconds(b.daemon.pid)];
    const u1 = [await udpCounters(lib, a.ns), await udpCounters(lib, b.ns)];
    const cpu = c1[0] - c0[0] + (c1[1] - c0[1]);
    const run = {
      round: r + 1,
      load1,
      mbps: Math.round(tcp.mbps),
      retransmits: tcp.retransmits,
      rcvbuf_errors_a: u1[0].RcvbufErrors - u0[0].RcvbufErrors,
      rcvbuf_errors_b: u1[1].RcvbufErrors - u0[1].RcvbufErrors,
      in_datagrams_b: u1[1].InDatagrams - u0[1].InDatagrams,
      cpu_s: { a: Math.round((c1[0] - c0[0]) * 100) / 100, b: Math.round((c1[1] - c0[1]) * 100) / 100 },
      mbit_per_cpu_s: cpu > 0 ? Math.round((tcp.mbps * tcp.seconds) / cpu) : null,
      ping_p50_ms: ping.p50,
      ping_p99_ms: ping.p99,
      b_skmem: skmem,
    };
    if (probe && samples.length > 0) {
      // Medians over the stream (the last sample, after it ended, left out).
      const mid = samples.slice(0, -1);
      run.queues = Object.fromEntries(Object.keys(mid[0]).filter((k) => mid[0][k] !== undefined).map((k) => [k, median(mid.map((x) => x[k]))]));
    }
    p.runs.push(run);
    process.stdout.write(`${p.name} ${JSON.stringify(run)}\n`);
  }
} finally {
  await closePairs(pairs);
}
const keys = ['mbps', 'retransmits', 'rcvbuf_errors_b', 'mbit_per_cpu_s', 'ping_p50_ms', 'ping_p99_ms'];
const summary = Object.fromEntries(pairs.map((p) => [p.name, Object.fromEntries(keys.map((k) => [k, median(p.runs.map((x) => x[k] ?? NaN))]))]));
for (const [name, s] of Object.entries(summary)) process.stdout.write(`median ${name} ${JSON.stringify(s)}\n`);
const out = join(ROOT, 'bench/results', `tcp-drops-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}Z.json`);
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), seconds, rounds, parallel, ping: withPing, pairs: pairs.map((p) => ({ name: p.name, root: p.root, env: p.env, impl: p.impl, runs: p.runs })), summary }, null, 2) + '\n');
process.stdout.write(`wrote ${out}\n`);
