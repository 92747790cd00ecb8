#!/usr/bin/env node
// Micro-benchmarks of the data-path structures (run by bench/micro.mjs, or alone):
//   - AllowedIPs: insert and lookup with 100,000 prefixes (IPv4 and IPv6 tables)
//   - replay window: accept in order, with reordering, and rejection of replays
import { AllowedIps } from '../dist/routing/allowed-ips.js';
import { ReplayWindow } from '../dist/session/replay.js';

/** Deterministic PRNG (xorshift32) so that runs compare. */
function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** Median ns per op over rounds of n ops. */
function nsPerOp(fn, n, rounds) {
  for (let i = 0; i < Math.min(n, 1000); i++) fn(i);
  const per = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn(i);
    per.push(((performance.now() - t0) * 1e6) / n);
  }
  per.sort((a, b) => a - b);
  return per[Math.floor(per.length / 2)];
}

function prefixes(family, count, seed) {
  const r = rng(seed);
  const len = family === 4 ? 4 : 16;
  const out = [];
  for (let i = 0; i < count; i++) {
    const bytes = new Uint8Array(len);
    for (let j = 0; j < len; j += 4) {
      const v = r();
      bytes[j] = v >>> 24;
      bytes[j + 1] = (v >>> 16) & 255;
      bytes[j + 2] = (v >>> 8) & 255;
      bytes[j + 3] = v & 255;
    }
    // A realistic mix: mostly host routes, some subnets.
    const k = r() % 10;
    const bits = family === 4 ? (k < 7 ? 32 : k < 9 ? 24 : 16 + (r() % 8)) : k < 7 ? 128 : k < 9 ? 64 : 48;
    out.push({ family, bytes, bits });
  }
  return out;
}

function addresses(family, table, count, seed) {
  // Half the lookups hit an inserted prefix (an address inside it), half are random.
  const r = rng(seed);
  const len = family === 4 ? 4 : 16;
  const buf = new Uint8Array(count * len);
  for (let i = 0; i < count; i++) {
    if (i % 2 === 0) buf.set(table[r() % table.length].bytes, i * len);
    else for (let j = 0; j < len; j++) buf[i * len + j] = r() & 255;
  }
  return buf;
}

export function runStructures(quick = false) {
  const rows = [];
  const N = 100_000;
  const rounds = quick ? 3 : 7;
  for (const family of [4, 6]) {
    const owners = Array.from({ length: 1000 }, (_, i) => ({ id: `peer${i}` }));
    const ps = prefixes(family, N, family === 4 ? 0x1234 : 0x9876);
    const table = new AllowedIps();
    const t0 = performance.now();
    for (let i = 0; i < N; i++) table.insert(ps[i], owners[i % owners.length]);
    const insertUs = ((performance.now() - t0) * 1000) / N;
    const M = 1 << 16;
    const len = family === 4 ? 4 : 16;
    const addrs = addresses(family, ps, M, 42);
    let hits = 0;
    let calls = 0;
    const lookupNs = nsPerOp((i) => {
      calls++;
      if (table.lookup(family, addrs, (i & (M - 1)) * len) !== undefined) hits++;
    }, quick ? 200_000 : 1_000_000, rounds);
    // Whole-packet entry point used by the send path (destination address of an IP header),
    // over the same 65,536 addresses (half of them inside an inserted prefix).
    const pkts = [];
    for (let i = 0; i < M; i++) {
      const p = new Uint8Array(family === 4 ? 20 : 40);
      p[0] = family === 4 ? 0x45 : 0x60;
      p.set(addrs.subarray(i * len, i * len + len), family === 4 ? 16 : 24);
      pkts.push(p);
    }
    const pktNs = nsPerOp((i) => table.lookupPacketDst(pkts[i & (M - 1)]), quick ? 200_000 : 1_000_000, rounds);
    // The same over 1,024 addresses (trie paths stay in cache: a data path with few active peers).
    const hotNs = nsPerOp((i) => table.lookup(family, addrs, (i & 1023) * len), quick ? 200_000 : 1_000_000, rounds);
    rows.push({
      benchmark: `AllowedIPs IPv${family}, ${N.toLocaleString('en')} prefixes`,
      'per op': `lookup ${lookupNs.toFixed(0)} ns (64k addrs) / ${hotNs.toFixed(0)} ns (1k hot), lookupPacketDst ${pktNs.toFixed(0)} ns, insert ${insertUs.toFixed(2)} µs`,
      notes: `${table.size} distinct prefixes, ${table.nodeCount} nodes, ${Math.round((hits / calls) * 100)}% of lookups match`,
    });
  }

  // Replay window.
  const w = new ReplayWindow();
  let c = 0;
  const inOrder = nsPerOp(() => w.accept(++c >>> 0, 0), quick ? 1_000_000 : 5_000_000, rounds);
  // Reordered: counters arrive shuffled within blocks of 64 (like multi-queue reordering).
  const perm = new Uint32Array(1 << 16);
  const r = rng(7);
  for (let i = 0; i < perm.length; i += 64) {
    const block = Array.from({ length: 64 }, (_, j) => i + j);
    for (let j = 63; j > 0; j--) {
      const k = r() % (j + 1);
      [block[j], block[k]] = [block[k], block[j]];
    }
    perm.set(block, i);
  }
  const w2 = new ReplayWindow();
  let base = 0;
  let accepted = 0;
  const reordered = nsPerOp((i) => {
    const j = i & 0xffff;
    if (j === 0 && i > 0) base += 1 << 16;
    if (w2.accept(base + perm[j] + 1, 0)) accepted++;
  }, quick ? 1_000_000 : 4_194_304, rounds);
  const w3 = new ReplayWindow();
  for (let i = 1; i <= 8000; i++) w3.accept(i, 0);
  const replay = nsPerOp((i) => w3.accept(1 + (i % 8000), 0), quick ? 1_000_000 : 5_000_000, rounds);
  rows.push({ benchmark: 'Replay window: accept, in order', 'per op': `${inOrder.toFixed(1)} ns`, notes: '' });
  rows.push({ benchmark: 'Replay window: accept, shuffled within 64', 'per op': `${reordered.toFixed(1)} ns`, notes: accepted > 0 ? '' : 'nothing accepted?!' });
  rows.push({ benchmark: 'Replay window: reject a replay', 'per op': `${replay.toFixed(1)} ns`, notes: '' });
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.table(runStructures(process.argv.includes('--quick')));
}
