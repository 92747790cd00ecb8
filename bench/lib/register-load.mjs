#!/usr/bin/env node
// Registration load client: POST /v1/register for every agent of AGENTS_JSON, CONCURRENCY in flight.
// Usage (inside the hub's namespace): node register-load.mjs URL TOKEN AGENTS_JSON CONCURRENCY
// AGENTS_JSON: [{"agent_id": "...", "public_key": "..."}, ...]. URL: http://127.0.0.1:PORT.
// Prints one JSON line: accepted, registrations_per_s (accepted ÷ wall time of the whole run),
// p50/p99/max request latency (ms, accepted requests), refusals by status/reason, errors.
import http from 'node:http';
import { readFileSync } from 'node:fs';

const [url, token, file, conc] = process.argv.slice(2);
const agents = JSON.parse(readFileSync(file, 'utf8'));
const concurrency = Number(conc);
const u = new URL('/v1/register', url);
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: concurrency });

function register(i) {
  const body = JSON.stringify(agents[i]);
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        agent: keepAlive,
        timeout: 30_000,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d) => (text += d));
        res.on('error', (e) => resolve({ error: e.message }));
        res.on('end', () => {
          const ms = performance.now() - t0;
          let reason;
          try {
            reason = JSON.parse(text).reason;
          } catch {
            reason = 'bad body';
          }
          resolve({ status: res.statusCode, reason, ms });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ error: e.message }));
    req.end(body);
  });
}

const pct = (s, p) => (s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] : null);
const r2 = (x) => (x === null ? null : Math.round(x * 100) / 100);

const lat = [];
const refused = {};
const errors = {};
let next = 0;
async function worker() {
  while (next < agents.length) {
    const r = await register(next++);
    if (r.error !== undefined) errors[r.error] = (errors[r.error] ?? 0) + 1;
    else if (r.status === 200 || r.status === 201) lat.push(r.ms);
    else {
      const k = `${r.status} ${r.reason ?? ''}`.trim();
      refused[k] = (refused[k] ?? 0) + 1;
    }
  }
}
const t0 = performance.now();
await Promise.all(Array.from({ length: concurrency }, worker));
const seconds = (performance.now() - t0) / 1000;
keepAlive.destroy();
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
