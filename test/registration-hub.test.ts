/**
 * The hub process on its registry (network namespaces): a CLI change is live
 * on the running hub before the command returns (it tells the hub over the
 * control socket); `tsguard hub up --registry postgresql://…` with the CLI on
 * the same URL; PostgreSQL stopped: traffic through the hub goes on and
 * registrations are refused with 503; back: registrations succeed without a
 * hub restart; `hub agent rekey` lets a machine that lost its state re-key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubTopology, parseAdded, teardownHubTopologies } from './net/hub-topology.js';
import { nsRun, ping, shouldSkip } from './net/netns.js';
import { skipPostgres, TestPostgres } from './helpers/postgres.js';

const SKIP = shouldSkip('registration-hub.test.ts', ['ip', 'wg', 'wireguard-go', 'ping']);
const SKIP_PG = SKIP || skipPostgres('registration-hub.test.ts');
const API_PORT = 18481;

let server: TestPostgres | null = null;
beforeAll(async () => {
  if (!SKIP_PG) server = await TestPostgres.start();
}, 120_000);
afterAll(async () => {
  await teardownHubTopologies();
  await server?.destroy();
});

/** One POST /v1/register from inside namespace `ns`; resolves with status and parsed body. */
async function register(ns: string, token: string, agentId: string, publicKey: string, credential?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const script = `
    const http = require('node:http');
    const body = process.env.BODY;
    const req = http.request({ host: '127.0.0.1', port: ${API_PORT}, path: '/v1/register', method: 'POST', agent: false,
      headers: { authorization: 'Bearer ' + process.env.TOKEN, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let t = ''; res.setEncoding('utf8').on('data', (d) => (t += d)).on('end', () => process.stdout.write(JSON.stringify({ status: res.statusCode, body: JSON.parse(t) })));
    });
    req.on('error', (e) => { process.stdout.write(JSON.stringify({ status: 0, body: { error: e.message } })); });
    req.end(body);`;
  const body = JSON.stringify({ agent_id: agentId, public_key: publicKey, ...(credential ? { agent_credential: credential } : {}) });
  const r = await nsRun(ns, process.execPath, ['-e', script], { env: { ...process.env, TOKEN: token, BODY: body }, timeoutMs: 30_000 });
  return JSON.parse(r.stdout) as { status: number; body: Record<string, unknown> };
}

describe.skipIf(SKIP)('the hub on its registry (network namespaces)', () => {
  it('a CLI change is live on the running hub when the command returns', async () => {
    const t = await HubTopology.create({ peers: 1, subnet: '10.64.0.0/24' });
    try {
      await t.startHub();
      for (let i = 0; i < 3; i++) {
        const keys = await t.keys();
        const ip = parseAdded(await t.cliOk(['device', 'add', `d${i}`, '--public-key', keys.pub]));
        // One look, no waiting: the hub applied it before the CLI exited.
        expect((await t.hubAllowedIps()).get(keys.pub)).toBe(`${ip}/32`);
        await t.cliOk(['device', 'remove', `d${i}`]);
        expect((await t.hubAllowedIps()).has(keys.pub)).toBe(false);
      }
      const c = await t.keys();
      const cip = parseAdded(await t.cliOk(['client', 'add', 'c1', '--public-key', c.pub]));
      expect((await t.hubAllowedIps()).get(c.pub)).toBe(`${cip}/32`);
    } finally {
      await t.teardown();
    }
  }, 90_000);

  it.skipIf(SKIP_PG)('hub up --registry postgresql://: PostgreSQL stopped → traffic goes on, registrations 503; back → registrations succeed; agent rekey', async () => {
    const url = await server!.newDatabase('hub');
    const t = await HubTopology.create({ peers: 1, subnet: '10.65.0.0/24' });
    try {
      await t.startHub(['--registry', url, '--api', `127.0.0.1:${API_PORT}`, '--api-insecure-http']);
      const keys = await t.keys();
      const ip = parseAdded(await t.cliOk(['device', 'add', 'dev1', '--public-key', keys.pub, '--registry', url]));
      expect((await t.hubAllowedIps()).get(keys.pub)).toBe(`${ip}/32`);
      const dev = await t.startPeer(1, 'dev1', keys, ip);
      await t.waitHandshake(keys.pub);
      const { token } = JSON.parse(await t.cliOk(['token', 'create', '--json', '--registry', url])) as { token: string };
      const k1 = (await t.keys()).pub;
      const first = await register(t.hubNs, token, 'box', k1);
      expect(first).toMatchObject({ status: 200, body: { reason: 'registered', assigned_ip: '10.65.0.3' } });
      const credential = first.body.agent_credential as string;
      expect(credential).toMatch(/^[A-Za-z0-9_-]{43}$/);

      await server!.stopServer();
      try {
        const during = await register(t.hubNs, token, 'other', (await t.keys()).pub);
        expect(during).toMatchObject({ status: 503, body: { reason: 'store_unavailable' } });
        // The live peers stay: traffic through the hub is untouched.
        const p = await ping(dev.ns, t.hubIp, { count: 20, interval: 0.05, deadline: 5 });
        expect(p.received, p.output).toBe(20);
      } finally {
        await server!.startServer();
      }
      const after = await register(t.hubNs, token, 'other', (await t.keys()).pub);
      expect(after).toMatchObject({ status: 200, body: { reason: 'registered', assigned_ip: '10.65.0.4' } });

      // Identities: a new key for "box" needs its credential, or an operator's "hub agent rekey".
      const k2 = (await t.keys()).pub;
      const refused = await register(t.hubNs, token, 'box', k2);
      expect(refused).toMatchObject({ status: 409, body: { reason: 'identity_conflict' } });
      expect(String(refused.body.message)).toContain('tsguard hub agent rekey box');
      const withCred = await register(t.hubNs, token, 'box', k2, credential);
      expect(withCred).toMatchObject({ status: 200, body: { reason: 'rekeyed', assigned_ip: '10.65.0.3' } });
      const k3 = (await t.keys()).pub;
      expect((await register(t.hubNs, token, 'box', k3)).status).toBe(409);
      expect(await t.cliOk(['agent', 'rekey', 'box', '--registry', url])).toMatch(/agent box may now register once with a new key .* keeps 10\.65\.0\.3/);
      expect(await register(t.hubNs, token, 'box', k3)).toMatchObject({ status: 200, body: { reason: 'rekeyed', assigned_ip: '10.65.0.3' } });
      // The hub applied the re-keys (through the API, and the change log): the live key is the last one.
      const live = await t.hubAllowedIps();
      expect(live.get(k3)).toBe('10.65.0.3/32');
      expect(live.has(k1) || live.has(k2)).toBe(false);
      // A password in the URL is refused before anything is opened.
      const pw = await t.cli(['token', 'list', '--registry', url.replace('tsguard@', 'tsguard:secret@')]);
      expect(pw.code).not.toBe(0);
      expect(pw.stderr).toMatch(/carries a password/);
      expect(pw.stderr).not.toContain('secret');
    } finally {
      await t.teardown();
    }
  }, 120_000);
});
