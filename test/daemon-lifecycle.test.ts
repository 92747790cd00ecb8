/**
 * tsguard-wg as a process: how it ends (interface deleted, SIGTERM, socket removed),
 * how it answers malformed UAPI input (errno reply, nothing changed, still serving), and
 * that garbage datagrams on its listen port change nothing.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  alive,
  configurePair,
  dump,
  ifname,
  nsRun,
  ping,
  run,
  shouldSkip,
  startDaemon,
  stopDaemon,
  teardownAll,
  Topology,
  TSGUARD_WG,
  waitFor,
  wg,
  type Daemon,
  type DumpPeer,
} from './net/netns.js';
import { uapiExchange, uapiGet } from './net/uapi.js';

const SKIP = shouldSkip('daemon-lifecycle.test.ts');

const linkExists = async (ns: string, name: string) => (await run('ip', ['-n', ns, 'link', 'show', 'dev', name], { allowFail: true })).code === 0;

async function expectGone(d: Daemon): Promise<void> {
  await waitFor(`${d.ifname} daemon (pid ${d.pid}) to exit`, () => !alive(d.pid), 10_000);
  await waitFor(`${d.socket} to disappear`, () => !existsSync(d.socket), 5000);
  await waitFor(`interface ${d.ifname} to disappear`, async () => !(await linkExists(d.ns, d.ifname)), 5000);
}

const hex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');

describe.skipIf(SKIP)('tsguard-wg daemon lifecycle', () => {
  let t: Topology;

  beforeAll(async () => {
    t = await Topology.create({ single: true });
  });
  afterAll(async () => {
    await teardownAll();
  });

  it('ends when its interface is deleted (ip link del): process and socket gone', async () => {
    const d = await startDaemon(t, t.a, 'tsguard', ifname('tsl'));
    expect(alive(d.pid)).toBe(true);
    await run('ip', ['-n', t.a, 'link', 'del', d.ifname]);
    await expectGone(d);
  });

  it('ends on SIGTERM: interface and socket removed', async () => {
    const d = await startDaemon(t, t.a, 'tsguard', ifname('tsl'));
    process.kill(d.pid, 'SIGTERM');
    await expectGone(d);
  });

  it('ends on SIGINT: interface and socket removed', async () => {
    const d = await startDaemon(t, t.a, 'tsguard', ifname('tsl'));
    process.kill(d.pid, 'SIGINT');
    await expectGone(d);
  });

  it('ends when its socket file is removed: interface removed', async () => {
    const d = await startDaemon(t, t.a, 'tsguard', ifname('tsl'));
    unlinkSync(d.socket);
    await expectGone(d);
  });

  it('refuses to start a second daemon for a live interface and leaves the first one serving', async () => {
    const d = await startDaemon(t, t.a, 'tsguard', ifname('tsl'));
    try {
      const r = await nsRun(t.a, process.execPath, [TSGUARD_WG, d.ifname], { allowFail: true, timeoutMs: 20_000 });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/tsguard-wg: .+/);
      expect(alive(d.pid)).toBe(true);
      expect(existsSync(d.socket)).toBe(true);
      expect(await uapiGet(d.socket)).toMatch(/^listen_port=\d+\n$/);
    } finally {
      await stopDaemon(d);
    }
    await expectGone(d);
  });

  describe('malformed UAPI input', () => {
    let d: Daemon;
    let baseline: string;
    let peerHex: string;

    beforeAll(async () => {
      d = await startDaemon(t, t.a, 'tsguard', ifname('tsu'));
      const dir = t.tempDir();
      const priv = (await run('wg', ['genkey'])).stdout.trim();
      const peerPub = (await run('wg', ['pubkey'], { input: (await run('wg', ['genkey'])).stdout })).stdout.trim();
      const psk = (await run('wg', ['genpsk'])).stdout.trim();
      writeFileSync(`${dir}/k`, priv + '\n', { mode: 0o600 });
      writeFileSync(`${dir}/psk`, psk + '\n', { mode: 0o600 });
      peerHex = hex(peerPub);
      // The endpoint is inside the namespace's own subnet and nothing is ever sent to it
      // (no keepalive, interface down).
      await wg(t.a, ['set', d.ifname, 'private-key', `${dir}/k`, 'listen-port', '40000', 'peer', peerPub, 'preshared-key', `${dir}/psk`, 'endpoint', '192.168.241.2:51821', 'allowed-ips', '10.1.0.0/24,fd01::/64']);
      baseline = await uapiGet(d.socket);
      expect(baseline).toContain(`public_key=${peerHex}\n`);
      expect(baseline).toContain('listen_port=40000\n');
    });

    afterAll(async () => {
      if (d) await stopDaemon(d);
    });

    const newKeyHex = () => randomBytes(32).toString('hex');
    const cases: { name: string; req: () => string; errno?: number }[] = [
      { name: 'unknown device key', req: () => 'set=1\nfoo=bar\n\n', errno: -22 },
      { name: 'valid lines, then an unknown key (nothing applied)', req: () => `set=1\nlisten_port=40001\nreplace_peers=true\nfoo=bar\n\n`, errno: -22 },
      { name: 'bad hex private_key', req: () => `set=1\nlisten_port=40001\nprivate_key=${'zz'.repeat(32)}\n\n`, errno: -22 },
      { name: 'short private_key', req: () => `set=1\nprivate_key=abcd\n\n`, errno: -22 },
      { name: 'bad endpoint (no port)', req: () => `set=1\npublic_key=${peerHex}\nendpoint=192.168.241.9\n\n`, errno: -22 },
      { name: 'bad endpoint (garbage)', req: () => `set=1\npublic_key=${peerHex}\nendpoint=not-an-endpoint:x\n\n`, errno: -22 },
      { name: 'bad endpoint (unclosed IPv6 bracket)', req: () => `set=1\npublic_key=${peerHex}\nendpoint=[fd00::1:51820\n\n`, errno: -22 },
      { name: 'bad endpoint (port out of range)', req: () => `set=1\npublic_key=${peerHex}\nendpoint=192.168.241.9:70000\n\n`, errno: -22 },
      { name: 'peer key (endpoint=) before any public_key', req: () => 'set=1\nendpoint=192.168.241.9:51820\n\n', errno: -22 },
      { name: 'peer key (allowed_ip=) before any public_key', req: () => 'set=1\nallowed_ip=10.9.0.0/16\n\n', errno: -22 },
      { name: 'new peer then a bad allowed_ip (peer not created)', req: () => `set=1\npublic_key=${newKeyHex()}\nallowed_ip=10.9.0.0/16\nallowed_ip=10.9.0.0/33\n\n`, errno: -22 },
      { name: 'remove then bad line (peer not removed)', req: () => `set=1\npublic_key=${peerHex}\nremove=true\npersistent_keepalive_interval=70000\n\n`, errno: -22 },
      { name: 'replace_allowed_ips then bad allowed_ip', req: () => `set=1\npublic_key=${peerHex}\nreplace_allowed_ips=true\nallowed_ip=fd01::/129\n\n`, errno: -22 },
      { name: 'listen_port out of range', req: () => 'set=1\nlisten_port=65536\n\n', errno: -22 },
      { name: 'line without "="', req: () => 'set=1\nnoequals\n\n', errno: -71 },
      { name: 'protocol_version=2', req: () => `set=1\npublic_key=${peerHex}\nprotocol_version=2\n\n`, errno: -22 },
      { name: 'garbage operation line', req: () => 'hello=world\n\n', errno: -22 },
      { name: 'binary garbage operation', req: () => '\x00\x01\x02\xff garbage\n\n' },
      { name: 'trailing data after get=1', req: () => 'get=1\nlisten_port=1\n\n', errno: -22 },
      { name: 'huge line (> 4 KiB) in a set', req: () => `set=1\nlisten_port=40001\n${'x'.repeat(8192)}\n\n` },
      { name: 'huge line (> 4 KiB) without newline', req: () => 'y'.repeat(64 * 1024) },
      { name: 'huge allowed_ip value (> 4 KiB)', req: () => `set=1\npublic_key=${peerHex}\nallowed_ip=${'1'.repeat(5000)}\n\n` },
    ];

    for (const c of cases) {
      it(`${c.name}: errno reply, config unchanged, still serving`, async () => {
        const r = await uapiExchange(d.socket, c.req());
        if (c.errno !== undefined) {
          expect(r.errnos, `reply was ${JSON.stringify(r.text)}`).toEqual([c.errno]);
        } else {
          // An errno reply or a closed connection are both acceptable; never errno=0.
          expect(r.errnos.every((e) => e < 0), `reply was ${JSON.stringify(r.text)}`).toBe(true);
          expect(r.errnos.length > 0 || r.closed).toBe(true);
        }
        expect(alive(d.pid)).toBe(true);
        expect(await uapiGet(d.socket)).toBe(baseline);
      });
    }

    it('several operations on one connection: get twice, set then get', async () => {
      const two = await uapiExchange(d.socket, 'get=1\n\nget=1\n\n', 2);
      expect(two.errnos).toEqual([0, 0]);
      expect(two.text).toBe(`${baseline}errno=0\n\n${baseline}errno=0\n\n`);

      const sg = await uapiExchange(d.socket, 'set=1\nlisten_port=40002\n\nget=1\n\nset=1\nlisten_port=40000\n\nget=1\n\n', 4);
      expect(sg.errnos).toEqual([0, 0, 0, 0]);
      const gets = sg.text.split('errno=0\n\n');
      expect(gets[1]).toBe(baseline.replace('listen_port=40000\n', 'listen_port=40002\n'));
      expect(gets[3]).toBe(baseline);

      // A failed set does not end the connection's ability to carry a following get.
      const fg = await uapiExchange(d.socket, 'set=1\nfoo=bar\n\nget=1\n\n', 2);
      expect(fg.errnos).toEqual([-22, 0]);
      expect(await uapiGet(d.socket)).toBe(baseline);
    });

    it('a request split into many small writes is handled', async () => {
      const text = await new Promise<string>((resolve, reject) => {
        const c = net.connect(d.socket);
        let out = '';
        c.setEncoding('utf8');
        c.on('data', (x: string) => {
          out += x;
          if (out.endsWith('errno=0\n\n')) {
            c.destroy();
            resolve(out);
          }
        });
        c.on('error', reject);
        const req = 'get=1\n\n';
        let i = 0;
        const step = () => {
          if (i < req.length) {
            c.write(req[i++]!);
            setTimeout(step, 5);
          }
        };
        c.on('connect', step);
        setTimeout(() => reject(new Error('timeout')), 5000).unref();
      });
      expect(text).toBe(`${baseline}errno=0\n\n`);
    });

    it('many concurrent connections, some malformed, do not disturb each other', async () => {
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? uapiExchange(d.socket, 'get=1\n\n') : uapiExchange(d.socket, 'set=1\nfoo=bar\n\n'))),
      );
      results.forEach((r, i) => {
        if (i % 2 === 0) expect(r.text).toBe(`${baseline}errno=0\n\n`);
        else expect(r.errnos).toEqual([-22]);
      });
      expect(await uapiGet(d.socket)).toBe(baseline);
    });

    it('a client that disconnects mid-operation leaves the daemon serving and the config unchanged', async () => {
      await new Promise<void>((resolve) => {
        const c = net.connect(d.socket);
        c.on('connect', () => {
          c.write(`set=1\nlisten_port=40003\nreplace_peers=true\n`); // no terminating blank line
          setTimeout(() => {
            c.destroy();
            resolve();
          }, 100);
        });
        c.on('error', () => resolve());
      });
      expect(await uapiGet(d.socket)).toBe(baseline);
    });

    // A set that fails while being applied (EADDRINUSE from the rebind) must not have applied
    // the lines before it: applySet binds the new port before changing anything else.
    it('a set failing with EADDRINUSE changes nothing (private_key and replace_peers before listen_port)', async () => {
      // Own daemons: this one may end up changed.
      const victim = await startDaemon(t, t.a, 'tsguard', ifname('tsv'));
      const holder = await startDaemon(t, t.a, 'tsguard', ifname('tsh'));
      try {
        await wg(t.a, ['set', holder.ifname, 'listen-port', '40010']);
        const setup = await uapiExchange(victim.socket, `set=1\nprivate_key=${newKeyHex()}\nlisten_port=40011\npublic_key=${peerHex}\nallowed_ip=10.1.0.0/24\n\n`);
        expect(setup.errnos).toEqual([0]);
        const before = await uapiGet(victim.socket);
        const r = await uapiExchange(victim.socket, `set=1\nprivate_key=${newKeyHex()}\nreplace_peers=true\nlisten_port=40010\n\n`);
        expect(r.errnos).toEqual([-98]);
        expect(await uapiGet(victim.socket)).toBe(before);
      } finally {
        await stopDaemon(victim);
        await stopDaemon(holder);
      }
    });
  });

  describe('garbage datagrams on the listen port', () => {
    for (const peer of ['wireguard-go', 'tsguard'] as const) {
      it(`change nothing: tunnel to ${peer} keeps working, peer state unchanged except counters`, async () => {
        const t2 = await Topology.create();
        try {
          const p = await configurePair(t2, 'tsguard', peer);
          const ok = async () => {
            for (const [from, to] of [
              [p.a, p.b.inner4],
              [p.b, p.a.inner4],
              [p.a, p.b.inner6],
            ] as const) {
              const r = await ping(from.ns, to, { count: 3, interval: 0.1 });
              expect(r.received, r.output).toBeGreaterThanOrEqual(3);
            }
          };
          await ok();
          const before = (await dump(p.a.ns, p.a.ifname)).peers[0]!;
          const datagrams = garbage();
          const sent = await sendDatagrams(p.b.ns, [p.a.outer4, p.a.outer6], p.a.port, datagrams);
          expect(sent).toBe(datagrams.length * 2);
          // And a burst of bogus handshake initiations (load path: cookies, rate limiting).
          const burst = Array.from({ length: 3000 }, () => typed(1, 148));
          await sendDatagrams(p.b.ns, [p.a.outer4], p.a.port, burst);
          expect(alive(p.a.daemon.pid)).toBe(true);
          const mid = (await dump(p.a.ns, p.a.ifname)).peers[0]!;
          expect(stable(mid)).toEqual(stable(before));
          await ok();
          const after = (await dump(p.a.ns, p.a.ifname)).peers[0]!;
          expect(stable(after)).toEqual(stable(before));
          expect(after.rx).toBeGreaterThan(before.rx);
          const iface = await dump(p.a.ns, p.a.ifname);
          expect(iface.iface.listenPort).toBe(String(p.a.port));
        } finally {
          await t2.teardown();
        }
      });
    }
  });
});

/** Peer fields that garbage must not change (everything but the counters). */
function stable(p: DumpPeer) {
  return { publicKey: p.publicKey, presharedKey: p.presharedKey, endpoint: p.endpoint, allowedIps: p.allowedIps, latestHandshake: p.latestHandshake, keepalive: p.keepalive };
}

/** A message of `type` (reserved bytes zero) of `len` bytes with random contents. */
function typed(type: number, len: number): Buffer {
  const b = randomBytes(Math.max(len, 1));
  if (len >= 1) b[0] = type;
  if (len >= 4) b.fill(0, 1, 4);
  return b.subarray(0, len);
}

function garbage(): Buffer[] {
  const out: Buffer[] = [];
  for (const len of [0, 1, 3, 4, 5, 16, 31, 32, 33, 64, 91, 92, 93, 147, 148, 149, 500, 1400]) {
    out.push(randomBytes(len));
  }
  for (const type of [0, 1, 2, 3, 4, 5, 255]) {
    for (const len of [1, 4, 8, 16, 31, 32, 48, 63, 64, 65, 91, 92, 93, 147, 148, 149, 200, 1452]) out.push(typed(type, len));
  }
  // Transport messages with unknown receiver indices, keepalive-sized and with payload.
  for (let i = 0; i < 50; i++) out.push(typed(4, i % 2 === 0 ? 32 : 32 + 16 * (1 + (i % 10))));
  // Valid type, non-zero reserved bytes.
  for (const type of [1, 2, 3, 4]) {
    const b = typed(type, [148, 92, 64, 48][type - 1]!);
    b[2] = 0xff;
    out.push(b);
  }
  return out;
}

/** Send datagrams from inside `ns` (ephemeral source port) to each host:port. Returns how many were sent. */
async function sendDatagrams(ns: string, hosts: string[], port: number, datagrams: Buffer[]): Promise<number> {
  const script = `
    const dgram = require('node:dgram');
    let input = '';
    process.stdin.on('data', (d) => (input += d));
    process.stdin.on('end', async () => {
      const { hosts, port, datagrams } = JSON.parse(input);
      let sent = 0;
      for (const host of hosts) {
        const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
        for (const d of datagrams) {
          await new Promise((res) => s.send(Buffer.from(d, 'base64'), port, host, (err) => { if (!err) sent++; res(); }));
        }
        s.close();
      }
      process.stdout.write(String(sent));
    });`;
  const input = JSON.stringify({ hosts, port, datagrams: datagrams.map((d) => d.toString('base64')) });
  const r = await nsRun(ns, process.execPath, ['-e', script], { input, timeoutMs: 60_000 });
  return Number(r.stdout);
}
