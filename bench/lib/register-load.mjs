#!/usr/bin/env node
// Registration load client, one for the benchmark and the tests: POST /v1/register for every agent
// of AGENTS_JSON with CONCURRENCY requests in flight, one request per agent. Runs inside the hub's
// namespace (plain HTTP to a loopback API).
//
// Usage: node register-load.mjs URL TOKEN AGENTS_JSON CONCURRENCY [--each]
//   AGENTS_JSON: [{"agent_id": "...", "public_key": "..."}, ...]; URL: http://127.0.0.1:PORT.
//   Default: keep-alive connections; prints one JSON summary line: accepted, registrations_per_s
//   (accepted ÷ wall time of the whole run), p50/p99/max latency (ms, accepted requests),
//   refusals by status/reason, errors.
//   --each: a connection per request (a hub killed mid-run loses only the requests in flight);
//   prints one JSON line per request as it completes: {"i", "status", "reason", "ip"} or {"i", "error"}.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';

/**
 * `n` distinct agents `{ agent_id: PREFIX<i>, public_key }` with fresh X25519 keys. The public key
 * comes DER-encoded from the key generation itself (its last 32 bytes): exporting KeyObjects as JWK
 * in a loop deadlocked Node 20 here (a GC during the export finalised a key-generation job that
 * waited for the mutex the export held).
 */
export function makeAgents(n, prefix) {
  const enc = { publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } };
  return Array.from({ length: n }, (_, i) => {
    const der = generateKeyPairSync('x25519', enc).publicKey;
    return { agent_id: `${prefix}${i}`, public_key: der.subarray(der.length - 32).toString('base64') };
  });
}

/** One registration: { i, status, reason, ip, ms } or { i, error }. */
function register(u, token, agent, i, agent_, timeoutMs) {
  const body = JSON.stringify(agent);
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        agent: agent_,
        timeout: timeoutMs,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d) => (text += d));
        res.on('error', (e) => resolve({ i, error: e.message }));
        res.on('end', () => {
          const ms = performance.now() - t0;
          let v;
          try {
            v = JSON.parse(text);
          } catch (e) {
            return resolve({ i, error: `bad body: ${e.message}` });
          }
          resolve({ i, status: res.statusCode, reason: v.reason, ip: v.assigned_ip, ms });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ i, error: e.message }));
    req.end(body);
  });
}

/**
 * Register every agent, `concurrency` at a time; `onResult` sees each result as it completes.
 * `each`: a connection per request (10 s timeout) instead of keep-alive ones (30 s).
 */
export async function registerAll(url, token, agents, concurrency, { each = false, onResult = () => {} } = {}) {
  const u = new URL('/v1/register', url);
  const keepAlive = each ? false : new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let next = 0;
  const worker = async () => {
    while (next < agents.length) {
      const i = next++;
      onResult(await register(u, token, agents[i], i, keepAlive, each ? 10_000 : 30_000));
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  if (keepAlive) keepAlive.destroy();
  return (performance.now() - t0) / 1000;
}

const pct = (s, p) => (s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] : null);
const r2 = (x) => (x === null ? null : Math.round(x * 100) / 100);

async function main(argv) {
  const each = argv.includes('--each');
  const [url, token, file, conc] = argv.filter((a) => a !== '--each');
  const agents = JSON.parse(readFileSync(file, 'utf8'));
  const concurrency = Number(conc);
  if (each) {
    await registerAll(url, token, agents, concurrency, {
      each: true,
      onResult: ({ ms: _ms, ...r }) => process.stdout.write(JSON.stringify(r) + '\n'),
    });
    return;
  }
  const lat = [];
  const refused = {};
  const errors = {};
  const seconds = await registerAll(url, token, agents, concurrency, {
    onResult: (r) => {
      if (r.error !== undefined) errors[r.error] = (errors[r.error] ?? 0) + 1;
      else if (r.status === 200 || r.status === 201) lat.push(r.ms);
      else {
        const k = `${r.status} ${r.reason ?? ''}`.trim();
        refused[k] = (refused[k] ?? 0) + 1;
      }
    },
  });
  lat.sort((a, b) => a - b);
  process.stdout.write(
    JSON.stringify({
      requests: agents.length,
      concurrency,
      accepted: lat.length,
      seconds: r2(seconds),
      registrations_per_s: Math.round(lat.length / seconds),
      latency_ms: { p50: r2(pct(lat, 50)), p99: r2(pct(lat, 99)), max: r2(lat.length ? lat[lat.length - 1] : null) },
      refused,
      errors,
    }) + '\n',
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main(process.argv.slice(2));
