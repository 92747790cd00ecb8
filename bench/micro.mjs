#!/usr/bin/env node
// Micro-benchmarks of the protocol engine, for both crypto providers:
//   - ChaCha20-Poly1305 seal/open of one 1420-byte packet
//   - the engine's per-packet cost (Device.sendPacket → datagram, Device.receiveDatagram → packet),
//     one packet at a time and in batches of 64 (Device.batch; TSGUARD_CRYPTO_THREADS sizes the native pool)
//   - handshakes per second (responder side, and a complete exchange)
//   - data-path structures (bench/micro-structures.mjs): AllowedIPs with 100k prefixes, replay window
//   - the hub registry (bench/micro-registry.mjs): registrations/s for the first and last 1,000 of 65,000 agents, SQLite and PostgreSQL
// Run after `npm ci` (uses dist/): `npm run bench:micro` (-- --quick for fewer rounds, --cpu for process CPU time
// instead of wall time, --provider native|node|noble for one provider). Prints tables; asserts nothing.
import { nodeCrypto } from '../dist/crypto/node.js';
import { loadNativeCrypto } from '../dist/io/native.js';
import { nobleCrypto } from '../dist/crypto/noble.js';
import { Device } from '../dist/device/device.js';
import { parsePrefix } from '../dist/routing/ip.js';
import { consumeInitiation, createInitiation, createResponse, Handshake, makeIdentity } from '../dist/noise/handshake.js';
import { tai64n } from '../dist/crypto/tai64n.js';
import { runStructures } from './micro-structures.mjs';
import { runRegistry } from './micro-registry.mjs';

const quick = process.argv.includes('--quick');
// --cpu: CPU time of the whole process (every thread, so the crypto pool's too) per operation instead of
// wall time: on a loaded machine wall time counts the time the thread waited for a core.
const cpu = process.argv.includes('--cpu');
const clock = cpu ? () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; } : () => performance.now();
const only = process.argv.includes('--provider') ? process.argv[process.argv.indexOf('--provider') + 1] : null;

/** Median per-operation time in µs over `rounds` rounds of `n` operations. */
function measure(fn, n, rounds = quick ? 3 : 7) {
  for (let i = 0; i < Math.min(n, 200); i++) fn(i); // warm-up
  const per = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = clock();
    for (let i = 0; i < n; i++) fn(i);
    per.push(((clock() - t0) * 1000) / n);
  }
  per.sort((a, b) => a - b);
  return per[Math.floor(per.length / 2)];
}

function ipv4(len) {
  const p = new Uint8Array(len);
  p[0] = 0x45;
  p[2] = len >> 8;
  p[3] = len & 0xff;
  p[9] = 17;
  p.set([10, 0, 0, 1], 12);
  p.set([10, 0, 0, 2], 16);
  return p;
}

function pairOf(crypto) {
  const out = { a: [], b: [], delivered: [] };
  const io = (q) => ({ sendDatagram: (d) => q.push(d), deliverPacket: (p) => out.delivered.push(p) });
  const a = new Device({ crypto, io: io(out.a) });
  const b = new Device({ crypto, io: io(out.b) });
  const ka = crypto.generatePrivateKey();
  const kb = crypto.generatePrivateKey();
  a.setPrivateKey(ka);
  b.setPrivateKey(kb);
  const ea = { host: '192.0.2.1', port: 1 };
  const eb = { host: '192.0.2.2', port: 2 };
  a.setPeer(crypto.publicKey(kb), { endpoint: eb, allowedIps: [parsePrefix('10.0.0.2/32')] });
  b.setPeer(crypto.publicKey(ka), { endpoint: ea, allowedIps: [parsePrefix('10.0.0.1/32')] });
  a.sendPacket(ipv4(60)); // handshake, then this packet
  while (out.a.length || out.b.length) {
    for (const d of out.a.splice(0)) {
      b.receiveDatagram(d, ea);
      b.workHandshakes();
    }
    for (const d of out.b.splice(0)) {
      a.receiveDatagram(d, eb);
      a.workHandshakes();
    }
  }
  if (out.delivered.length !== 1) throw new Error('benchmark pair did not complete its handshake');
  return { a, b, ea, eb, out };
}

const nativeCrypto = loadNativeCrypto();
if (nativeCrypto === null) throw new Error('the native addon is not built (npx node-gyp rebuild)');
const rows = [];
for (const crypto of [nativeCrypto, nodeCrypto, nobleCrypto].filter((c) => only === null || c.name === only)) {
  const key = crypto.randomBytes(32);
  const pkt = crypto.randomBytes(1420);
  const out = new Uint8Array(1420 + 32);
  const sealUs = measure((i) => crypto.sealInto(key, i, 0, pkt, out, 16), quick ? 2000 : 10000);
  const sealed = crypto.seal(key, 7, 0, pkt);
  const openUs = measure(() => crypto.open(key, 7, 0, sealed), quick ? 2000 : 10000);

  // Engine per-packet cost on an established session.
  const { a, b, ea, out: o } = pairOf(crypto);
  const packet = ipv4(1420);
  const sendUs = measure(() => {
    a.sendPacket(packet);
    o.a.length = 0;
  }, quick ? 2000 : 10000);
  a.sendPacket(packet);
  const dgrams = [];
  for (let i = 0; i < 20000; i++) {
    a.sendPacket(packet);
    dgrams.push(o.a.pop());
  }
  let k = 0;
  const recvUs = measure(() => {
    b.receiveDatagram(dgrams[k++ % dgrams.length], ea);
    o.delivered.length = 0;
  }, quick ? 2000 : 10000, 1);

  // The same in batches of 64 (Device.batch: one provider call seals or opens the batch; native: on its threads).
  const BATCH = 64;
  const sendBatchUs = measure(() => {
    a.batch(() => {
      for (let i = 0; i < BATCH; i++) a.sendPacket(packet);
    });
    o.a.length = 0;
  }, quick ? 40 : 160) / BATCH;
  const batches = quick ? 40 : 160;
  const fresh = [];
  for (let i = 0; i < (batches + 200) * BATCH; i++) {
    a.sendPacket(packet);
    fresh.push(o.a.pop()); // a batch decrypts in place: every datagram is used once
  }
  let f = 0;
  const recvBatchUs = measure(() => {
    b.batch(() => {
      for (let i = 0; i < BATCH; i++) b.receiveDatagram(fresh[f++], ea);
    });
    o.delivered.length = 0;
  }, batches, 1) / BATCH;

  // Handshakes: responder work per initiation, and a complete exchange (both sides).
  const ini = makeIdentity(crypto, crypto.generatePrivateKey());
  const res = makeIdentity(crypto, crypto.generatePrivateKey());
  const hsI = new Handshake(crypto, res.publicKey);
  hsI.precompute(crypto, ini);
  const hsR = new Handshake(crypto, ini.publicKey);
  hsR.precompute(crypto, res);
  const n = crypto === nobleCrypto ? (quick ? 20 : 60) : quick ? 300 : 1500;
  const inits = [];
  for (let i = 0; i < n + 200; i++) inits.push(createInitiation(crypto, ini, hsI, i + 1, tai64n(1e12 + i * 1000)));
  let j = 0;
  const respUs = measure(() => {
    const m = inits[j++];
    hsR.lastTimestamp = new Uint8Array(12);
    hsR.lastInitiationConsumed = -Infinity;
    const r = consumeInitiation(crypto, res, m, 0, () => hsR);
    if (!('handshake' in r)) throw new Error('handshake failed in benchmark');
    createResponse(crypto, hsR, 7);
  }, n, 1);
  rows.push({
    provider: crypto.name,
    'seal 1420 B (µs)': sealUs.toFixed(2),
    'open 1420 B (µs)': openUs.toFixed(2),
    'engine send/pkt (µs)': sendUs.toFixed(2),
    'engine recv/pkt (µs)': recvUs.toFixed(2),
    'batch-64 send/pkt (µs)': sendBatchUs.toFixed(2),
    'batch-64 recv/pkt (µs)': recvBatchUs.toFixed(2),
    'engine Gbit/s (1 core, send)': ((1420 * 8) / sendUs / 1000).toFixed(2),
    'responder handshakes/s': Math.round(1e6 / respUs),
  });
}
console.log(`tsguard micro-benchmarks — Node ${process.version}, ${new Date().toISOString()}${cpu ? ', process CPU time per op' : ', wall time per op'}`);
console.table(rows);
console.log('\nData-path structures');
console.table(runStructures(quick));
console.log('\nHub registry: agent registrations (SQLite temp dir, throw-away PostgreSQL)');
console.table(await runRegistry(quick));
