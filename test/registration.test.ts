/**
 * The registration API in-process (no namespaces): persistent allocation
 * under 500 concurrent registrations, exhaustion of a /28, every refusal
 * and that a refused request consumes nothing, tokens (expiry, uses,
 * revocation, constant-time check, never logged), re-keying, quarantine,
 * HTTPS with a pinned self-signed certificate.
 */
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { registerWithHub, type JoinError } from '../src/agent/join.js';
import { isLoopback, MAX_BODY_BYTES, parseListenAddress, RegistrationApi, type RegisterResponse } from '../src/hub/api.js';
import { Hub } from '../src/hub/hub.js';
import { Registry, RegistryError } from '../src/hub/registry/index.js';
import { API_TLS_FILE, certificatePin, loadOrCreateApiTls, parsePin } from '../src/hub/tls.js';
import { parseDuration, parseToken } from '../src/hub/tokens.js';
import { newKey, refusal } from './helpers/registry.js';

const dirs: string[] = [];
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'tsguard-regapi-'));
  dirs.push(d);
  return d;
}

const HUB_KEY = newKey();

interface Env {
  dir: string;
  reg: Registry;
  api: RegistrationApi;
  url: string;
  logs: string[];
  clock: { t: number };
}

async function env(subnet = '10.50.0.0/22', opts: { tls?: boolean } = {}): Promise<Env> {
  const dir = tmp();
  const clock = { t: Date.now() };
  const reg = await Registry.open(dir, { create: { subnet }, now: () => clock.t });
  const logs: string[] = [];
  const api = await RegistrationApi.start({
    registry: reg,
    listen: { host: '127.0.0.1', port: 0 },
    tls: opts.tls ? loadOrCreateApiTls(dir, ['127.0.0.1']) : null,
    hubPublicKey: HUB_KEY,
    listenPort: 51820,
    log: (level, m) => logs.push(`${level} ${m}`),
  });
  cleanups.push(async () => {
    await api.close();
    await reg.close();
  });
  return { dir, reg, api, url: api.url, logs, clock };
}

/** A raw request (for malformed ones); resolves with status and parsed body. */
function raw(url: string, o: { token?: string | null; body?: string; method?: string; path?: string; headers?: Record<string, string> }): Promise<{ status: number; body: RegisterResponse }> {
  const u = new URL(o.path ?? '/v1/register', url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: o.method ?? 'POST',
        agent: false,
        headers: {
          'content-type': 'application/json',
          ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
          ...(o.body !== undefined ? { 'content-length': Buffer.byteLength(o.body) } : {}),
          ...o.headers,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) as RegisterResponse }));
      },
    );
    req.on('error', reject);
    req.end(o.body ?? '');
  });
}

function body(agent_id: unknown, public_key: unknown, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ agent_id, public_key, ...extra });
}

const ZERO_KEY = 'A'.repeat(43) + '=';
const LOW_ORDER_KEY = Buffer.concat([Buffer.of(1), Buffer.alloc(31)]).toString('base64');

describe('registration API: allocation', () => {
  it('500 concurrent registrations of distinct agents get 500 distinct addresses, all persisted; the same agent again gets the same address', async () => {
    const e = await env('10.50.0.0/22');
    const { token } = await e.reg.createToken({ maxUses: 1000 });
    const agents = Array.from({ length: 500 }, (_, i) => ({ agent_id: `agent-${i}`, public_key: newKey() }));
    const answers = await Promise.all(agents.map((a) => registerWithHub(e.url, a, { token })));
    expect(answers.every((a) => a.accepted && a.reason === 'registered')).toBe(true);
    const addrs = answers.map((a) => a.assigned_ip);
    expect(new Set(addrs).size).toBe(500);
    expect(addrs).not.toContain('10.50.0.1'); // the hub
    expect(addrs).not.toContain('10.50.0.0');
    // Lowest-free allocation: exactly the 500 addresses after the hub.
    const nums = addrs.map((a) => a!.split('.').map(Number)).map(([, , c, d]) => c! * 256 + d!);
    expect(Math.min(...nums)).toBe(2);
    expect(Math.max(...nums)).toBe(501);
    const a0 = answers[0]!;
    expect(a0.mesh_subnet).toBe('10.50.0.0/22');
    expect(a0.hub_public_key).toBe(HUB_KEY);
    expect(a0.hub_endpoint).toBe('127.0.0.1:51820');
    expect(a0.peers).toEqual([{ public_key: HUB_KEY, endpoint: '127.0.0.1:51820', allowed_ips: ['10.50.0.0/22'], persistent_keepalive: 25 }]);
    expect(Number.isNaN(Date.parse(a0.registered_at!))).toBe(false);

    // Persisted: another connection (as another process would) sees exactly these rows.
    const other = await Registry.open(e.dir);
    try {
      const rows = (await other.listPeers());
      expect(rows).toHaveLength(500);
      const byName = new Map(rows.map((r) => [r.name, r]));
      agents.forEach((a, i) => {
        const r = byName.get(a.agent_id)!;
        expect(r.kind).toBe('agent');
        expect(r.source).toBe('registration');
        expect(r.publicKey).toBe(a.public_key);
        expect(r.ipv4).toBe(answers[i]!.assigned_ip);
      });
      expect((await other.listTokens())[0]!.uses).toBe(500);
    } finally {
      await other.close();
    }

    // Returning agents (concurrently too): same address, nothing consumed.
    const again = await Promise.all(agents.slice(0, 50).map((a) => registerWithHub(e.url, a, { token })));
    again.forEach((a, i) => {
      expect(a.reason).toBe('already_registered');
      expect(a.assigned_ip).toBe(answers[i]!.assigned_ip);
      expect(a.registered_at).toBe(answers[i]!.registered_at);
    });
    expect((await e.reg.listTokens())[0]!.uses).toBe(500);
    expect((await e.reg.listPeers())).toHaveLength(500);
  });

  it('a /28 accepts exactly 13 agents; the rest are refused with subnet_exhausted (409) and consume nothing', async () => {
    const e = await env('10.51.0.0/28');
    const { token } = await e.reg.createToken();
    const results = await Promise.allSettled(
      Array.from({ length: 30 }, (_, i) => registerWithHub(e.url, { agent_id: `a${i}`, public_key: newKey() }, { token })),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as JoinError);
    expect(ok).toHaveLength(13);
    expect(refused).toHaveLength(17);
    for (const r of refused) {
      expect(r.code).toBe('REFUSED');
      expect(r.reason).toBe('subnet_exhausted');
      expect(r.status).toBe(409);
    }
    expect((await e.reg.listPeers())).toHaveLength(13);
    expect((await e.reg.listTokens())[0]!.uses).toBe(13);
    const hosts = (ok as PromiseFulfilledResult<RegisterResponse>[]).map((r) => Number(r.value.assigned_ip!.split('.')[3])).sort((a, b) => a - b);
    expect(hosts).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
  });
});

describe('registration API: refusals consume nothing', () => {
  it('malformed keys, bad tokens, expired and used-up tokens, oversized and bad bodies → documented refusals; the next valid one gets the lowest free address', async () => {
    const e = await env('10.52.0.0/24');
    const { token } = await e.reg.createToken({ maxUses: 100 });
    const { id } = parseToken(token)!;
    const first = await registerWithHub(e.url, { agent_id: 'first', public_key: newKey() }, { token });
    expect(first.assigned_ip).toBe('10.52.0.2');

    const cases: Array<[string, Parameters<typeof raw>[1], number, string]> = [
      ['not base64', { token, body: body('x1', 'not a key') }, 400, 'invalid_public_key'],
      ['short key', { token, body: body('x1', 'AAAA') }, 400, 'invalid_public_key'],
      ['33-byte key', { token, body: body('x1', Buffer.alloc(33, 7).toString('base64')) }, 400, 'invalid_public_key'],
      ['all-zero key', { token, body: body('x1', ZERO_KEY) }, 400, 'invalid_public_key'],
      ['low-order key', { token, body: body('x1', LOW_ORDER_KEY) }, 400, 'invalid_public_key'],
      ['key not a string', { token, body: body('x1', 42) }, 400, 'invalid_public_key'],
      ['no token', { token: null, body: body('x1', newKey()) }, 401, 'unauthorized'],
      ['wrong secret', { token: `${id}.${'A'.repeat(43)}`, body: body('x1', newKey()) }, 401, 'unauthorized'],
      ['unknown id', { token: `000000000000.${token.split('.')[1]}`, body: body('x1', newKey()) }, 401, 'unauthorized'],
      ['malformed token', { token: 'hello', body: body('x1', newKey()) }, 401, 'unauthorized'],
      ['bad JSON', { token, body: '{"agent_id": "x1", ' }, 400, 'invalid_request'],
      ['JSON array', { token, body: '[1,2]' }, 400, 'invalid_request'],
      ['missing agent_id', { token, body: JSON.stringify({ public_key: newKey() }) }, 400, 'invalid_request'],
      ['missing public_key', { token, body: JSON.stringify({ agent_id: 'x1' }) }, 400, 'invalid_request'],
      ['bad agent id', { token, body: body('no spaces allowed', newKey()) }, 400, 'invalid_request'],
      ['too long agent id', { token, body: body('a'.repeat(64), newKey()) }, 400, 'invalid_request'],
      ['bad labels', { token, body: body('x1', newKey(), { labels: ['x'] }) }, 400, 'invalid_request'],
      ['bad label name', { token, body: body('x1', newKey(), { labels: { 'a b': 'c' } }) }, 400, 'invalid_request'],
      ['oversized body', { token, body: body('x1', newKey(), { pad: 'x'.repeat(MAX_BODY_BYTES) }) }, 413, 'invalid_request'],
      ['wrong path', { token, path: '/v1/other', body: body('x1', newKey()) }, 404, 'not_found'],
      ['wrong method', { token, method: 'PUT', body: body('x1', newKey()) }, 405, 'method_not_allowed'],
    ];
    for (const [what, req, status, reason] of cases) {
      const r = await raw(e.url, req);
      expect({ what, status: r.status, reason: r.body.reason, accepted: r.body.accepted }).toEqual({ what, status, reason, accepted: false });
      expect(r.body.assigned_ip).toBeNull();
      expect(typeof r.body.message).toBe('string');
    }
    // Oversized body sent in chunks (no content-length) is cut off too.
    const chunked = await new Promise<number>((resolve, reject) => {
      const u = new URL('/v1/register', e.url);
      const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent: false, headers: { authorization: `Bearer ${token}` } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.write('{"agent_id":"x1","pad":"');
      req.write('y'.repeat(MAX_BODY_BYTES));
      req.end('"}');
    });
    expect(chunked).toBe(413);

    // Expired token.
    const short = await e.reg.createToken({ ttlSeconds: 60 });
    e.clock.t += 61_000;
    const expired = await refusal(registerWithHub(e.url, { agent_id: 'x1', public_key: newKey() }, { token: short.token }));
    expect([expired.reason, expired.status, expired.message]).toEqual(['unauthorized', 401, expect.stringMatching(/expired/)]);
    // Used-up token: one use, then refused for a new agent.
    const once = await e.reg.createToken({ maxUses: 1 });
    const used = await registerWithHub(e.url, { agent_id: 'once', public_key: newKey() }, { token: once.token });
    expect(used.assigned_ip).toBe('10.52.0.3'); // nothing refused above took an address
    const usedUp = await refusal(registerWithHub(e.url, { agent_id: 'x2', public_key: newKey() }, { token: once.token }));
    expect([usedUp.reason, usedUp.message]).toEqual(['unauthorized', expect.stringMatching(/used 1 of 1/)]);
    // Revoked token.
    const rev = await e.reg.createToken();
    await e.reg.revokeToken(rev.info.id);
    const revoked = await refusal(registerWithHub(e.url, { agent_id: 'x3', public_key: newKey() }, { token: rev.token }));
    expect([revoked.reason, revoked.message]).toEqual(['unauthorized', expect.stringMatching(/revoked/)]);

    // Nothing was consumed or wedged: the next valid registration gets the lowest free address.
    const next = await registerWithHub(e.url, { agent_id: 'next', public_key: newKey() }, { token });
    expect(next.assigned_ip).toBe('10.52.0.4');
    expect((await e.reg.listPeers()).map((p) => p.name).sort()).toEqual(['first', 'next', 'once']);
    const uses = Object.fromEntries((await e.reg.listTokens()).map((t) => [t.id, [t.uses, t.state]]));
    expect(uses[id]).toEqual([2, 'valid']);
    expect(uses[once.info.id]).toEqual([1, 'used-up']);
    expect(uses[short.info.id]).toEqual([0, 'expired']);
    expect(uses[rev.info.id]).toEqual([0, 'revoked']);

    // Tokens never appear in the logs (refusals and acceptances are logged, by token id only).
    const all = e.logs.join('\n');
    expect(all).toMatch(/registration refused \(invalid_public_key\)/);
    expect(all).toMatch(new RegExp(`token ${id}`));
    for (const t of [token, short.token, once.token, rev.token]) expect(all).not.toContain(t.split('.')[1]!);
  });

  it('store_unavailable (503) when the registry cannot be used; never a fallback', async () => {
    const e = await env('10.53.0.0/24');
    const { token } = await e.reg.createToken();
    await e.reg.close();
    const r = await refusal(registerWithHub(e.url, { agent_id: 'a', public_key: newKey() }, { token }));
    expect([r.reason, r.status]).toEqual(['store_unavailable', 503]);
  });
});

describe('registration API: identities', () => {
  it('re-keyed agent keeps its address and the old key is gone; a key of another agent is identity_conflict', async () => {
    const e = await env('10.54.0.0/24');
    const { token } = await e.reg.createToken();
    const k1 = newKey();
    const a = await registerWithHub(e.url, { agent_id: 'edge-1', public_key: k1, labels: { site: 'north' } }, { token });
    const b = await registerWithHub(e.url, { agent_id: 'edge-2', public_key: newKey() }, { token });
    const k2 = newKey();
    // A new key without the agent credential is refused (another machine with the same hostname must not take it over).
    const taken = await refusal(registerWithHub(e.url, { agent_id: 'edge-1', public_key: k2 }, { token }));
    expect([taken.reason, taken.status]).toEqual(['identity_conflict', 409]);
    expect(taken.message).toMatch(/tsguard hub agent rekey edge-1/);
    expect(a.agent_credential).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const re = await registerWithHub(e.url, { agent_id: 'edge-1', public_key: k2, agent_credential: a.agent_credential! }, { token });
    expect(re.reason).toBe('rekeyed');
    expect(re.agent_credential).toBeDefined();
    expect(e.logs.join('\n')).not.toContain(a.agent_credential!);
    expect(re.assigned_ip).toBe(a.assigned_ip);
    expect((await e.reg.findByKey(k1))).toBeNull();
    expect((await e.reg.getPeer('agent', 'edge-1'))!.publicKey).toBe(k2);
    expect((await e.reg.getPeer('agent', 'edge-1'))!.labels).toEqual({ site: 'north' }); // omitted labels are kept
    // Another agent presenting edge-2's key.
    const bKey = (await e.reg.getPeer('agent', 'edge-2'))!.publicKey;
    const c = await refusal(registerWithHub(e.url, { agent_id: 'edge-3', public_key: bKey }, { token }));
    expect([c.reason, c.status]).toEqual(['identity_conflict', 409]);
    // A name held by another source (a CLI device named like an agent is another kind: fine; an agent row from the CLI is not).
    await e.reg.addPeer({ kind: 'agent', name: 'manual', publicKey: newKey(), source: 'cli' });
    const d = await refusal(registerWithHub(e.url, { agent_id: 'manual', public_key: newKey() }, { token }));
    expect(d.reason).toBe('identity_conflict');
    // Labels are replaced when given.
    await registerWithHub(e.url, { agent_id: 'edge-2', public_key: bKey, labels: { site: 'south' } }, { token });
    expect((await e.reg.getPeer('agent', 'edge-2'))!.labels).toEqual({ site: 'south' });
    expect(b.assigned_ip).toBe('10.54.0.3');
    expect((await e.reg.listTokens())[0]!.uses).toBe(3); // two new agents and one re-key
  });

  it('a single-use token keeps working for the agent it enrolled (restarts), not for others; revocation ends it', async () => {
    const e = await env('10.55.0.0/24');
    const one = await e.reg.createToken({ maxUses: 1 });
    const key = newKey();
    const a = await registerWithHub(e.url, { agent_id: 'solo', public_key: key }, { token: one.token });
    const again = await registerWithHub(e.url, { agent_id: 'solo', public_key: key }, { token: one.token });
    expect([again.reason, again.assigned_ip]).toEqual(['already_registered', a.assigned_ip]);
    // Re-keying needs a usable token.
    expect((await refusal(registerWithHub(e.url, { agent_id: 'solo', public_key: newKey(), agent_credential: a.agent_credential! }, { token: one.token }))).reason).toBe('unauthorized');
    // Another used-up token does not vouch for this agent.
    const other = await e.reg.createToken({ maxUses: 1 });
    await registerWithHub(e.url, { agent_id: 'other', public_key: newKey() }, { token: other.token });
    expect((await refusal(registerWithHub(e.url, { agent_id: 'solo', public_key: key }, { token: other.token }))).reason).toBe('unauthorized');
    await e.reg.revokeToken(one.info.id);
    expect((await refusal(registerWithHub(e.url, { agent_id: 'solo', public_key: key }, { token: one.token }))).reason).toBe('unauthorized');
  });

  it('a removed agent’s address is quarantined for the stored time before reuse', async () => {
    const e = await env('10.56.0.0/24');
    await e.reg.setQuarantineSeconds(600);
    expect((await e.reg.quarantineSeconds())).toBe(600);
    const { token } = await e.reg.createToken({ ttlSeconds: 0 });
    const a = await registerWithHub(e.url, { agent_id: 'gone', public_key: newKey() }, { token });
    expect(a.assigned_ip).toBe('10.56.0.2');
    await e.reg.removePeer('agent', 'gone'); // no explicit quarantine: the stored one applies
    const b = await registerWithHub(e.url, { agent_id: 'new', public_key: newKey() }, { token });
    expect(b.assigned_ip).toBe('10.56.0.3');
    e.clock.t += 601_000;
    const c = await registerWithHub(e.url, { agent_id: 'newer', public_key: newKey() }, { token });
    expect(c.assigned_ip).toBe('10.56.0.2');
  });
});

describe('registration API: transport', () => {
  it('HTTPS with a pinned self-signed certificate: right pin accepted, wrong pin refused before anything is sent', async () => {
    const e = await env('10.57.0.0/24', { tls: true });
    expect(e.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const file = join(e.dir, API_TLS_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const tlsId = loadOrCreateApiTls(e.dir);
    expect(loadOrCreateApiTls(e.dir).pin).toBe(tlsId.pin); // kept, not recreated
    const x = new X509Certificate(tlsId.certPem);
    expect(x.verify(x.publicKey)).toBe(true);
    expect(x.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(certificatePin(tlsId.certPem)).toBe(tlsId.pin);
    expect(parsePin(tlsId.pin.toUpperCase().replace('SHA256', 'sha256'))).toBe(tlsId.pin);

    const { token } = await e.reg.createToken();
    const ok = await registerWithHub(e.url, { agent_id: 'tls-1', public_key: newKey() }, { token, caHash: tlsId.pin });
    expect(ok.assigned_ip).toBe('10.57.0.2');
    const wrongPin = `sha256:${'ab'.repeat(32)}`;
    const bad = await refusal(registerWithHub(e.url, { agent_id: 'tls-2', public_key: newKey() }, { token, caHash: wrongPin }));
    expect(bad.code).toBe('CERT_MISMATCH');
    expect(bad.message).toContain(tlsId.pin);
    const noPin = await refusal(registerWithHub(e.url, { agent_id: 'tls-2', public_key: newKey() }, { token }));
    expect(noPin.code).toBe('INSECURE');
    expect(e.logs.join('\n')).not.toMatch(/tls-2/); // the request never reached the server
    const insecure = await registerWithHub(e.url, { agent_id: 'tls-3', public_key: newKey() }, { token, insecure: true });
    expect(insecure.assigned_ip).toBe('10.57.0.3');
    expect((await e.reg.listTokens())[0]!.uses).toBe(2);
  });

  it('plain HTTP only on loopback, on both ends', async () => {
    const dir = tmp();
    const reg = await Registry.open(dir, { create: { subnet: '10.58.0.0/24' } });
    cleanups.push(() => reg.close());
    await expect(
      RegistrationApi.start({ registry: reg, listen: { host: '0.0.0.0', port: 0 }, tls: null, hubPublicKey: HUB_KEY, listenPort: 1 }),
    ).rejects.toThrow(/loopback/);
    const r = await refusal(registerWithHub('http://192.0.2.1:8080', { agent_id: 'a', public_key: newKey() }, { token: 'x' }));
    expect(r.code).toBe('INSECURE');
    expect(isLoopback('127.0.0.1')).toBe(true);
    expect(isLoopback('127.8.9.10')).toBe(true);
    expect(isLoopback('::1')).toBe(true);
    expect(isLoopback('10.0.0.1')).toBe(false);
    expect(isLoopback('::')).toBe(false);
    expect(parseListenAddress('[::1]:8443')).toEqual({ host: '::1', port: 8443 });
    expect(parseListenAddress('0.0.0.0:1')).toEqual({ host: '0.0.0.0', port: 1 });
    expect(() => parseListenAddress('localhost:80')).toThrow(/not an IP address/);
    expect(() => parseListenAddress('1.2.3.4')).toThrow(/ADDR:PORT/);
  });

  it('parses durations', () => {
    expect(parseDuration('0')).toBe(0);
    expect(parseDuration('90s')).toBe(90);
    expect(parseDuration('24h')).toBe(86400);
    expect(parseDuration('1h30m')).toBe(5400);
    expect(parseDuration('7d')).toBe(604800);
    expect(() => parseDuration('1 hour')).toThrow(/not valid/);
    expect(() => parseDuration('')).toThrow(/not valid/);
  });
});

describe('hub flags and CLI', () => {
  it('refuses --api-insecure-http on a non-loopback address before creating anything', async () => {
    const dir = join(tmp(), 'data');
    await expect(
      Hub.start({ dataDir: dir, ifname: 'tsgnever0', subnet: '10.59.0.0/24', listenPort: 1, allowDeviceToDevice: false, log: () => undefined, api: { listen: '0.0.0.0:8443', insecureHttp: true } }),
    ).rejects.toThrow(/--api-insecure-http is refused on 0\.0\.0\.0/);
    expect(existsSync(dir)).toBe(false);
  });

  it('a changed subnet that would orphan registered agents is refused with a clear message', async () => {
    const e = await env('10.60.0.0/24');
    const { token } = await e.reg.createToken();
    await registerWithHub(e.url, { agent_id: 'keep', public_key: newKey() }, { token });
    let err: unknown;
    try {
      await Registry.open(e.dir, { create: { subnet: '10.61.0.0/24' } });
    } catch (x) {
      err = x;
    }
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).code).toBe('SUBNET_CHANGED');
    expect((err as RegistryError).message).toMatch(/uses subnet 10\.60\.0\.0\/24, not 10\.61\.0\.0\/24; peers are never renumbered silently/);
  });

  it('tsguard hub token create|list|revoke (the secret is printed once, never listed)', async () => {
    const dir = tmp();
    await (await Registry.open(dir, { create: { subnet: '10.62.0.0/24' } })).close();
    const cli = (...args: string[]) => execFileSync(process.execPath, [fileURLToPath(new URL('../dist/cli/tsguard.js', import.meta.url)), 'hub', ...args, '--data-dir', dir], { encoding: 'utf8' });
    const out = cli('token', 'create', '--ttl', '2h', '--uses', '3');
    const token = /^token: (\S+)$/m.exec(out)![1]!;
    const { id, secret } = parseToken(token)!;
    const pin = /^ca-hash: (sha256:[0-9a-f]{64})$/m.exec(out)![1]!;
    expect(pin).toBe(loadOrCreateApiTls(dir).pin);
    expect(out).toContain(`tsguard join https://HUB_ADDRESS:PORT --token ${token} --ca-hash ${pin} --state-dir`);
    const list = cli('token', 'list');
    expect(list).toMatch(new RegExp(`^${id}  valid +0/3 uses  expires `, 'm'));
    expect(list).not.toContain(secret);
    expect(cli('token', 'revoke', id)).toBe(`token ${id} revoked\n`);
    expect(cli('token', 'list')).toMatch(new RegExp(`^${id}  revoked`, 'm'));
    const json = JSON.parse(cli('token', 'list', '--json')) as Array<Record<string, unknown>>;
    expect(json).toHaveLength(1);
    expect(JSON.stringify(json)).not.toContain(secret);
  });
});

describe('token check before the body', () => {
  it('a token revoked right after it was found authentic is refused by the registration itself; a wrong secret never passes', async () => {
    const e = await env('10.57.0.0/24');
    const { token, info } = await e.reg.createToken();
    const first = await registerWithHub(e.url, { agent_id: 'early', public_key: newKey() }, { token });
    expect(first.assigned_ip).toBe('10.57.0.2');
    // Within the pre-check's memory of the token (one second): revoked, and refused all the same.
    await e.reg.revokeToken(info.id);
    const late = await refusal(registerWithHub(e.url, { agent_id: 'late', public_key: newKey() }, { token }));
    expect([late.reason, late.status, late.message]).toEqual(['unauthorized', 401, expect.stringMatching(/revoked/)]);
    // The same id with another secret is not the remembered token.
    const live = await e.reg.createToken();
    await registerWithHub(e.url, { agent_id: 'ok', public_key: newKey() }, { token: live.token });
    const forged = `${live.info.id}.${'A'.repeat(43)}`;
    const bad = await raw(e.url, { token: forged, body: JSON.stringify({ agent_id: 'forged', public_key: newKey() }) });
    expect([bad.status, bad.body.reason]).toEqual([401, 'unauthorized']);
    expect((await e.reg.listPeers()).map((p) => p.name).sort()).toEqual(['early', 'ok']);
    expect(Object.fromEntries((await e.reg.listTokens()).map((t) => [t.id, t.uses]))).toEqual({ [info.id]: 1, [live.info.id]: 1 });
  });
});
