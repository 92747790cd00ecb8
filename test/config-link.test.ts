/**
 * Interface, route and policy-routing setup (src/config/link.ts): plans
 * recorded without running anything, then (as root) a real run inside a
 * network namespace created and removed here, on a dummy link standing in
 * for the TUN device. No traffic is sent.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { keyToBase64 } from '../src/crypto/keys.js';
import {
  applyDown,
  applyUp,
  computeMtu,
  LinkSetupError,
  planUp,
  routesFor,
  runHooks,
  type LinkEnv,
  type UpPlan,
} from '../src/config/link.js';
import { formatCommand, type Command, type RunResult } from '../src/os/runner.js';
import { netnsRunner, recordingRunner } from './helpers/runner.js';
import { parseConfig, type WgConfig } from '../src/config/wgquick.js';
import { formatPrefix } from '../src/routing/ip.js';

const pub = (n: number): string => keyToBase64(new Uint8Array(32).fill(n));

function conf(iface: string, ...peers: string[]): WgConfig {
  const text = `[Interface]\n${iface}\n` + peers.map((p, i) => `[Peer]\nPublicKey = ${pub(i + 10)}\n${p}\n`).join('');
  return parseConfig(text, 'test.conf', 'wg-quick');
}

/** The command lines of a plan (fwmark steps shown as "<fwmark N>"). */
function lines(plan: UpPlan): string[] {
  return plan.steps.map((s) => (s.kind === 'fwmark' ? `<fwmark ${s.mark}>` : formatCommand(s.command)));
}

/** Environment with a recording runner, no optional programs, and a fixed resolver. */
function env(reply?: (c: Command) => Partial<RunResult> | undefined, extra: Partial<LinkEnv> = {}) {
  const runner = recordingRunner(reply);
  const log: string[] = [];
  const e: LinkEnv = {
    runner,
    log: (l) => log.push(l),
    hasCommand: async () => false,
    resolvconfPrefix: 'tun.',
    resolve: async (host) => ({ host }),
    ...extra,
  };
  return { runner, log, env: e };
}

const isCmd = (c: Command, line: string): boolean => formatCommand(c) === line;

describe('planUp (recorded, nothing runs)', () => {
  it('full tunnel 0.0.0.0/0 + ::/0 uses policy routing with fwmark 51820', async () => {
    const cfg = conf('Address = 10.0.0.2/32, fd00::2/128', 'AllowedIPs = 0.0.0.0/0, ::/0\nEndpoint = 192.0.2.1:51820');
    const { env: e, runner } = env((c) => {
      if (isCmd(c, 'ip route get 192.0.2.1')) return { stdout: '192.0.2.1 via 10.1.1.1 dev eth0 src 10.1.1.2 uid 0\n    cache\n' };
      if (isCmd(c, 'ip link show dev eth0')) return { stdout: '2: eth0: <BROADCAST,UP> mtu 1500 qdisc noqueue state UP\n' };
      return undefined;
    });
    const plan = await planUp('wg0', cfg, e);
    expect(plan.fwmark).toBe(51820);
    expect(plan.setFwmark).toBe(true);
    expect(plan.mtu).toBe(1420);
    expect(plan.table).toBe('auto');
    expect(lines(plan)).toEqual([
      'ip -4 address add 10.0.0.2/32 dev wg0',
      'ip -6 address add fd00::2/128 dev wg0',
      'ip link set mtu 1420 up dev wg0',
      '<fwmark 51820>',
      'ip -4 route add 0.0.0.0/0 dev wg0 table 51820',
      'ip -4 rule add not fwmark 51820 table 51820',
      'ip -4 rule add table main suppress_prefixlength 0',
      'sysctl -q net.ipv4.conf.all.src_valid_mark=1',
      'ip -6 route add ::/0 dev wg0 table 51820',
      'ip -6 rule add not fwmark 51820 table 51820',
      'ip -6 rule add table main suppress_prefixlength 0',
    ]);
    // Planning only queried.
    expect(runner.calls.map(formatCommand)).toEqual([
      'ip route get 192.0.2.1',
      'ip link show dev eth0',
      'ip -4 route show table 51820',
      'ip -6 route show table 51820',
    ]);
  });

  it('uses the configured FwMark as the table, or the next free table', async () => {
    const full = 'AllowedIPs = 0.0.0.0/0';
    const withMark = await planUp('wg0', conf('FwMark = 0x1234\nMTU = 1400', full), env().env);
    expect(withMark.fwmark).toBe(0x1234);
    expect(withMark.setFwmark).toBe(false);
    expect(lines(withMark)).toContain('ip -4 rule add not fwmark 4660 table 4660');
    expect(lines(withMark)).not.toContain('<fwmark 4660>');

    const busy = env((c) => (isCmd(c, 'ip -6 route show table 51820') ? { stdout: 'default dev other\n' } : undefined));
    const next = await planUp('wg0', conf('MTU = 1400', full), busy.env);
    expect(next.fwmark).toBe(51821);
    expect(lines(next)).toContain('ip -4 route add 0.0.0.0/0 dev wg0 table 51821');
  });

  it('Table = off adds no routes', async () => {
    const plan = await planUp('wg0', conf('Table = off\nMTU = 1420\nAddress = 10.0.0.2/24', 'AllowedIPs = 0.0.0.0/0, 10.1.0.0/16'), env().env);
    expect(lines(plan)).toEqual(['ip -4 address add 10.0.0.2/24 dev wg0', 'ip link set mtu 1420 up dev wg0']);
    expect(plan.fwmark).toBeUndefined();
  });

  it('Table = 1234 puts every route, /0 included, in that table without rules', async () => {
    const plan = await planUp('wg0', conf('Table = 1234\nMTU = 1420', 'AllowedIPs = 0.0.0.0/0, 10.1.0.0/16, ::/0'), env().env);
    expect(lines(plan)).toEqual([
      'ip link set mtu 1420 up dev wg0',
      'ip -4 route add 10.1.0.0/16 dev wg0 table 1234',
      'ip -4 route add 0.0.0.0/0 dev wg0 table 1234',
      'ip -6 route add ::/0 dev wg0 table 1234',
    ]);
    expect(plan.fwmark).toBeUndefined();
  });

  it('main-table routes: masked, deduplicated, most specific first, skipped when already routed', async () => {
    const cfg = conf('MTU = 1420', 'AllowedIPs = 10.0.0.0/8, 10.1.2.3/16', 'AllowedIPs = 10.1.0.0/16, fd00::/64, 10.9.9.9/32');
    expect(routesFor(cfg).map(formatPrefix)).toEqual(['fd00::/64', '10.9.9.9/32', '10.1.0.0/16', '10.0.0.0/8']);
    const plan = await planUp('wg0', cfg, env().env);
    const routeSteps = plan.steps.filter((s) => s.kind === 'cmd' && s.command.args.includes('route'));
    expect(routeSteps.map((s) => (s.kind === 'cmd' ? [formatCommand(s.command), s.unlessOutput && formatCommand(s.unlessOutput)] : []))).toEqual([
      ['ip -6 route add fd00::/64 dev wg0', 'ip -6 route show dev wg0 match fd00::/64'],
      ['ip -4 route add 10.9.9.9/32 dev wg0', 'ip -4 route show dev wg0 match 10.9.9.9/32'],
      ['ip -4 route add 10.1.0.0/16 dev wg0', 'ip -4 route show dev wg0 match 10.1.0.0/16'],
      ['ip -4 route add 10.0.0.0/8 dev wg0', 'ip -4 route show dev wg0 match 10.0.0.0/8'],
    ]);
    // At run time a route already present via wg0 is not added again.
    const run = env((c) => (isCmd(c, 'ip -4 route show dev wg0 match 10.1.0.0/16') ? { stdout: '10.0.0.0/8 dev wg0 scope link\n' } : undefined));
    await applyUp('wg0', cfg, run.env);
    const adds = run.runner.calls.map(formatCommand).filter((l) => l.includes(' route add '));
    expect(adds).toEqual(['ip -6 route add fd00::/64 dev wg0', 'ip -4 route add 10.9.9.9/32 dev wg0', 'ip -4 route add 10.0.0.0/8 dev wg0']);
  });

  it('computes the MTU like wg-quick', async () => {
    const two = conf('', 'Endpoint = 192.0.2.1:1', 'Endpoint = [2001:db8::1]:1', 'Endpoint = unresolvable.example:1');
    const e1 = env(
      (c) => {
        if (isCmd(c, 'ip route get 192.0.2.1')) return { stdout: '192.0.2.1 dev eth0 src 10.0.0.1 uid 0\n' };
        if (isCmd(c, 'ip link show dev eth0')) return { stdout: '2: eth0: <UP> mtu 1500 qdisc x\n' };
        if (isCmd(c, 'ip route get 2001:db8::1')) return { stdout: '2001:db8::1 via fe80::1 dev eth1 src 2001:db8::2 metric 1024 mtu 9000 pref medium\n' };
        return undefined;
      },
      {
        resolve: async (host) => {
          if (host.endsWith('.example')) throw new Error('nope');
          return { host };
        },
      },
    );
    expect(await computeMtu(two, e1.env)).toBe(8920);

    // No usable endpoint: the default route's device.
    const e2 = env((c) => {
      if (c.args[1] === 'get') return { code: 2, stderr: 'RTNETLINK answers: Network is unreachable' };
      if (isCmd(c, 'ip route show default')) return { stdout: 'default via 10.0.0.1 dev enp1s0 proto dhcp\ndefault via 10.0.0.2 dev x mtu 9999\n' };
      if (isCmd(c, 'ip link show dev enp1s0')) return { stdout: '2: enp1s0: <UP> mtu 1492 qdisc x\n' };
      return undefined;
    });
    expect(await computeMtu(two, e2.env)).toBe(1412);

    // Nothing known: 1500 - 80.
    expect(await computeMtu(conf(''), env().env)).toBe(1420);

    // An explicit MTU is used as is, without queries.
    const e3 = env();
    const plan = await planUp('wg0', conf('MTU = 1280', 'Endpoint = 192.0.2.1:1\nAllowedIPs = 10.0.0.0/8'), e3.env);
    expect(plan.mtu).toBe(1280);
    expect(e3.runner.calls).toEqual([]);
  });

  it('sets DNS through resolvconf, or refuses when resolvconf is missing', async () => {
    const cfg = conf('MTU = 1420\nDNS = 10.0.0.53, fd00::53, example.com, corp', 'AllowedIPs = 10.0.0.0/8');
    const e = env(undefined, { hasCommand: async (n) => n === 'resolvconf' });
    const plan = await planUp('wg0', cfg, e.env);
    const dns = plan.steps.find((s) => s.kind === 'cmd' && s.command.file === 'resolvconf');
    expect(dns && dns.kind === 'cmd' && dns.command).toEqual({
      file: 'resolvconf',
      args: ['-a', 'tun.wg0', '-m', '0', '-x'],
      input: 'nameserver 10.0.0.53\nnameserver fd00::53\nsearch example.com corp\n',
    });
    expect(plan.dns).toBe(true);
    await expect(planUp('wg0', cfg, env().env)).rejects.toThrow(
      'DNS is set for wg0 but resolvconf is not installed (install the resolvconf or openresolv package, or remove the DNS line)',
    );
  });

  it('adds nft rules for a full tunnel when nft is installed', async () => {
    const cfg = conf('MTU = 1420\nAddress = 10.0.0.2/32', 'AllowedIPs = 0.0.0.0/0');
    const plan = await planUp('wg0', cfg, env(undefined, { hasCommand: async (n) => n === 'nft' }).env);
    expect(plan.firewall).toBe(true);
    const nft = plan.steps.find((s) => s.kind === 'cmd' && s.command.file === 'nft');
    expect(nft?.kind === 'cmd' && nft.command.args).toEqual(['-f', '-']);
    expect(nft?.kind === 'cmd' && nft.command.input).toMatch(/^add table ip tsguard-wg0\n[\s\S]*iifname != "wg0" ip daddr 10\.0\.0\.2 [\s\S]*mark 51820 ct mark set mark\n/);
    expect(nft?.kind === 'cmd' && formatCommand(nft.undo!)).toBe('nft delete table ip tsguard-wg0');
    const without = env();
    await planUp('wg0', cfg, without.env);
    expect(without.log.join('\n')).toMatch(/nft is not installed: skipping/);
  });

  it('runs PostUp last and hooks through sh -c with %i replaced', async () => {
    const cfg = conf('MTU = 1420\nPostUp = echo up %i %i\nPreUp = echo pre %i', 'AllowedIPs = 10.0.0.0/8');
    const e = env();
    const plan = await planUp('wg7', cfg, e.env);
    const last = plan.steps.at(-1)!;
    expect(last.kind === 'cmd' && last.command).toEqual({ file: 'sh', args: ['-c', 'echo up wg7 wg7'] });
    await runHooks(cfg.interface.preUp, 'wg7', e.env);
    expect(e.runner.calls.at(-1)).toEqual({ file: 'sh', args: ['-c', 'echo pre wg7'] });
    expect(e.log).toEqual(['[#] echo pre wg7']);
    const failing = env(() => ({ code: 3, stderr: 'boom\n' }));
    await expect(runHooks(['false %i'], 'wg7', failing.env, 'PreUp')).rejects.toThrow("PreUp hook failed: `false wg7': boom");
  });
});

describe('applyUp failure handling', () => {
  it('undoes the steps done, in reverse order, and names the failed step with its stderr', async () => {
    const cfg = conf('MTU = 1420\nAddress = 10.0.0.2/24', 'AllowedIPs = 0.0.0.0/0, 10.5.0.0/16');
    const e = env((c) =>
      isCmd(c, 'ip -4 rule add table main suppress_prefixlength 0') ? { code: 2, stderr: 'RTNETLINK answers: Operation not supported\n' } : undefined,
    );
    const marks: number[] = [];
    e.env.setFwmark = async (m) => {
      marks.push(m);
    };
    const err = await applyUp('wg0', cfg, e.env).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(err).toBeInstanceOf(LinkSetupError);
    expect((err as Error).message).toBe(
      'adding rule "table main suppress_prefixlength 0" failed: `ip -4 rule add table main suppress_prefixlength 0\': RTNETLINK answers: Operation not supported',
    );
    expect((err as LinkSetupError).stderr).toContain('Operation not supported');
    expect(marks).toEqual([51820]);
    const ran = e.runner.calls.map(formatCommand).filter((l) => !l.includes(' show ') && !l.includes(' get '));
    expect(ran).toEqual([
      'ip -4 address add 10.0.0.2/24 dev wg0',
      'ip link set mtu 1420 up dev wg0',
      'ip -4 route add 10.5.0.0/16 dev wg0',
      'ip -4 route add 0.0.0.0/0 dev wg0 table 51820',
      'ip -4 rule add not fwmark 51820 table 51820',
      'ip -4 rule add table main suppress_prefixlength 0',
      // rollback
      'ip -4 rule del not fwmark 51820 table 51820',
      'ip -4 route del 0.0.0.0/0 dev wg0 table 51820',
      'ip -4 route del 10.5.0.0/16 dev wg0',
      'ip -4 address del 10.0.0.2/24 dev wg0',
    ]);
    expect(e.log.filter((l) => l.startsWith('[#]'))[0]).toBe('[#] ip -4 address add 10.0.0.2/24 dev wg0');
  });
});

describe('applyDown (recorded)', () => {
  it('runs PreDown, deletes the rules while they exist, DNS, the link, PostDown', async () => {
    const cfg = conf('DNS = 1.1.1.1\nPreDown = echo pd %i\nPostDown = echo po %i', 'AllowedIPs = ::/0');
    let v4 = 2; // two matching rules for -4, then none
    let sup6 = 1;
    const e = env(
      (c) => {
        const l = formatCommand(c);
        if (l === 'ip -4 rule show') return { stdout: v4 > 0 ? `32765: not from all fwmark 0xca6c lookup 51820\n` : '0: from all lookup local\n' };
        if (l === 'ip -4 rule delete table 51820') v4--;
        if (l === 'ip -6 rule show') return { stdout: sup6 > 0 ? '32764: from all lookup main suppress_prefixlength 0\n' : '' };
        if (l === 'ip -6 rule delete table main suppress_prefixlength 0') sup6--;
        return undefined;
      },
      { hasCommand: async (n) => n === 'resolvconf' },
    );
    const deleted: string[] = [];
    e.env.deleteLink = async () => {
      deleted.push('wg0');
    };
    await applyDown('wg0', cfg, e.env);
    expect(deleted).toEqual(['wg0']);
    expect(e.runner.calls.map(formatCommand).filter((l) => !l.endsWith(' show'))).toEqual([
      "sh -c 'echo pd wg0'",
      'ip -4 rule delete table 51820',
      'ip -4 rule delete table 51820',
      'ip -6 rule delete table main suppress_prefixlength 0',
      'resolvconf -d tun.wg0 -f',
      "sh -c 'echo po wg0'",
    ]);
  });

  it('keeps going after a failure and reports it', async () => {
    const cfg = conf('PreDown = false\nPostDown = echo done', 'AllowedIPs = 10.0.0.0/8');
    const e = env((c) => (c.args[1] === 'false' ? { code: 1, stderr: 'nope' } : undefined));
    await expect(applyDown('wg0', cfg, e.env)).rejects.toThrow("taking wg0 down: PreDown hook failed: `false': nope");
    expect(e.runner.calls.map(formatCommand)).toEqual(["sh -c false", "sh -c 'echo done'"]);
  });
});

// ---------------------------------------------------------------------------
// Real run in a network namespace

const isRoot = process.getuid?.() === 0;
if (!isRoot) {
  console.warn('test/config-link.test.ts: network-namespace tests skipped, they need root (ip netns add)');
}

function sh(file: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: unknown }).code as number) || 1 : 0, out: stdout + stderr });
    });
  });
}

describe.skipIf(!isRoot)('applyUp/applyDown in a network namespace', () => {
  const ns = `tsgcfg-${randomBytes(4).toString('hex')}`;
  const ipn = async (...args: string[]): Promise<string> => (await sh('ip', ['-n', ns, ...args])).out;
  /**
   * A stand-in for the TUN device: a dummy link, or where the dummy module
   * is not available (containers), a persistent TUN device.
   */
  const standIn = async (name: string): Promise<void> => {
    const dummy = await sh('ip', ['-n', ns, 'link', 'add', name, 'type', 'dummy']);
    if (dummy.code === 0) return;
    const tun = await sh('ip', ['-n', ns, 'tuntap', 'add', 'dev', name, 'mode', 'tun']);
    if (tun.code !== 0) throw new Error(`cannot create ${name}: dummy: ${dummy.out.trim()}; tun: ${tun.out.trim()}`);
  };

  beforeAll(async () => {
    const add = await sh('ip', ['netns', 'add', ns]);
    if (add.code !== 0) throw new Error(`ip netns add ${ns} failed: ${add.out}`);
  });
  afterAll(async () => {
    await sh('ip', ['netns', 'del', ns]);
  });

  it('sets addresses, routes and policy rules, then removes them', async () => {
    await standIn('tsgd0');
    const cfg = conf(
      'Address = 10.77.0.2/24, fd77::2/64\nPostUp = ip link set %i alias tsguard-%i\nPostDown = true',
      'AllowedIPs = 0.0.0.0/0, ::/0\nEndpoint = 192.0.2.1:51820',
      'AllowedIPs = 10.88.1.1/16, fd88::/48, 10.77.0.9/32',
    );
    const log: string[] = [];
    const marks: number[] = [];
    const e: LinkEnv = {
      runner: netnsRunner(ns),
      log: (l) => log.push(l),
      hasCommand: async () => false,
      setFwmark: async (m) => {
        marks.push(m);
      },
    };
    const plan = await applyUp('tsgd0', cfg, e);
    expect(plan.fwmark).toBe(51820);
    expect(marks).toEqual([51820]);
    expect(plan.mtu).toBe(1420); // no routes in the namespace: 1500 - 80

    const linkShow = await ipn('link', 'show', 'dev', 'tsgd0');
    expect(linkShow).toMatch(/mtu 1420 /);
    expect(linkShow).toMatch(/alias tsguard-tsgd0/);
    expect(linkShow).toMatch(/<[^>]*\bUP\b/);
    expect(await ipn('-4', 'addr', 'show', 'dev', 'tsgd0')).toContain('inet 10.77.0.2/24');
    expect(await ipn('-6', 'addr', 'show', 'dev', 'tsgd0')).toContain('inet6 fd77::2/64');
    const r4 = await ipn('-4', 'route', 'show', 'dev', 'tsgd0');
    expect(r4).toContain('10.88.0.0/16');
    expect(r4).not.toContain('10.77.0.9'); // already routed through 10.77.0.0/24 on tsgd0
    expect(await ipn('-6', 'route', 'show', 'dev', 'tsgd0')).toContain('fd88::/48');
    expect(await ipn('-4', 'route', 'show', 'table', '51820')).toContain('default dev tsgd0');
    expect(await ipn('-6', 'route', 'show', 'table', '51820')).toContain('default dev tsgd0');
    for (const f of ['-4', '-6']) {
      const rules = await ipn(f, 'rule', 'show');
      expect(rules).toMatch(/not from all fwmark 0xca6c lookup 51820/);
      expect(rules).toMatch(/from all lookup main suppress_prefixlength 0/);
    }
    expect((await sh('ip', ['netns', 'exec', ns, 'sysctl', '-n', 'net.ipv4.conf.all.src_valid_mark'])).out.trim()).toBe('1');
    expect(log).toContain('[#] ip -4 rule add not fwmark 51820 table 51820');

    await applyDown('tsgd0', cfg, {
      ...e,
      fwmark: 51820,
      deleteLink: async () => {
        const r = await e.runner!.run('ip', ['link', 'delete', 'dev', 'tsgd0']);
        if (r.code !== 0) throw new Error(r.stderr);
      },
    });
    for (const f of ['-4', '-6']) {
      const rules = await ipn(f, 'rule', 'show');
      expect(rules).not.toMatch(/51820|suppress_prefixlength/);
      expect(await ipn(f, 'route', 'show', 'table', '51820')).toBe('');
    }
    expect((await sh('ip', ['-n', ns, 'link', 'show', 'dev', 'tsgd0'])).code).not.toBe(0);
    expect(await ipn('-4', 'route', 'show')).toBe('');
  });

  it('rolls back a failed up', async () => {
    await standIn('tsgd1');
    await sh('ip', ['-n', ns, 'link', 'set', 'tsgd1', 'up']);
    // A route that is already there makes the second route step fail with "File exists".
    const pre = await sh('ip', ['-n', ns, 'route', 'add', '10.99.0.0/16', 'dev', 'tsgd1', 'table', '1234']);
    expect(pre.out).toBe('');
    const cfg = conf('Table = 1234\nAddress = 10.66.0.2/24', 'AllowedIPs = 10.98.0.0/16, 10.99.0.0/16');
    const err = await applyUp('tsgd1', cfg, { runner: netnsRunner(ns), log: () => undefined, hasCommand: async () => false }).then(
      () => undefined,
      (x: unknown) => x as Error,
    );
    expect(err).toBeInstanceOf(LinkSetupError);
    expect(err!.message).toMatch(/^adding route 10\.99\.0\.0\/16 to table 1234 failed: `ip -4 route add 10\.99\.0\.0\/16 dev tsgd1 table 1234': .*File exists/);
    const table = await ipn('-4', 'route', 'show', 'table', '1234');
    expect(table).not.toContain('10.98.0.0');
    // (The kernel drops the pre-existing 10.99.0.0/16 too: removing a link's last IPv4 address flushes its IPv4 routes.)
    expect(await ipn('-4', 'addr', 'show', 'dev', 'tsgd1')).not.toContain('10.66.0.2');
    await sh('ip', ['-n', ns, 'link', 'del', 'tsgd1']);
  });
});
