/**
 * `tsguard show` against `wg show` on the same daemons, byte for byte: every selector, the
 * pretty form with and without colours, `show all …` and `show interfaces` (in a private
 * /var/run/wireguard holding only this test's sockets plus a stale one, which both skip and
 * remove).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configurePair, genKeyPair, genPsk, ifname, nsRun, ping, run, shouldSkip, SOCKET_DIR, startDaemon, teardownAll, Topology, wg, which, type Pair } from './net/netns.js';
import { TSGUARD } from './helpers/proc.js';

const SKIP = shouldSkip('cli-show.test.ts', ['ip', 'wg', 'wireguard-go', 'ping', 'python3']);

const SELECTORS = ['public-key', 'private-key', 'listen-port', 'fwmark', 'peers', 'preshared-keys', 'endpoints', 'allowed-ips', 'latest-handshakes', 'persistent-keepalive', 'transfer', 'dump'];

describe.skipIf(SKIP)('tsguard show = wg show (network namespace)', () => {
  let t: Topology;
  let p: Pair;
  let bare: string;

  beforeAll(async () => {
    t = await Topology.create();
    p = await configurePair(t, 'tsguard', 'wireguard-go', { psk: true, keepalive: 25 });
    // More peers on A: no endpoint and no allowed IPs; many allowed IPs and a handshake-less psk; a fwmark.
    const [k1, k2] = await Promise.all([genKeyPair(), genKeyPair()]);
    const dir = t.tempDir();
    const psk = join(dir, 'psk');
    writeFileSync(psk, (await genPsk()) + '\n', { mode: 0o600 });
    await wg(p.a.ns, ['set', p.a.ifname, 'fwmark', '0x1f2e', 'peer', k1.pub, 'peer', k2.pub, 'preshared-key', psk, 'endpoint', '[fd00:241::99]:4242', 'allowed-ips', '10.9.0.0/16,fd09::/48,10.8.0.1/32,fd0a::/64']);
    expect((await ping(p.a.ns, p.b.inner4, { count: 3, wait: 5 })).received).toBeGreaterThan(0);
    // A second interface with nothing configured (no key, no peers).
    bare = ifname('tsz');
    await startDaemon(t, p.a.ns, 'tsguard', bare);
  }, 60_000);
  afterAll(async () => {
    await teardownAll();
  });

  /**
   * Run `tsguard ARGS`, `wg ARGS`, `tsguard ARGS` back to back in A (inside `prelude`'s shell) and
   * return wg's output and the tsguard output equal to it, if any (a clock tick or a counter may
   * change between two runs, never on both sides of wg's); retried a few times.
   */
  async function both(args: string[], env: Record<string, string> = {}, prelude = '', line = (cmd: string) => `${cmd} "$@"`): Promise<[string, string]> {
    const dir = t.tempDir();
    const ts = line(`${process.execPath} ${TSGUARD}`);
    const script = [prelude, `${ts} >${dir}/t1; echo $? >${dir}/c1`, `${line('wg')} >${dir}/w; echo $? >${dir}/cw`, `${ts} >${dir}/t2; echo $? >${dir}/c2`].join('\n');
    let last: [string, string] = ['', ''];
    for (let i = 0; i < 5; i++) {
      await nsRun(p.a.ns, 'sh', ['-c', script, 'sh', ...args], { env: { ...process.env, ...env }, timeoutMs: 20_000 });
      const [t1, w, t2, c1, cw, c2] = ['t1', 'w', 't2', 'c1', 'cw', 'c2'].map((f) => readFileSync(join(dir, f), 'utf8'));
      expect([c1, c2], `exit status of tsguard ${args.join(' ')}`).toEqual([cw, cw]);
      last = [w!, t1 === w ? t1 : t2!];
      if (last[0] === last[1]) break;
    }
    return last;
  }

  it('every selector and the pretty form of one interface', async () => {
    for (const sel of SELECTORS) {
      const [w, ts] = await both(['show', p.a.ifname, sel]);
      expect(ts, `show ${sel}`).toBe(w);
      expect(w.length, `wg show ${sel} printed something`).toBeGreaterThan(0);
    }
    for (const env of [{ WG_COLOR_MODE: 'never' }, { WG_COLOR_MODE: 'always' }, { WG_COLOR_MODE: 'always', WG_HIDE_KEYS: 'never' }]) {
      const [w, ts] = await both(['show', p.a.ifname], env);
      expect(ts, JSON.stringify(env)).toBe(w);
      expect(w).toContain('latest handshake');
      expect(w).toContain('transfer');
    }
    const [w, ts] = await both(['show', bare, 'dump']);
    expect(ts).toBe(w);
    expect(w).toMatch(/^\(none\)\t\(none\)\t\d+\toff\n$/);
    // Not a terminal and no WG_COLOR_MODE: no escape codes; on a terminal (script(1) gives one): wg's colours.
    expect((await both(['show', p.a.ifname]))[1]).not.toContain('\x1b[');
    if (which('script') !== null) {
      const [wt, tt] = await both([], {}, '', (cmd) => `script -qec '${cmd} show ${p.a.ifname}' /dev/null`);
      expect(tt).toBe(wt);
      expect(wt).toContain('\x1b[32m');
    }
  }, 180_000);

  it('show all …, show interfaces and a stale socket, in a private /var/run/wireguard', async () => {
    const dir = t.tempDir();
    // ip netns exec gives each command its own mount namespace: this tmpfs is seen by that command only.
    const prelude = [
      'set -e',
      `mkdir -p ${dir}/orig && mount --bind ${SOCKET_DIR} ${dir}/orig`,
      `mount -t tmpfs tsgshow ${SOCKET_DIR}`,
      ...[p.a.ifname, bare].map((n) => `touch ${SOCKET_DIR}/${n}.sock && mount --bind ${dir}/orig/${n}.sock ${SOCKET_DIR}/${n}.sock`),
      `python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('${SOCKET_DIR}/gone0.sock')"`,
      `echo not-a-socket > ${SOCKET_DIR}/file0.sock`,
    ].join('\n');
    // "show all endpoints" as wireguard-tools prints it since "show: fix show all endpoints output"
    // (b4f6b4f, 2023): Debian 12's wg (v1.0.20210914) puts the interface name once before the lines.
    const buggy = new Set(['endpoints']);
    for (const args of [['show'], ['show', 'all'], ['show', 'interfaces'], ...SELECTORS.filter((s) => !buggy.has(s)).map((s) => ['show', 'all', s])]) {
      const [w, ts] = await both(args, { WG_COLOR_MODE: 'never' }, prelude);
      expect(ts, args.join(' ')).toBe(w);
      expect(w, args.join(' ')).not.toContain('gone0');
    }
    const [wDump] = await both(['show', 'all', 'dump'], {}, prelude);
    const endpoints = wDump
      .split('\n')
      .map((l) => l.split('\t'))
      .filter((f) => f.length === 9)
      .map(([i, k, , ep]) => `${i}\t${k}\t${ep}\n`)
      .join('');
    const tsEndpoints = await nsRun(p.a.ns, 'sh', ['-c', `${prelude}\n${process.execPath} ${TSGUARD} show all endpoints`]);
    expect(tsEndpoints.stdout).toBe(endpoints);
    const [w] = await both(['show', 'interfaces'], {}, prelude);
    expect(w.trim().split(' ').sort()).toEqual([p.a.ifname, bare].sort());
    // The stale socket is removed (by whichever ran first), the other file is left alone.
    const after = await nsRun(p.a.ns, 'sh', ['-c', `${prelude}\n${process.execPath} ${TSGUARD} show interfaces >/dev/null; ls ${SOCKET_DIR}`]);
    expect(after.stdout.split('\n')).not.toContain('gone0.sock');
    expect(after.stdout.split('\n')).toContain('file0.sock');
    // Nothing to show: status 0, no output (as wg).
    const empty = `set -e\nmount -t tmpfs tsgshow ${SOCKET_DIR}`;
    expect(await both(['show'], {}, empty)).toEqual(['', '']);
  }, 180_000);

  it('usage errors exit 2 with a short message', async () => {
    const r = await run(process.execPath, [TSGUARD, 'show', p.a.ifname, 'nonsense'], { allowFail: true });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/invalid parameter "nonsense"/);
    expect(r.stdout).toBe('');
  });
});
