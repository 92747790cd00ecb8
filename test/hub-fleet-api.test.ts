/**
 * The fleet API source against a local HTTP server: data, errors, timeouts,
 * backoff, and the token never leaving the OSF-TOKEN header.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { getCrypto } from '../src/crypto/index.js';
import { keyToBase64 } from '../src/crypto/keys.js';
import { FleetApiError, FleetApiSource, type FleetDevice, type FleetTimers } from '../src/hub/fleet-api.js';

const TOKEN = 'osf-SECRET-token-0123456789abcdef';

function newKey(): string {
  const c = getCrypto();
  return keyToBase64(c.publicKey(c.generatePrivateKey()));
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(handler: Handler): Promise<{ url: string; requests: IncomingMessage[] }> {
  const requests: IncomingMessage[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(req);
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

function tokenFile(content = TOKEN + '\n'): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsguard-fleet-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const p = join(dir, 'token');
  writeFileSync(p, content, { mode: 0o600 });
  return p;
}

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
};

describe('FleetApiSource.pollOnce', () => {
  it('sends the token as OSF-TOKEN to the factory URL and validates entries one by one', async () => {
    const [k1, k2, k3] = [newKey(), newKey(), newKey()];
    const { url, requests } = await serve((_req, res) =>
      json(res, 200, [
        { name: 'dev-1', pubkey: k1, ip: '10.42.0.2', enabled: true },
        { name: 'dev-2', pubkey: k2, ip: '10.42.0.3', enabled: false },
        { name: 'bad key', pubkey: 'nope', ip: '10.42.0.4', enabled: true },
        { name: 'dev-3', pubkey: 'A'.repeat(43) + '=', ip: '10.42.0.5', enabled: true },
        { name: 'dev-4', pubkey: k3, ip: '10.42.0.300', enabled: true },
        { name: 'dev-5', pubkey: k1, ip: '10.42.0.6', enabled: true },
        'junk',
      ]),
    );
    const logs: string[] = [];
    const src = new FleetApiSource({ apiUrl: url + '/', factory: 'my-factory', tokenFile: tokenFile(), log: (l) => logs.push(l) });
    const list = await src.pollOnce();
    expect(list).toEqual<FleetDevice[]>([
      { name: 'dev-1', pubkey: k1, ip: '10.42.0.2', enabled: true },
      { name: 'dev-2', pubkey: k2, ip: '10.42.0.3', enabled: false },
    ]);
    expect(requests).toHaveLength(1);
    expect(requests[0]!.url).toBe('/ota/factories/my-factory/wireguard-ips/');
    expect(requests[0]!.headers['osf-token']).toBe(TOKEN);
    expect(logs).toHaveLength(5);
    expect(logs.every((l) => /entry skipped/.test(l))).toBe(true);
    expect(logs.join('\n')).not.toContain(TOKEN);
  });

  it('fails without leaking the token: HTTP errors (even echoing it), bad JSON, wrong shape, no usable entry, missing token file', async () => {
    let mode = 'echo';
    const { url } = await serve((req, res) => {
      if (mode === 'echo') return json(res, 401, { detail: `invalid token ${String(req.headers['osf-token'])}` });
      if (mode === 'json') return json(res, 200, '{not json');
      if (mode === 'shape') return json(res, 200, { devices: [] });
      if (mode === 'allbad') return json(res, 200, [{ name: 'x', pubkey: 'bad', ip: '1.2.3.4', enabled: true }]);
      return json(res, 200, []);
    });
    const logs: string[] = [];
    const tf = tokenFile();
    const src = new FleetApiSource({ apiUrl: url, factory: 'f', tokenFile: tf, log: (l) => logs.push(l) });
    const fail = async () => {
      try {
        await src.pollOnce();
      } catch (e) {
        expect(e).toBeInstanceOf(FleetApiError);
        return e as FleetApiError;
      }
      throw new Error('expected a failure');
    };
    const e1 = await fail();
    expect(e1).toMatchObject({ kind: 'http', status: 401 });
    expect(e1.message).toContain('[redacted]');
    expect(e1.message).toMatch(/check the token/);
    mode = 'json';
    expect((await fail()).kind).toBe('json');
    mode = 'shape';
    expect((await fail()).kind).toBe('shape');
    mode = 'allbad';
    expect((await fail()).kind).toBe('shape');
    mode = 'empty';
    expect(await src.pollOnce()).toEqual([]);
    const missing = new FleetApiSource({ apiUrl: url, factory: 'f', tokenFile: tf + '.missing', log: (l) => logs.push(l) });
    await expect(missing.pollOnce()).rejects.toMatchObject({ kind: 'token' });
    const empty = new FleetApiSource({ apiUrl: url, factory: 'f', tokenFile: tokenFile('\n'), log: (l) => logs.push(l) });
    await expect(empty.pollOnce()).rejects.toMatchObject({ kind: 'token' });
    expect(logs.join('\n')).not.toContain(TOKEN);
  });

  it('times out a hanging response and refuses redirects', async () => {
    const { url, requests } = await serve((req, res) => {
      if (req.url!.includes('/hang/')) return; // never answers
      if (req.url!.startsWith('/ota/')) {
        res.writeHead(302, { location: '/elsewhere/' });
        return res.end();
      }
      json(res, 200, []);
    });
    const t0 = Date.now();
    const hang = new FleetApiSource({ apiUrl: url + '/hang', factory: 'f', tokenFile: tokenFile(), timeoutMs: 200, log: () => undefined });
    await expect(hang.pollOnce()).rejects.toMatchObject({ kind: 'timeout' });
    expect(Date.now() - t0).toBeLessThan(5000);
    const redirect = new FleetApiSource({ apiUrl: url, factory: 'f', tokenFile: tokenFile(), log: () => undefined });
    await expect(redirect.pollOnce()).rejects.toMatchObject({ kind: 'network' });
    expect(requests.map((r) => r.url)).toEqual(['/hang/ota/factories/f/wireguard-ips/', '/ota/factories/f/wireguard-ips/']);
  });

  it('rejects non-HTTP URLs and URLs with credentials', () => {
    expect(() => new FleetApiSource({ apiUrl: 'ftp://x', factory: 'f', tokenFile: '/t' })).toThrow(/https:\/\//);
    expect(() => new FleetApiSource({ apiUrl: 'https://u:p@x', factory: 'f', tokenFile: '/t' })).toThrow(/credentials/);
  });
});

describe('FleetApiSource.start', () => {
  it('delivers successes, backs off exponentially on failures, never calls onDevices on errors', async () => {
    const k = newKey();
    const script = ['ok', '500', '500', 'json', 'hang', '503', 'ok', 'ok'];
    let n = 0;
    const { url } = await serve((_req, res) => {
      const step = script[Math.min(n++, script.length - 1)]!;
      if (step === 'ok') return json(res, 200, [{ name: 'd', pubkey: k, ip: '10.1.0.2', enabled: true }]);
      if (step === 'json') return json(res, 200, 'oops');
      if (step === 'hang') return;
      json(res, Number(step), { error: 'boom' });
    });
    const delays: number[] = [];
    const timers: FleetTimers = {
      setTimeout: (fn, ms) => {
        delays.push(ms);
        return setTimeout(fn, 5);
      },
      clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
    };
    const logs: string[] = [];
    const calls: FleetDevice[][] = [];
    const src = new FleetApiSource({
      apiUrl: url,
      factory: 'f',
      tokenFile: tokenFile(),
      intervalMs: 1000,
      initialBackoffMs: 100,
      timeoutMs: 200,
      timers,
      log: (l) => logs.push(l),
    });
    cleanups.push(() => src.stop());
    const done = new Promise<void>((resolve) =>
      src.start((list) => {
        calls.push(list);
        if (calls.length === 3) resolve();
      }),
    );
    await done;
    src.stop();
    // ok → interval; 500, 500, bad JSON, timeout, 503 → 100, 200, 400, 800, 1000 (capped); ok → interval (backoff reset).
    expect(delays.slice(0, 7)).toEqual([1000, 100, 200, 400, 800, 1000, 1000]);
    expect(calls).toHaveLength(3);
    expect(logs.filter((l) => /failed/.test(l))).toHaveLength(5);
    expect(logs.some((l) => /no complete answer/.test(l))).toBe(true);
    expect(logs.some((l) => /keeping the last known devices, retrying in 100 ms/.test(l))).toBe(true);
    expect(logs.join('\n')).not.toContain(TOKEN);
    expect(src.status()).toMatchObject({ consecutiveFailures: 0, lastError: null, devices: 1, nextPollInMs: null });
  });

  it('stop() cancels a request in flight and nothing is delivered afterwards', async () => {
    let hits = 0;
    const { url } = await serve(() => {
      hits++; // hang
    });
    const calls: unknown[] = [];
    const src = new FleetApiSource({ apiUrl: url, factory: 'f', tokenFile: tokenFile(), intervalMs: 50, timeoutMs: 10_000, log: () => undefined });
    src.start((l) => calls.push(l));
    await new Promise((r) => setTimeout(r, 100));
    expect(hits).toBe(1);
    src.stop();
    await new Promise((r) => setTimeout(r, 200));
    expect(hits).toBe(1);
    expect(calls).toEqual([]);
  });
});
