/**
 * Onboarding as the README says it, in network namespaces: the README's
 * `tsguard hub client add NAME > FILE` gives a 0600 file holding the config only, which
 * the wg-quick parser and `wg-quick strip` accept and `tsguard up` brings up (ping through
 * the hub); `--qr`, `--qr-file`, `--output`; the device stub of `device add`; and the join
 * line of `token create` (with the hub's endpoint, not a placeholder) joins an agent.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/wgquick.js';
import { formatPrefix } from '../src/routing/ip.js';
import { genKeyPair, ifname, nsRun, OUTER, ping, rand, ROOT, run, shouldSkip, teardownAll, Topology } from './net/netns.js';
import { spawnNode, TSGUARD, type Watched } from './helpers/proc.js';

const SKIP = shouldSkip('cli-hub-client.test.ts', ['ip', 'wg', 'wg-quick', 'ping']);
const SUBNET = '10.83.0.0/24';
const HUB_ADDR = '10.83.0.1';
const PORT = 51883;
const API_PORT = 18483;

describe.skipIf(SKIP)('hub onboarding as the README says it (network namespaces)', () => {
  let t: Topology;
  let dir: string;
  let hub: Watched;
  const env = () => ({ ...process.env, TSGUARD_HUB_DIR: dir });
  const cli = (args: string[]) => run(process.execPath, [TSGUARD, ...args], { env: env(), allowFail: true, timeoutMs: 20_000 });

  beforeAll(async () => {
    t = await Topology.create();
    dir = t.tempDir();
    const hubIf = ifname('tsh');
    t.ifnames.add(hubIf);
    hub = spawnNode(
      t.a,
      [TSGUARD, 'hub', 'up', '--data-dir', dir, '--interface', hubIf, '--subnet', SUBNET, '--listen-port', String(PORT), '--endpoint', `${OUTER.a4}:${PORT}`, '--api', `0.0.0.0:${API_PORT}`],
      'hub',
    );
    await hub.waitFor(/registration API listening on https:\/\//);
  }, 60_000);
  afterAll(async () => {
    await teardownAll();
  });

  it("the README's client command: config only on stdout, 0600, parsed by wg-quick, brought up by tsguard up", async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const m = /^sudo npx tsguard (hub client add (\S+)) > (\S+)$/m.exec(readme);
    expect(m, 'README has a "tsguard hub client add NAME > FILE" line').not.toBeNull();
    const [, cmd, name] = m!;
    const client = ifname('tsc');
    t.ifnames.add(client);
    const file = join(t.tempDir(), `${client}.conf`);
    // As the shell runs it: umask 022 would leave the redirected file world-readable.
    const r = await run('sh', ['-c', `umask 022; "${process.execPath}" "${TSGUARD}" ${cmd} > "${file}"`], { env: env(), timeoutMs: 20_000 });
    expect(r.stderr).toMatch(new RegExp(`^client ${name}: 10\\.83\\.0\\.\\d+\\n$`));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    const cfg = parseConfig(text, file, 'wg-quick');
    expect(cfg.peers).toHaveLength(1);
    expect(cfg.peers[0]!.endpoint).toEqual({ host: OUTER.a4, port: PORT });
    expect(cfg.peers[0]!.persistentKeepalive).toBe(25);
    const stripped = await run('wg-quick', ['strip', file]);
    expect(stripped.stdout).toMatch(/^PrivateKey = /m);
    expect(stripped.stdout).not.toMatch(/^Address/m);

    const up = await nsRun(t.b!, process.execPath, [TSGUARD, 'up', file], { allowFail: true, timeoutMs: 30_000 });
    expect(up.code, up.stderr).toBe(0);
    try {
      expect((await ping(t.b!, HUB_ADDR, { count: 2, wait: 5 })).received).toBeGreaterThan(0);
      expect((await cli(['hub', 'show'])).stdout).toMatch(/^hub: tsh\S+ running, 10\.83\.0\.1 on UDP 51883, endpoint 192\.168\.241\.1:51883, key /);
      const shown = JSON.parse((await cli(['hub', 'show', name!, '--json'])).stdout) as Array<{ online: boolean; latestHandshake: number | null }>;
      expect(shown[0]!.online).toBe(true);
      expect(shown[0]!.latestHandshake).toBeGreaterThan(1_600_000_000);
    } finally {
      const down = await nsRun(t.b!, process.execPath, [TSGUARD, 'down', file], { allowFail: true, timeoutMs: 30_000 });
      expect(down.code, down.stderr).toBe(0);
    }
  }, 90_000);

  it('--qr to stderr, --qr-file PNG/SVG and --output FILE are 0600, stdout stays clean', async () => {
    const out = t.tempDir();
    const qr = await cli(['hub', 'client', 'add', `qr-${rand(2)}`, '--qr']);
    expect(qr.code, qr.stderr).toBe(0);
    parseConfig(qr.stdout, 'stdout', 'wg-quick');
    expect(qr.stdout).not.toMatch(/[▀▄█]/);
    expect(qr.stderr).toMatch(/[▀▄█]{10}/);

    const conf = join(out, 'p.conf');
    const files = await cli(['hub', 'client', 'add', `qf-${rand(2)}`, '--output', conf, '--qr-file', join(out, 'p.png')]);
    expect(files.code, files.stderr).toBe(0);
    expect(files.stdout).toBe('');
    expect(files.stderr).not.toMatch(/[▀▄█]/); // not a terminal and no --qr
    parseConfig(readFileSync(conf, 'utf8'), conf, 'wg-quick');
    expect(readFileSync(join(out, 'p.png')).subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    const svg = await cli(['hub', 'client', 'add', `qs-${rand(2)}`, '--output', join(out, 's.conf'), '--qr-file', join(out, 's.svg')]);
    expect(svg.code, svg.stderr).toBe(0);
    expect(readFileSync(join(out, 's.svg'), 'utf8')).toMatch(/^<svg /);
    for (const f of ['p.conf', 'p.png', 's.conf', 's.svg']) expect(statSync(join(out, f)).mode & 0o777, f).toBe(0o600);
  });

  it('device add prints a config stub that works once its private key is filled in', async () => {
    const k = await genKeyPair();
    const r = await cli(['hub', 'device', 'add', `dev-${rand(2)}`, '--public-key', k.pub]);
    expect(r.code, r.stderr).toBe(0);
    const stub = r.stdout.slice(r.stdout.indexOf('# tsguard hub device'));
    const filled = stub.replace(/^# PrivateKey = .*$/m, `PrivateKey = ${k.priv}`);
    const cfg = parseConfig(filled, 'stub', 'wg-quick');
    expect(cfg.peers[0]!.endpoint).toEqual({ host: OUTER.a4, port: PORT });
    expect(formatPrefix(cfg.interface.addresses[0]!)).toBe(`${/^device \S+: (\S+)$/m.exec(r.stdout)![1]}/32`);
    // Same name, another key: refused without --rekey, nothing printed.
    const again = await cli(['hub', 'device', 'add', /^device (\S+):/m.exec(r.stdout)![1]!, '--public-key', (await genKeyPair()).pub]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists with another public key .*--rekey/);
    expect(again.stdout).toBe('');
  });

  it("token create prints a join line with the hub's endpoint that joins an agent", async () => {
    const r = await cli(['hub', 'token', 'create', '--uses', '1']);
    expect(r.code, r.stderr).toBe(0);
    const line = /^ {2}(tsguard join .*)$/m.exec(r.stdout)![1]!;
    expect(line).toContain(`tsguard join https://${OUTER.a4}:${API_PORT} --token `);
    expect(r.stdout).not.toContain('HUB_ADDRESS');
    const agentIf = ifname('tsj');
    t.ifnames.add(agentIf);
    const args = line.split(' ').slice(1).map((a) => (a === 'tsguard0' ? agentIf : a === '/var/lib/tsguard-agent' ? t.tempDir() : a));
    const agent = spawnNode(t.b!, [TSGUARD, ...args], 'agent');
    try {
      await agent.waitFor(/joined as \S+: address 10\.83\.0\.\d+\/24/);
    } finally {
      agent.child.kill('SIGTERM');
      await agent.exited;
    }
  }, 60_000);
});
