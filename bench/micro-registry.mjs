#!/usr/bin/env node
// Micro-benchmark of the hub registry's address allocator (Registry.addPeer into a temp dir):
//   - per-op cost of the first 1,000 adds (allocator picks the address)
//   - per-op cost of adds at ~10,000 rows (allocator), and, for comparison, with an explicit address
//     (same transaction and fsync, no allocation query) — the difference is the allocator's scan.
// Rows 1,000…9,999 are filled with explicit addresses (what the allocator would pick) to keep it quick.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from '../dist/hub/registry.js';
import { getCrypto, loadCrypto } from '../dist/crypto/index.js';
import { loadNativeCrypto } from '../dist/io/native.js';

await loadCrypto(loadNativeCrypto); // as the CLI: native, or what TSGUARD_CRYPTO names

const SUBNET = '10.100.0.0/18';
const addr = (k) => {
  const v = ((10 << 24) | (100 << 16)) + k; // 10.100.0.0 + k
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
};

export function runRegistry(quick = false) {
  const c = getCrypto();
  const key = () => Buffer.from(c.publicKey(c.generatePrivateKey())).toString('base64');
  const dir = mkdtempSync(join(tmpdir(), 'tsguard-bench-reg-'));
  const reg = Registry.open(dir, { create: { subnet: SUBNET } });
  const rows = [];
  try {
    let n = 0;
    const add = (explicit) => {
      const input = { kind: 'device', name: `d${n}`, publicKey: key(), source: 'cli' };
      if (explicit) input.ip = addr(n + 2);
      reg.addPeer(input);
      n++;
    };
    // Keys are generated inside the timed loop; their cost (~50 µs) is measured separately and subtracted.
    const tk = performance.now();
    for (let i = 0; i < 500; i++) key();
    const keyMs = (performance.now() - tk) / 500;
    const timed = (count, explicit) => {
      const t0 = performance.now();
      for (let i = 0; i < count; i++) add(explicit);
      return (performance.now() - t0) / count - keyMs;
    };
    const first = timed(1000, false);
    while (n < 9800) add(true);
    const sample = quick ? 100 : 200;
    const at10kExplicit = timed(sample, true);
    const at10kAlloc = timed(sample, false);
    rows.push({ benchmark: 'Registry.addPeer, allocator, rows 0–1,000', 'per op': `${first.toFixed(3)} ms`, notes: 'one IMMEDIATE transaction + fsync (WAL, synchronous=FULL) per add' });
    rows.push({ benchmark: `Registry.addPeer, allocator, at ${n - sample}–${n} rows`, 'per op': `${at10kAlloc.toFixed(3)} ms`, notes: `${(at10kAlloc / first).toFixed(1)}× the first 1,000` });
    rows.push({ benchmark: `Registry.addPeer, explicit address, at ${n - 2 * sample}–${n - sample} rows`, 'per op': `${at10kExplicit.toFixed(3)} ms`, notes: `allocator scan ≈ ${(at10kAlloc - at10kExplicit).toFixed(3)} ms of the above` });
  } finally {
    reg.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.table(runRegistry(process.argv.includes('--quick')));
}
