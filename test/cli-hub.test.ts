/**
 * The hub CLI's manners without a running hub: the data directory default
 * (TSGUARD_HUB_DIR), guard rails (no silent re-key, no removal the clients file or the fleet
 * API would undo), list/show with --json in one set of units, "not running", permission errors
 * named as such, `hub up --config FILE` and every missing setting at once, the join line.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Registry } from '../src/hub/registry/index.js';
import { parseHubConfig } from '../src/cli/hub-up.js';
import { joinUrl } from '../src/cli/hub.js';
import { run, which } from './net/netns.js';
import { TSGUARD } from './helpers/proc.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function hubDir(subnet = '10.71.0.0/24'): Promise<string> {
  const d = mkdtempSync(join(tmpdir(), 'tsguard-cli-hub-'));
  dirs.push(d);
  const dir = join(d, 'hub');
  await (await Registry.open(dir, { create: { subnet } })).close();
  return dir;
}

const key = async () => {
  const priv = (await run(process.execPath, [TSGUARD, 'genkey'])).stdout;
  return (await run(process.execPath, [TSGUARD, 'pubkey'], { input: priv })).stdout.trim();
};

describe('tsguard hub CLI', () => {
  it('TSGUARD_HUB_DIR is the default data directory; guard rails on add and remove', async () => {
    const dir = await hubDir();
    const env = { ...process.env, TSGUARD_HUB_DIR: dir };
    const cli = (...args: string[]) => run(process.execPath, [TSGUARD, 'hub', ...args], { env, allowFail: true, timeoutMs: 20_000 });
    const [k1, k2, k3] = await Promise.all([key(), key(), key()]);

    expect((await cli('device', 'add', 'sensor-1', '--public-key', k1)).stdout).toMatch(/^device sensor-1: 10\.71\.0\.2\n/);
    // Same key again: nothing changes. Another key: refused, unless --rekey.
    expect((await cli('device', 'add', 'sensor-1', '--public-key', k1)).stdout).toMatch(/^device sensor-1: 10\.71\.0\.2 \(already registered with this key\)/);
    const refused = await cli('device', 'add', 'sensor-1', '--public-key', k2);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/sensor-1 already exists with another public key \(.+\); add --rekey/);
    const reg = await Registry.open(dir);
    expect((await reg.getPeer('device', 'sensor-1'))!.publicKey).toBe(k1);
    await reg.close();
    expect((await cli('device', 'add', 'sensor-1', '--public-key', k2, '--rekey')).stdout).toMatch(/^device sensor-1: 10\.71\.0\.2 \(re-keyed, keeps its address\)/);

    // Peers owned by the clients file / the fleet API: the CLI refuses to remove them.
    const r2 = await Registry.open(dir);
    await r2.replaceSource('clients-file', [{ kind: 'client', name: 'alice-laptop', publicKey: k3, ip: '10.71.0.50' }]);
    await r2.close();
    const rm = await cli('client', 'remove', 'alice-laptop');
    expect(rm.code).toBe(1);
    expect(rm.stderr).toMatch(/client alice-laptop comes from the clients file: remove its line there/);
    const add = await cli('client', 'add', 'alice-laptop', '--public-key', k2);
    expect(add.stderr).toMatch(/comes from the clients file; change it there/);

    // Lists and show, text and JSON (Unix seconds, null = never), and "not running".
    const list = await cli('client', 'list');
    expect(list.stdout).toMatch(/^NAME +ADDRESS +SOURCE +STATE +LATEST HANDSHAKE\nalice-laptop +10\.71\.0\.50 +clients-file +offline +never\n$/);
    const json = JSON.parse((await cli('device', 'list', '--json')).stdout) as Array<Record<string, unknown>>;
    expect(json).toHaveLength(1);
    expect(json[0]).toMatchObject({ name: 'sensor-1', address: '10.71.0.2', publicKey: k2, latestHandshake: null, lastSeen: null, online: false, rxBytes: 0 });
    expect((await cli('agent', 'list')).stdout).toMatch(/^no agents/);
    const show = await cli('show');
    expect(show.stdout).toMatch(/^hub: not running, 10\.71\.0\.1, key \S+=\n/);
    const showJson = JSON.parse((await cli('show', '--json')).stdout) as { running: boolean; peers: unknown[] };
    expect(showJson.running).toBe(false);
    expect(showJson.peers).toHaveLength(2);
    expect((await cli('show', 'sensor-1')).stdout).toMatch(/^device sensor-1: 10\.71\.0\.2\n {2}key: /);
    expect((await cli('show', 'nobody')).stderr).toMatch(/no peer named "nobody"/);

    // Tokens: times in Unix seconds in JSON too.
    const created = JSON.parse((await cli('token', 'create', '--ttl', '1h', '--json')).stdout) as { expiresAt: number; createdAt: number; url: string | null };
    expect(created.expiresAt - created.createdAt).toBe(3600);
    expect(created.url).toBeNull();
    expect((await cli('device', 'remove', 'sensor-1')).stdout).toBe('device sensor-1 removed\n');
  }, 120_000);

  it('a missing or unreadable data directory is named as such', async () => {
    const none = await run(process.execPath, [TSGUARD, 'hub', 'device', 'list', '--data-dir', '/nonexistent/hub'], { allowFail: true });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no hub data directory \/nonexistent\/hub: start the hub once/);
    const empty = mkdtempSync(join(tmpdir(), 'tsguard-cli-hub-empty-'));
    dirs.push(empty);
    expect((await run(process.execPath, [TSGUARD, 'hub', 'show', '--data-dir', empty], { allowFail: true })).stderr).toMatch(/no hub registry in .* yet: start the hub once/);
  });

  it.skipIf(process.getuid?.() !== 0 || which('setpriv') === null)('permission denied is reported as such, not as a missing registry', async () => {
    const dir = await hubDir();
    chmodSync(dirname(dir), 0o755);
    // The data directory is 0700 root: another user cannot look in.
    const r = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, TSGUARD, 'hub', 'client', 'list', '--data-dir', dir], { allowFail: true });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/permission denied: .* \(owner uid 0, mode 0700\) is not readable and writable by uid 65534; run as root/);
    expect(r.stderr).not.toMatch(/missing/);
  });

  it('hub up --config FILE: settings file, flags win, every problem at once', async () => {
    const d = mkdtempSync(join(tmpdir(), 'tsguard-cli-hubconf-'));
    dirs.push(d);
    expect(parseHubConfig('# hub\ninterface = hub0\nsubnet = 10.1.0.0/24  # mesh\nallow-device-to-device = true\n', 'hub.conf')).toEqual({
      interface: 'hub0',
      subnet: '10.1.0.0/24',
      'allow-device-to-device': true,
    });
    expect(() => parseHubConfig('interface = a\nlisten-prot = 1\n', 'hub.conf')).toThrow(/^hub\.conf:2: unknown setting "listen-prot"/);
    expect(() => parseHubConfig('interface = a\ninterface = b\n', 'hub.conf')).toThrow(/hub\.conf:2: "interface" is set twice/);
    expect(() => parseHubConfig('allow-device-to-device = maybe\n', 'hub.conf')).toThrow(/must be true or false/);
    const file = join(d, 'hub.conf');
    writeFileSync(file, 'interface = hub0\nquarantine = -1\nfactory = f\n');
    const r = await run(process.execPath, [TSGUARD, 'hub', 'up', '--config', file, '--data-dir', join(d, 'data')], { allowFail: true });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^tsguard: missing --subnet CIDR, --listen-port PORT; --factory, --api-url and --api-token-file go together; --quarantine must be a number of seconds, 0 or more\n/);
  });

  it("the join URL takes the host of the hub's endpoint when the API listens on a wildcard address", () => {
    const base = { ifname: 'hub0', listenPort: 51820, subnet: '10.0.0.0/24' };
    expect(joinUrl({ ...base, api: 'https://0.0.0.0:8443', endpoint: 'hub.example.net:51820' })).toBe('https://hub.example.net:8443');
    expect(joinUrl({ ...base, api: 'https://[::]:8443', endpoint: '[2001:db8::1]:51820' })).toBe('https://[2001:db8::1]:8443');
    expect(joinUrl({ ...base, api: 'https://192.0.2.1:8443', endpoint: 'hub.example.net:51820' })).toBe('https://192.0.2.1:8443');
    expect(joinUrl({ ...base, api: 'https://0.0.0.0:8443' })).toBeNull();
    expect(joinUrl(base)).toBeNull();
  });
});

describe('examples/', () => {
  const ex = (f: string) => join(import.meta.dirname, '../examples', f);

  it('hub.conf has every required setting of hub up', () => {
    const v = parseHubConfig(readFileSync(ex('hub.conf'), 'utf8'), 'examples/hub.conf');
    expect(v).toMatchObject({ interface: 'hub0', subnet: '10.100.0.0/24', 'listen-port': '51820', 'data-dir': '/var/lib/tsguard-hub' });
  });

  it.skipIf(which('systemd-analyze') === null)('the systemd units pass systemd-analyze verify', async () => {
    const d = mkdtempSync(join(tmpdir(), 'tsguard-units-'));
    dirs.push(d);
    // A template is verified as an instance.
    const units = { 'tsguard-hub.service': 'tsguard-hub.service', 'tsguard-agent.service': 'tsguard-agent.service', 'tsguard-up@.service': 'tsguard-up@wg0.service' };
    for (const [src, dst] of Object.entries(units)) writeFileSync(join(d, dst), readFileSync(ex(src)));
    const r = await run('systemd-analyze', ['verify', '--man=no', ...Object.values(units).map((u) => join(d, u))], { allowFail: true });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(readFileSync(ex('tsguard-hub.service'), 'utf8')).toMatch(/^ReadWritePaths=\/var\/lib\/tsguard-hub -\/run\/wireguard$/m);
  });
});
