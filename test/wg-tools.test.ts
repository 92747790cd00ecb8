/**
 * The stock wireguard-tools driving tsguard-wg: `wg setconf/addconf/syncconf/showconf`
 * round trips (checked against the expected config and against wireguard-go given the
 * same commands), and `wg-quick up/down` with WG_QUICK_USERSPACE_IMPLEMENTATION pointing
 * at tsguard-wg (split tunnel and full tunnel with fwmark policy routing), leaving nothing
 * behind.
 */
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  alive,
  daemonPid,
  genKeyPair,
  genPsk,
  INNER,
  nsRun,
  OUTER,
  ping,
  rand,
  run,
  shouldSkip,
  SOCKET_DIR,
  startDaemon,
  stopDaemon,
  teardownAll,
  Topology,
  TSGUARD_WG,
  waitFor,
  which,
  wg,
  netState,
  wireguardGoPeerB,
  type KeyPair,
} from './net/netns.js';

const SKIP = shouldSkip('wg-tools.test.ts', ['ip', 'wg', 'wg-quick', 'wireguard-go', 'iperf3', 'ping']);

/** Parse wg config text into a canonical form: interface keys sorted, peers sorted by key. */
function canon(text: string): string {
  const sections: { name: string; lines: string[] }[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    if (line.startsWith('[')) {
      sections.push({ name: line, lines: [] });
      continue;
    }
    const eq = line.indexOf('=');
    const key = line.slice(0, eq).trim();
    let value = line.slice(eq + 1).trim();
    if (key === 'AllowedIPs') value = value.split(',').map((s) => s.trim()).join(', ');
    sections.at(-1)!.lines.push(`${key} = ${value}`);
  }
  const render = (s: { name: string; lines: string[] }) => `${s.name}\n${[...s.lines].sort().join('\n')}\n`;
  const iface = sections.filter((s) => s.name === '[Interface]').map(render);
  const peers = sections.filter((s) => s.name === '[Peer]').map(render).sort();
  return [...iface, ...peers].join('\n');
}

describe.skipIf(SKIP)('wireguard-tools against tsguard-wg', () => {
  let t: Topology;

  beforeAll(async () => {
    t = await Topology.create();
  });
  afterAll(async () => {
    await teardownAll();
  });

  it('wg setconf / addconf / syncconf / showconf round trip (same result as wireguard-go)', async () => {
    const dir = t.tempDir();
    const ts = await startDaemon(t, t.a, 'tsguard', `tst${rand(3)}`);
    const go = await startDaemon(t, t.b!, 'wireguard-go', `wgt${rand(3)}`);
    try {
      const k = await genKeyPair();
      const [p1, p2, p3, p4] = await Promise.all([genKeyPair(), genKeyPair(), genKeyPair(), genKeyPair()]);
      const [psk1, psk2] = await Promise.all([genPsk(), genPsk()]);
      // Endpoints point at ports nothing listens on; nothing is routed to the TUNs (down).
      const c1 = `[Interface]
ListenPort = 41000
FwMark = 0x2a
PrivateKey = ${k.priv}

[Peer]
PublicKey = ${p1.pub}
PresharedKey = ${psk1}
AllowedIPs = fd01::/64, 10.1.0.0/24, 10.1.1.0/24
Endpoint = 192.168.241.9:51821
PersistentKeepalive = 25

[Peer]
PublicKey = ${p2.pub}
AllowedIPs = 10.2.0.2/32
Endpoint = [fd00:241::9]:51822
`;
      const c2 = `[Peer]
PublicKey = ${p2.pub}
AllowedIPs = 10.2.1.0/24, fd02::/56

[Peer]
PublicKey = ${p3.pub}
AllowedIPs = 10.3.0.0/16
Endpoint = 192.168.241.10:51823
`;
      // addconf keeps the other peers, but a [Peer] section read from a file replaces that
      // peer's allowed IPs (wg sets replace_allowed_ips for every file peer); its endpoint stays.
      const c2expected = `[Interface]
ListenPort = 41000
FwMark = 0x2a
PrivateKey = ${k.priv}

[Peer]
PublicKey = ${p1.pub}
PresharedKey = ${psk1}
AllowedIPs = fd01::/64, 10.1.0.0/24, 10.1.1.0/24
Endpoint = 192.168.241.9:51821
PersistentKeepalive = 25

[Peer]
PublicKey = ${p2.pub}
AllowedIPs = 10.2.1.0/24, fd02::/56
Endpoint = [fd00:241::9]:51822

[Peer]
PublicKey = ${p3.pub}
AllowedIPs = 10.3.0.0/16
Endpoint = 192.168.241.10:51823
`;
      const c3 = `[Interface]
ListenPort = 41001
PrivateKey = ${k.priv}

[Peer]
PublicKey = ${p1.pub}
PresharedKey = ${psk2}
AllowedIPs = 10.1.0.0/24, 10.11.0.0/16
Endpoint = [fd00:241::11]:51831

[Peer]
PublicKey = ${p3.pub}
AllowedIPs = 10.3.0.0/16
Endpoint = 192.168.241.10:51823

[Peer]
PublicKey = ${p4.pub}
AllowedIPs = 10.4.0.0/24, fd04::1/128
Endpoint = 192.168.241.12:51824
PersistentKeepalive = 15
`;
      // syncconf: FwMark absent from the file is reset, P1's keepalive off, P2 removed, P4 added.
      const c3file = c3.replace('ListenPort = 41001\n', 'ListenPort = 41001\nFwMark = off\n').replace(`Endpoint = [fd00:241::11]:51831\n`, 'Endpoint = [fd00:241::11]:51831\nPersistentKeepalive = off\n');
      const files = { c1, c2, c3: c3file };
      for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, `${name}.conf`), text, { mode: 0o600 });

      const both = async (args: string[]) => {
        await wg(ts.ns, args.map((a) => (a === 'IF' ? ts.ifname : a)));
        await wg(go.ns, args.map((a) => (a === 'IF' ? go.ifname : a)));
      };
      const showconf = async () => [await wg(ts.ns, ['showconf', ts.ifname]), await wg(go.ns, ['showconf', go.ifname])] as const;

      await both(['setconf', 'IF', join(dir, 'c1.conf')]);
      let [a, b] = await showconf();
      expect(canon(a)).toBe(canon(c1));
      expect(canon(a)).toBe(canon(b));

      await both(['addconf', 'IF', join(dir, 'c2.conf')]);
      [a, b] = await showconf();
      expect(canon(a)).toBe(canon(b));
      expect(canon(a)).toBe(canon(c2expected));

      await both(['syncconf', 'IF', join(dir, 'c3.conf')]);
      [a, b] = await showconf();
      expect(canon(a)).toBe(canon(b));
      expect(canon(a)).toBe(canon(c3));

      // syncconf with the same file again is a no-op.
      await both(['syncconf', 'IF', join(dir, 'c3.conf')]);
      [a, b] = await showconf();
      expect(canon(a)).toBe(canon(c3));

      // showconf output fed back with setconf reproduces itself.
      writeFileSync(join(dir, 'round.conf'), a, { mode: 0o600 });
      await both(['setconf', 'IF', join(dir, 'c1.conf')]);
      await wg(ts.ns, ['setconf', ts.ifname, join(dir, 'round.conf')]);
      const [again] = await showconf();
      expect(again).toBe(a);

      // Back to c1 with setconf (replace_peers): exactly c1 again.
      await both(['setconf', 'IF', join(dir, 'c1.conf')]);
      [a, b] = await showconf();
      expect(canon(a)).toBe(canon(c1));
      expect(canon(a)).toBe(canon(b));

      // wg set ... remove, and the allowed-ips / endpoints views agree with wireguard-go.
      await both(['set', 'IF', 'peer', p2.pub, 'remove']);
      for (const what of ['allowed-ips', 'endpoints', 'persistent-keepalive', 'preshared-keys', 'listen-port', 'fwmark', 'public-key', 'peers']) {
        const x = await wg(ts.ns, ['show', ts.ifname, what]);
        const y = await wg(go.ns, ['show', go.ifname, what]);
        expect(x.split('\n').sort(), `wg show ${what}`).toEqual(y.split('\n').sort());
      }
    } finally {
      await stopDaemon(ts);
      await stopDaemon(go);
    }
  });

  describe('wg-quick with WG_QUICK_USERSPACE_IMPLEMENTATION=tsguard-wg', () => {
    let wrapperDir: string;
    let wrapper: string;
    let shimPath: string | null = null;

    beforeAll(() => {
      wrapperDir = t.tempDir();
      wrapper = join(wrapperDir, 'tsguard-wg');
      writeFileSync(wrapper, `#!/bin/sh\nexec '${process.execPath}' '${TSGUARD_WG}' "$@"\n`);
      chmodSync(wrapper, 0o755);
      if (which('nft') === null && which('iptables-restore') === null) {
        // wg-quick's full-tunnel mode installs anti-spoofing rules with nft or iptables-restore.
        // Neither is installed: stand in a no-op nft so the rest (ip rules, fwmark) is still tested.
        console.warn('wg-tools.test.ts: neither nft nor iptables-restore is installed; using a no-op nft stand-in for wg-quick (install nftables to test its firewall rules too)');
        shimPath = join(wrapperDir, 'shim');
        mkdirSync(shimPath);
        writeFileSync(join(shimPath, 'nft'), '#!/bin/sh\nexit 0\n');
        chmodSync(join(shimPath, 'nft'), 0o755);
      }
    });

    const env = () => ({
      ...process.env,
      WG_QUICK_USERSPACE_IMPLEMENTATION: wrapper,
      ...(shimPath === null ? {} : { PATH: `${shimPath}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` }),
    });

    /** Everything wg-quick may add in namespace A (nft tables only when the real nft is used). */
    const netStateA = () => netState(t.a, shimPath === null);
    const peerB = (a: KeyPair) => wireguardGoPeerB(t, a.pub);

    for (const variant of ['split', 'full'] as const) {
      it(`${variant} tunnel: wg-quick up works through tsguard-wg, wg-quick down leaves nothing behind`, async () => {
        const a = await genKeyPair();
        const b = await peerB(a);
        const name = `tsgq${rand(3)}`;
        t.ifnames.add(name);
        const dir = t.tempDir();
        const conf = join(dir, `${name}.conf`);
        let endpoint = `${OUTER.b4}:51821`;
        const extra: (() => Promise<unknown>)[] = [];
        if (variant === 'full') {
          // Put B's endpoint off-link behind A's default route, so that only the fwmark keeps
          // the encrypted packets out of the tunnel's own default route.
          await run('ip', ['-n', t.b!, 'addr', 'add', '192.168.242.2/32', 'dev', 'vB']);
          await run('ip', ['-n', t.a, 'route', 'add', 'default', 'via', OUTER.b4, 'dev', 'vA']);
          extra.push(() => run('ip', ['-n', t.b!, 'addr', 'del', '192.168.242.2/32', 'dev', 'vB'], { allowFail: true }));
          extra.push(() => run('ip', ['-n', t.a, 'route', 'del', 'default', 'via', OUTER.b4, 'dev', 'vA'], { allowFail: true }));
          endpoint = '192.168.242.2:51821';
        }
        const allowed = variant === 'full' ? '0.0.0.0/0, ::/0' : `${INNER.b4}/32, ${INNER.b6}/128`;
        writeFileSync(
          conf,
          `[Interface]\nPrivateKey = ${a.priv}\nAddress = ${INNER.a4}/24, ${INNER.a6}/64\nListenPort = 51820\n\n[Peer]\nPublicKey = ${b.keys.pub}\nAllowedIPs = ${allowed}\nEndpoint = ${endpoint}\n`,
          { mode: 0o600 },
        );
        const before = await netStateA();
        let up = false;
        try {
          const r = await nsRun(t.a, 'wg-quick', ['up', conf], { env: env(), timeoutMs: 30_000 });
          up = true;
          expect(r.stderr).toContain('Falling back to slow userspace implementation');
          const pid = await daemonPid(t.a, name);
          expect(pid, 'tsguard-wg daemon started by wg-quick').not.toBeNull();
          expect(existsSync(`${SOCKET_DIR}/${name}.sock`)).toBe(true);
          const addrs = (await run('ip', ['-n', t.a, 'addr', 'show', 'dev', name])).stdout;
          expect(addrs).toContain(`inet ${INNER.a4}/24`);
          expect(addrs).toContain(`inet6 ${INNER.a6}/64`);
          expect((await run('ip', ['-n', t.a, 'link', 'show', 'dev', name])).stdout).toMatch(/mtu 1420 .*state (UNKNOWN|UP)/);
          if (variant === 'full') {
            const fwmark = (await wg(t.a, ['show', name, 'fwmark'])).trim();
            expect(fwmark).toMatch(/^0x[0-9a-f]+$/);
            const table = parseInt(fwmark, 16);
            for (const fam of [[], ['-6']]) {
              const rules = (await run('ip', ['-n', t.a, ...fam, 'rule'])).stdout;
              expect(rules).toMatch(new RegExp(`not from all fwmark ${fwmark} lookup ${table}`));
              expect(rules).toContain('from all lookup main suppress_prefixlength 0');
            }
          }
          for (const dst of [INNER.b4, INNER.b6]) {
            const p = await ping(t.a, dst, { count: 3, interval: 0.1, deadline: 10 });
            expect(p.received, `ping ${dst} through the wg-quick interface:\n${p.output}`).toBe(3);
          }
          if (variant === 'full') {
            // The handshake went out of the tunnel: B saw A at A's veth address.
            expect((await wg(t.b!, ['show', b.daemon.ifname, 'endpoints'])).trim()).toBe(`${a.pub}\t${OUTER.a4}:51820`);
          }
          await nsRun(t.a, 'wg-quick', ['down', conf], { env: env(), timeoutMs: 30_000 });
          up = false;
          await waitFor(`tsguard-wg (pid ${pid}) to exit after wg-quick down`, () => !alive(pid!), 10_000);
          expect(existsSync(`${SOCKET_DIR}/${name}.sock`)).toBe(false);
          expect((await run('ip', ['-n', t.a, 'link', 'show', 'dev', name], { allowFail: true })).code).not.toBe(0);
          expect(await netStateA()).toBe(before);
        } finally {
          if (up) await nsRun(t.a, 'wg-quick', ['down', conf], { env: env(), allowFail: true });
          await stopDaemon(b.daemon);
          for (const f of extra) await f();
        }
      });
    }
  });
});
