/**
 * A locked SQLite registry never delays packets (network namespaces): while
 * another process holds `registry.sqlite`'s write lock, a client keeps
 * POSTing registrations to the hub (each must be refused quickly with 503
 * store_unavailable) and a wireguard-go device pings the hub through the
 * tunnel. Every ping reply must arrive within ping's deadline — a hub whose
 * registry waited for the lock on the engine's thread would stall traffic
 * for as long as the registrations keep coming. After the lock is released,
 * a registration succeeds without a restart.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HubTopology, parseAdded, teardownHubTopologies } from './net/hub-topology.js';
import { nsRun, ping, shouldSkip } from './net/netns.js';
import { holdLock } from './helpers/registry.js';

const SKIP = shouldSkip('registration-lock.test.ts', ['ip', 'wg', 'wireguard-go', 'ping']);
const SUBNET = '10.63.0.0/24';
const API_PORT = 18480;

afterAll(teardownHubTopologies);

/** Registrations in a loop for `ms` (run inside the hub's namespace); prints one JSON line per answer. */
const HAMMER = `
  const http = require('node:http');
  const { generateKeyPairSync } = require('node:crypto');
  const [port, ms] = process.argv.slice(1).map(Number);
  const token = process.env.TOKEN;
  const end = Date.now() + ms;
  let i = 0;
  const pub = () => generateKeyPairSync('x25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
  const once = () => new Promise((resolve) => {
    const body = JSON.stringify({ agent_id: 'locked-' + (i++), public_key: pub() });
    const t0 = Date.now();
    const req = http.request({ host: '127.0.0.1', port, path: '/v1/register', method: 'POST', agent: false,
      headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d) => (text += d)).on('end', () => {
        let reason = null;
        try { reason = JSON.parse(text).reason; } catch {}
        process.stdout.write(JSON.stringify({ status: res.statusCode, reason, ms: Date.now() - t0 }) + '\\n');
        resolve();
      });
    });
    req.on('error', (e) => { process.stdout.write(JSON.stringify({ error: e.message }) + '\\n'); resolve(); });
    req.end(body);
  });
  // At least one request, however late the loop starts (a 1 ms budget can pass before it does).
  (async () => { do await once(); while (Date.now() < end); })();`;

describe.skipIf(SKIP)('a locked SQLite registry (network namespaces)', () => {
  it('registrations get 503 store_unavailable quickly while every ping through the hub is answered', async () => {
    const t = await HubTopology.create({ peers: 1, subnet: SUBNET });
    try {
      await t.startHub(['--api', `127.0.0.1:${API_PORT}`, '--api-insecure-http']);
      const keys = await t.keys();
      const ip = parseAdded(await t.cliOk(['device', 'add', 'dev1', '--public-key', keys.pub]));
      const dev = await t.startPeer(1, 'dev1', keys, ip);
      await t.waitHandshake(keys.pub);
      const { token } = JSON.parse(await t.cliOk(['token', 'create', '--json'])) as { token: string };
      expect((await ping(dev.ns, t.hubIp, { count: 3, interval: 0.2, deadline: 5 })).received).toBe(3);

      const release = await holdLock(join(t.dataDir, 'registry.sqlite'));
      let hammer: Promise<{ stdout: string }>;
      let pinged: Awaited<ReturnType<typeof ping>>;
      try {
        // 100 pings over 2 s, deadline 4 s, while registrations keep hitting the locked store for 5 s: a hub
        // that waited for the lock on its engine's thread would answer none of them before the deadline.
        hammer = nsRun(t.hubNs, process.execPath, ['-e', HAMMER, String(API_PORT), '5000'], { env: { ...process.env, TOKEN: token }, timeoutMs: 30_000 });
        pinged = await ping(dev.ns, t.hubIp, { count: 100, interval: 0.02, deadline: 4 });
        const answers = (await hammer).stdout.trim().split('\n').map((l) => JSON.parse(l) as { status?: number; reason?: string; error?: string });
        expect(answers.length).toBeGreaterThanOrEqual(1);
        for (const a of answers) expect(a).toMatchObject({ status: 503, reason: 'store_unavailable' });
      } finally {
        await release();
      }
      expect(pinged.received, pinged.output).toBe(100);

      // The lock is gone: the same hub registers again, without a restart.
      const after = await nsRun(t.hubNs, process.execPath, ['-e', HAMMER, String(API_PORT), '1'], { env: { ...process.env, TOKEN: token }, timeoutMs: 30_000 });
      expect(JSON.parse(after.stdout.trim().split('\n')[0]!)).toMatchObject({ status: 200, reason: 'registered' });
      expect(t.hub!.log()).toMatch(/registration refused \(store_unavailable\)/);
    } finally {
      await t.teardown();
    }
  }, 120_000);
});
