/**
 * `tsguard up` / `tsguard down` (our own wg-quick) in network namespaces against a
 * wireguard-go peer: full tunnel with fwmark policy routing, hooks, SaveConfig; a bad
 * file is refused before anything changes; down leaves nothing behind.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  alive,
  daemonPid,
  genKeyPair,
  INNER,
  netState,
  nsRun,
  OUTER,
  ping,
  rand,
  ROOT,
  run,
  shouldSkip,
  SOCKET_DIR,
  stopDaemon,
  teardownAll,
  Topology,
  waitFor,
  which,
  wireguardGoPeerB,
} from './net/netns.js';

const SKIP = shouldSkip('tsguard-quick.test.ts', ['ip', 'wg', 'wireguard-go', 'ping']);
const TSGUARD = join(ROOT, 'dist/cli/tsguard.js');
const tsguard = (ns: string, args: string[]) => nsRun(ns, process.execPath, [TSGUARD, ...args], { allowFail: true, timeoutMs: 30_000 });

describe.skipIf(SKIP)('tsguard up / down (network namespaces)', () => {
  let t: Topology;

  beforeAll(async () => {
    t = await Topology.create();
  });
  afterAll(async () => {
    await teardownAll();
  });

  it('full tunnel: up configures addresses, fwmark policy routing and hooks; down removes everything and saves the config', async () => {
    const a = await genKeyPair();
    const b = await wireguardGoPeerB(t, a.pub);
    const name = `tsgu${rand(3)}`;
    t.ifnames.add(name);
    const dir = t.tempDir();
    const conf = join(dir, `${name}.conf`);
    const hookLog = join(dir, 'hooks.log');
    // B's endpoint sits behind A's default route: only the fwmark keeps the encrypted packets out of the tunnel.
    await run('ip', ['-n', t.b!, 'addr', 'add', '192.168.242.2/32', 'dev', 'vB']);
    await run('ip', ['-n', t.a, 'route', 'add', 'default', 'via', OUTER.b4, 'dev', 'vA']);
    writeFileSync(
      conf,
      [
        '[Interface]',
        `PrivateKey = ${a.priv}`,
        `Address = ${INNER.a4}/24, ${INNER.a6}/64`,
        'ListenPort = 51820',
        `PreUp = echo "pre-up %i" >> ${hookLog}`,
        `PostUp = echo "post-up %i" >> ${hookLog}`,
        `PreDown = echo "pre-down %i" >> ${hookLog}`,
        `PostDown = echo "post-down %i" >> ${hookLog}`,
        'SaveConfig = true',
        '',
        '[Peer]',
        `PublicKey = ${b.keys.pub}`,
        'AllowedIPs = 0.0.0.0/0, ::/0',
        'Endpoint = 192.168.242.2:51821',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const before = await netState(t.a, true);
    let isUp = false;
    try {
      const r = await tsguard(t.a, ['up', conf]);
      expect(r.code, r.stderr).toBe(0);
      isUp = true;
      const pid = await daemonPid(t.a, name);
      expect(pid).not.toBeNull();
      const addrs = (await run('ip', ['-n', t.a, 'addr', 'show', 'dev', name])).stdout;
      expect(addrs).toContain(`inet ${INNER.a4}/24`);
      expect(addrs).toContain(`inet6 ${INNER.a6}/64`);
      const show = (await tsguard(t.a, ['show', name, 'dump'])).stdout.split('\n')[0]!.split('\t');
      expect(show[3]).toBe('0xca6c'); // fwmark 51820
      for (const fam of [[], ['-6']]) {
        const rules = (await run('ip', ['-n', t.a, ...fam, 'rule'])).stdout;
        expect(rules).toContain('not from all fwmark 0xca6c lookup 51820');
        expect(rules).toContain('from all lookup main suppress_prefixlength 0');
      }
      if (which('nft') !== null) {
        // wg-quick's anti-spoofing / connmark rules for the default route, in our own tables.
        const tables = (await nsRun(t.a, 'nft', ['list', 'tables'])).stdout;
        expect(tables).toContain(`table ip tsguard-${name}`);
        expect(tables).toContain(`table ip6 tsguard-${name}`);
      }
      for (const dst of [INNER.b4, INNER.b6]) {
        const p = await ping(t.a, dst, { count: 3, interval: 0.1, deadline: 10 });
        expect(p.received, p.output).toBe(3);
      }
      // A new peer added at run time is what SaveConfig must write back.
      const extra = await genKeyPair();
      await nsRun(t.a, 'wg', ['set', name, 'peer', extra.pub, 'allowed-ips', '10.99.0.0/24']);

      const d = await tsguard(t.a, ['down', conf]);
      expect(d.code, d.stderr).toBe(0);
      isUp = false;
      await waitFor('the daemon to exit after down', () => !alive(pid!), 10_000);
      expect(existsSync(`${SOCKET_DIR}/${name}.sock`)).toBe(false);
      expect((await run('ip', ['-n', t.a, 'link', 'show', 'dev', name], { allowFail: true })).code).not.toBe(0);
      expect(await netState(t.a, true)).toBe(before);
      expect(readFileSync(hookLog, 'utf8')).toBe(`pre-up ${name}\npost-up ${name}\npre-down ${name}\npost-down ${name}\n`);
      const saved = readFileSync(conf, 'utf8');
      expect(statSync(conf).mode & 0o777).toBe(0o600);
      expect(saved).toContain(`PublicKey = ${extra.pub}`);
      expect(saved).toContain('AllowedIPs = 10.99.0.0/24');
      expect(saved).toContain(`PrivateKey = ${a.priv}`);
      expect(saved).toContain('SaveConfig = true');
    } finally {
      if (isUp) await tsguard(t.a, ['down', conf]);
      await stopDaemon(b.daemon);
      await run('ip', ['-n', t.b!, 'addr', 'del', '192.168.242.2/32', 'dev', 'vB'], { allowFail: true });
      await run('ip', ['-n', t.a, 'route', 'del', 'default', 'via', OUTER.b4, 'dev', 'vA'], { allowFail: true });
    }
  });

  it('refuses a bad file before changing anything, naming file and line', async () => {
    const name = `tsgb${rand(3)}`;
    const dir = t.tempDir();
    const conf = join(dir, `${name}.conf`);
    const hookLog = join(dir, 'hooks.log');
    const k = await genKeyPair();
    writeFileSync(
      conf,
      `[Interface]\nPrivateKey = ${k.priv}\nPreUp = touch ${hookLog}\nAddress = 10.1.2.3/33\n`,
      { mode: 0o600 },
    );
    const before = await netState(t.a, true);
    const r = await tsguard(t.a, ['up', conf]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${conf}:4:`);
    expect(r.stderr).not.toContain(k.priv);
    expect(existsSync(hookLog)).toBe(false); // not even PreUp ran
    expect((await run('ip', ['-n', t.a, 'link', 'show', 'dev', name], { allowFail: true })).code).not.toBe(0);
    expect(existsSync(`${SOCKET_DIR}/${name}.sock`)).toBe(false);
    expect(await netState(t.a, true)).toBe(before);
  });

  it('refuses to bring up an interface that already exists, leaving the running one alone', async () => {
    const name = `tsgd${rand(3)}`;
    t.ifnames.add(name);
    const dir = t.tempDir();
    const conf = join(dir, `${name}.conf`);
    const k = await genKeyPair();
    writeFileSync(conf, `[Interface]\nPrivateKey = ${k.priv}\nAddress = 10.55.0.1/24\n`, { mode: 0o600 });
    expect((await tsguard(t.a, ['up', conf])).code).toBe(0);
    try {
      const again = await tsguard(t.a, ['up', conf]);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain(`\`${name}' already exists`);
      expect((await tsguard(t.a, ['show', name])).stdout).toContain(`interface: ${name}`);
    } finally {
      expect((await tsguard(t.a, ['down', conf])).code).toBe(0);
    }
  });
});
