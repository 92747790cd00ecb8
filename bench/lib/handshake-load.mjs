#!/usr/bin/env node
// Handshake load generator: how many handshakes per second a WireGuard responder completes.
//
// Run inside the initiator's namespace:
//   node bench/lib/handshake-load.mjs --target 192.168.241.2:51821 --responder-key BASE64 \
//        --keys FILE [--seconds 3] [--warmup 0.5] [--window 64] [--responder-pid PID]
// FILE holds one initiator private key (base64) per line; each must be a peer of the responder.
// Prints one JSON object on stdout, and `handshake-load: flood started` on stderr when the flood begins.
//
// How it works
// - Every initiation is valid: fresh ephemeral key, strictly increasing TAI64N timestamp per identity,
//   correct mac1 for the responder's public key (and mac2 once the responder sent us a cookie).
// - The Noise part of each initiation (ephemeral DH, encrypted static and timestamp) is computed
//   *before* the measurement window by worker threads, so the generator's crypto does not compete
//   with the responder for the CPU during the window. The sender index is not covered by the Noise
//   transcript, so it is patched in at send time, and the MACs (cheap BLAKE2s) are added then.
// - Closed loop: at most --window initiations are outstanding. Both responders are under load while
//   ≥ 128 handshake messages wait in their queue (wireguard-go's rule, tsguard's too), so with a
//   window below that a responder that keeps up answers without cookies; one that falls behind
//   fills its queue, answers with cookie replies and is then held to the per-source rate limit.
// - Each identity has at most one initiation outstanding and waits 52 ms after an answer before its
//   next one: responders drop initiations from a peer that come < 50 ms after the previous one
//   ("flood"), so the achievable rate is capped at about identities × 19/s (reported as rate_cap_per_s).
// - A cookie reply (type 3) is decrypted with that identity's CookieGenerator.consumeReply and the
//   same initiation is re-sent with mac2. Responders under load also rate-limit per source IP
//   (20/s, burst 5) and drop silently: an initiation unanswered after --timeout ms frees its slot.
// - Counted: responses (type 2, 92 bytes) whose arrival falls in [warmup, warmup + seconds).
import dgram from 'node:dgram';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { cpus } from 'node:os';

const DIST = new URL('../../dist/', import.meta.url);
const { getCrypto, loadCrypto } = await import(new URL('crypto/index.js', DIST).href);
const { loadNativeCrypto } = await import(new URL('io/native.js', DIST).href);
await loadCrypto(loadNativeCrypto); // as the CLI: native, or what TSGUARD_CRYPTO names
const { createInitiation, Handshake, makeIdentity } = await import(new URL('noise/handshake.js', DIST).href);
const { CookieGenerator } = await import(new URL('noise/cookie.js', DIST).href);
const { tai64n } = await import(new URL('crypto/tai64n.js', DIST).href);

const INIT_SIZE = 148;
const SPACING_MS = 52;

const b64 = (s) => new Uint8Array(Buffer.from(s, 'base64'));

/** Worker: Noise parts of `count` initiations for each of the given identities. */
function pregenWorker({ keys, responderKey, count, baseMs }) {
  const c = getCrypto();
  const rpub = b64(responderKey);
  const out = [];
  for (const k of keys) {
    const ini = makeIdentity(c, b64(k));
    const hs = new Handshake(c, rpub);
    hs.precompute(c, ini);
    const buf = new Uint8Array(count * INIT_SIZE);
    for (let j = 0; j < count; j++) {
      const m = createInitiation(c, ini, hs, 1, tai64n(baseMs + j));
      if (m === null) throw new Error('createInitiation refused (bad key?)');
      buf.set(m, j * INIT_SIZE);
    }
    out.push(buf);
  }
  parentPort.postMessage(out, out.map((b) => b.buffer));
}

if (!isMainThread) {
  pregenWorker(workerData);
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    process.stderr.write(`handshake-load: ${e?.stack ?? e}\n`);
    process.exit(1);
  });
}

function parseArgs(argv) {
  const o = { seconds: 3, warmup: 0.5, window: 64, timeout: 300, workers: Math.min(2, cpus().length) };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    const v = argv[++i];
    if (k === 'target') o.target = v;
    else if (k === 'responder-key') o.responderKey = v;
    else if (k === 'keys') o.keys = v;
    else if (k === 'responder-pid') o.responderPid = Number(v);
    else if (['seconds', 'warmup', 'window', 'timeout', 'workers'].includes(k)) o[k] = Number(v);
    else throw new Error(`unknown option --${k}`);
  }
  if (!o.target || !o.responderKey || !o.keys) throw new Error('need --target HOST:PORT --responder-key B64 --keys FILE');
  return o;
}

function procCpu(pid) {
  if (!pid) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return null;
  }
}

/** p50 / p90 / p99 of `xs` (ms, rounded to 0.01), or null when empty. */
function percentiles(xs) {
  if (xs.length === 0) return null;
  const s = Float64Array.from(xs).sort();
  const at = (q) => Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))] * 100) / 100;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

/**
 * CPU seconds per thread of a process, or null: `main` for the main thread, else by thread name with
 * the threads of one name summed (V8's workers, libuv's pool), and `other` for those named as the main thread.
 */
function threadsCpu(pid) {
  if (!pid) return null;
  try {
    const out = {};
    const mainName = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
        const name = tid === String(pid) ? 'main' : comm === mainName ? 'other' : comm;
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        out[name] = (out[name] ?? 0) + (Number(f[11]) + Number(f[12])) / 100;
        // Time runnable but waiting for a CPU (schedstat's second field, ns).
        const wait = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1]) / 1e9;
        if (Number.isFinite(wait)) out[`${name} waiting for a CPU`] = (out[`${name} waiting for a CPU`] ?? 0) + wait;
      } catch {
        // the thread exited meanwhile
      }
    }
    return out;
  } catch {
    return null;
  }
}

/** Busy CPU seconds of the whole host (all cores, from /proc/stat), or null. */
function hostBusy() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + f[4]; // idle + iowait
    return (f.reduce((a, b) => a + b, 0) - idle) / 100;
  } catch {
    return null;
  }
}

async function pregenerate(keys, responderKey, count, nWorkers) {
  const baseMs = Date.now();
  const parts = Array.from({ length: nWorkers }, () => []);
  keys.forEach((k, i) => parts[i % nWorkers].push(k));
  const results = await Promise.all(
    parts.map(
      (part) =>
        new Promise((resolve, reject) => {
          const w = new Worker(fileURLToPath(import.meta.url), { workerData: { keys: part, responderKey, count, baseMs } });
          w.once('message', resolve);
          w.once('error', reject);
        }),
    ),
  );
  const msgs = new Array(keys.length);
  results.forEach((bufs, wi) => bufs.forEach((b, j) => (msgs[j * nWorkers + wi] = b)));
  return msgs;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const [host, portText] = [o.target.slice(0, o.target.lastIndexOf(':')), o.target.slice(o.target.lastIndexOf(':') + 1)];
  const port = Number(portText);
  const keys = readFileSync(o.keys, 'utf8').split('\n').map((s) => s.trim()).filter(Boolean);
  const c = getCrypto();
  const rpub = b64(o.responderKey);
  // Per identity at most one initiation per SPACING_MS, plus a few for timeouts.
  const perPeer = Math.ceil(((o.warmup + o.seconds) * 1000) / SPACING_MS) + 8;
  const tg = performance.now();
  const msgs = await pregenerate(keys, o.responderKey, perPeer, o.workers);
  const pregenSeconds = (performance.now() - tg) / 1000;

  const now = () => performance.now();
  const peers = keys.map((_, i) => ({ i, gen: new CookieGenerator(c, now, rpub), msgs: msgs[i], next: 0 }));
  const inflight = new Map(); // sender index → { peer, msg, sentAt }
  const queue = []; // FIFO of { peer, at }: eligibility times are non-decreasing
  let qHead = 0;
  for (const p of peers) queue.push({ peer: p, at: 0 });

  const sock = dgram.createSocket('udp4');
  await new Promise((r) => sock.bind(0, r));
  try {
    sock.setRecvBufferSize(8 << 20);
    sock.setSendBufferSize(8 << 20);
  } catch {
    // best effort
  }

  const st = { sent: 0, cookieResends: 0, responses: 0, responsesInWindow: 0, cookieReplies: 0, cookiesInWindow: 0, badCookies: 0, timeouts: 0, stray: 0, exhausted: 0 };
  let nextIndex = (Math.random() * 0x7fffffff) >>> 0;
  let stopped = false;
  let timer = null;
  const t0 = now();
  const tStart = t0 + o.warmup * 1000;
  const tEnd = tStart + o.seconds * 1000;
  let cpuStart = null;
  let threadsStart = null;
  let hostStart = null;
  let genCpuStart = null;
  const latencies = []; // ms from an initiation's send to its response, over the counted window

  const send = (peer, t) => {
    if (peer.next >= perPeer) {
      st.exhausted++;
      return;
    }
    const msg = peer.msgs.subarray(peer.next * INIT_SIZE, ++peer.next * INIT_SIZE);
    nextIndex = (nextIndex + 1) >>> 0 || 1;
    const idx = nextIndex;
    msg[4] = idx & 0xff;
    msg[5] = (idx >>> 8) & 0xff;
    msg[6] = (idx >>> 16) & 0xff;
    msg[7] = (idx >>> 24) & 0xff;
    peer.gen.addMacs(msg);
    inflight.set(idx, { peer, msg, sentAt: t });
    sock.send(msg, port, host);
    st.sent++;
  };

  const pump = () => {
    if (stopped) return;
    const t = now();
    while (inflight.size < o.window && qHead < queue.length && queue[qHead].at <= t) {
      send(queue[qHead].peer, t);
      queue[qHead++] = undefined;
    }
    if (qHead > 4096 && qHead * 2 > queue.length) {
      queue.splice(0, qHead);
      qHead = 0;
    }
    if (timer === null && inflight.size < o.window && qHead < queue.length) {
      timer = setTimeout(() => {
        timer = null;
        pump();
      }, Math.max(0, queue[qHead].at - t));
    }
  };

  const release = (idx, e, t) => {
    inflight.delete(idx);
    queue.push({ peer: e.peer, at: t + SPACING_MS });
  };

  sock.on('message', (d) => {
    const t = now();
    if (d.length === 92 && d[0] === 2 && d[1] === 0 && d[2] === 0 && d[3] === 0) {
      const idx = d.readUInt32LE(8);
      const e = inflight.get(idx);
      if (e === undefined) {
        st.stray++;
        return;
      }
      st.responses++;
      if (t >= tStart && t < tEnd) {
        st.responsesInWindow++;
        latencies.push(t - e.sentAt);
      }
      release(idx, e, t);
    } else if (d.length === 64 && d[0] === 3 && d[1] === 0 && d[2] === 0 && d[3] === 0) {
      st.cookieReplies++;
      if (t >= tStart && t < tEnd) st.cookiesInWindow++;
      const idx = d.readUInt32LE(4);
      const e = inflight.get(idx);
      if (e === undefined) {
        st.stray++;
        return;
      }
      if (!e.peer.gen.consumeReply(new Uint8Array(d.buffer, d.byteOffset, d.length))) {
        st.badCookies++;
        return;
      }
      e.peer.gen.addMacs(e.msg); // now with mac2
      e.sentAt = t;
      sock.send(e.msg, port, host);
      st.cookieResends++;
    } else st.stray++;
    pump();
  });

  const scan = setInterval(() => {
    const t = now();
    for (const [idx, e] of inflight) {
      if (t - e.sentAt > o.timeout) {
        st.timeouts++;
        release(idx, e, t);
      }
    }
    pump();
  }, 20);

  const startTimer = setTimeout(() => {
    cpuStart = procCpu(o.responderPid);
    threadsStart = threadsCpu(o.responderPid);
    hostStart = hostBusy();
    genCpuStart = process.cpuUsage();
  }, Math.max(0, tStart - now()));

  process.stderr.write('handshake-load: flood started\n'); // bench/run.mjs starts its pings on this line
  pump();
  await new Promise((r) => setTimeout(r, Math.max(0, tEnd - now())));
  stopped = true;
  const cpuEnd = procCpu(o.responderPid);
  const threadsEnd = threadsCpu(o.responderPid);
  const hostEnd = hostBusy();
  const genCpu = genCpuStart ? process.cpuUsage(genCpuStart) : null;
  clearInterval(scan);
  clearTimeout(startTimer);
  if (timer) clearTimeout(timer);
  sock.close();

  const responderCpu = cpuStart !== null && cpuEnd !== null ? Math.round((cpuEnd - cpuStart) * 100) / 100 : null;
  const hps = st.responsesInWindow / o.seconds;
  const result = {
    handshakes_per_s: Math.round(hps),
    seconds: o.seconds,
    warmup_s: o.warmup,
    identities: keys.length,
    window: o.window,
    rate_cap_per_s: Math.round(keys.length * (1000 / (SPACING_MS + 1))),
    initiations_sent: st.sent,
    responses: st.responses,
    responses_in_window: st.responsesInWindow,
    cookie_replies: st.cookieReplies,
    cookie_replies_in_window: st.cookiesInWindow,
    cookie_resends: st.cookieResends,
    bad_cookie_replies: st.badCookies,
    timeouts: st.timeouts,
    stray_datagrams: st.stray,
    exhausted: st.exhausted,
    responder_cpu_s: responderCpu,
    // Closed loop: with --window initiations out and SPACING_MS per identity, this latency bounds the rate.
    response_latency_ms: percentiles(latencies),
    // CPU seconds per thread over the counted window (see threadsCpu), each also with its time waiting for a CPU.
    responder_threads_cpu_s:
      threadsStart && threadsEnd
        ? Object.fromEntries(Object.entries(threadsEnd).map(([k, v]) => [k, Math.round((v - (threadsStart[k] ?? 0)) * 100) / 100]).filter(([, v]) => v > 0))
        : null,
    // Busy cores of the whole host over the window (responder, generator, kernel and anything else).
    host_busy_cores: hostStart !== null && hostEnd !== null ? Math.round(((hostEnd - hostStart) / o.seconds) * 100) / 100 : null,
    handshakes_per_responder_cpu_s: responderCpu ? Math.round(st.responsesInWindow / responderCpu) : null,
    generator_cpu_s: genCpu ? Math.round(((genCpu.user + genCpu.system) / 1e6) * 100) / 100 : null,
    pregenerate_s: Math.round(pregenSeconds * 100) / 100,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

/**
 * The command line that runs this generator against the responder B of a configured pair `p`
 * (bench/lib/netns.mjs configurePair) with the identities in `keys` (from prepareResponder); to run
 * in A's namespace: `nsSpawn(p.a.ns, process.execPath, handshakeLoadArgs(…))`.
 */
export function handshakeLoadArgs(p, keys, { seconds, window }) {
  return [
    fileURLToPath(import.meta.url),
    '--target', `${p.b.outer4}:${p.b.port}`,
    '--responder-key', p.b.keys.pub,
    '--keys', keys,
    '--seconds', String(seconds),
    '--window', String(window),
    '--responder-pid', String(p.b.daemon.pid),
  ];
}

/**
 * Create `n` initiator identities, add them as peers of the responder interface (`wg addconf`,
 * no allowed IPs) and write their private keys to `dir/hs-keys.txt`. Returns that path.
 * `wgRun(args, input)` runs `wg` in the responder's namespace.
 */
export async function prepareResponder(wgRun, ifname, n, dir) {
  const { writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const c = getCrypto();
  const privs = [];
  let conf = '';
  for (let i = 0; i < n; i++) {
    const k = c.generatePrivateKey();
    privs.push(Buffer.from(k).toString('base64'));
    conf += `[Peer]\nPublicKey = ${Buffer.from(c.publicKey(k)).toString('base64')}\n\n`;
  }
  const confPath = join(dir, 'hs-peers.conf');
  writeFileSync(confPath, conf, { mode: 0o600 });
  await wgRun(['addconf', ifname, confPath]);
  const keysPath = join(dir, 'hs-keys.txt');
  writeFileSync(keysPath, privs.join('\n') + '\n', { mode: 0o600 });
  return keysPath;
}
