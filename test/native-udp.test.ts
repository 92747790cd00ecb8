/**
 * Native UDP sockets. Traffic goes to loopback only (127.0.0.1 and ::1 of
 * this host), or, for unreachable destinations, inside a network namespace
 * created (and removed) here.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { runChild } from './helpers/native-child.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import type { Endpoint } from '../src/device/types.js';
import type { NativeError } from '../src/io/native.js';
import { UdpSocket } from '../src/io/udp.js';

const ep = (host: string, port: number): Endpoint => UdpSocket.endpoint(host, port);
const eps = (n: number, host: string, port: number): Endpoint[] => Array(n).fill(ep(host, port)) as Endpoint[];

const isRoot = process.getuid?.() === 0;
if (!isRoot) {
  console.warn('test/native-udp.test.ts: UDP tests skipped, they need root (SO_MARK, network namespaces)');
}
const hasIpv6 = existsSync('/proc/sys/net/ipv6/conf/lo');


interface Received {
  data: string;
  bytes: Buffer;
  host: string;
  port: number;
  from: Endpoint;
}

/** Collects datagrams until `count` arrived. */
function collector(sock: UdpSocket): {
  received: Received[];
  batches: number[];
  errors: NativeError[];
  sendErrors: NativeError[];
  waitFor(count: number): Promise<void>;
} {
  const received: Received[] = [];
  const batches: number[] = [];
  const errors: NativeError[] = [];
  const sendErrors: NativeError[] = [];
  let want = Infinity;
  let wake: (() => void) | undefined;
  sock.start(
    (datas, froms) => {
      batches.push(datas.length);
      expect(datas.length).toBe(froms.length);
      datas.forEach((d, i) => {
        expect(d).toBeInstanceOf(Uint8Array);
        const from = froms[i]!;
        const bytes = Buffer.from(d.buffer, d.byteOffset, d.byteLength);
        received.push({ data: bytes.toString(), bytes, host: from.host, port: from.port, from });
      });
      if (received.length >= want) wake?.();
    },
    (err) => errors.push(err),
    (err) => {
      sendErrors.push(err);
      wake?.();
    },
  );
  return {
    received,
    batches,
    errors,
    sendErrors,
    waitFor(count: number) {
      want = count;
      if (received.length >= count) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`got ${received.length} of ${count} datagrams`)), 10_000);
        wake = () => {
          if (received.length >= want) {
            clearTimeout(timer);
            resolve();
          }
        };
      });
    },
  };
}

function until(cond: () => boolean, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 10_000;
    const tick = (): void => {
      if (cond()) resolve();
      else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, 5);
    };
    tick();
  });
}

describe.skipIf(!isRoot)('native UDP on loopback', () => {
  const open: UdpSocket[] = [];
  const bind = (...args: Parameters<typeof UdpSocket.bind>): UdpSocket => {
    const s = UdpSocket.bind(...args);
    open.push(s);
    return s;
  };
  afterEach(() => {
    for (const s of open.splice(0)) s.close();
  });

  it('binds dual-stack to an ephemeral port', () => {
    const s = bind({ port: 0 });
    expect(s.port).toBeGreaterThan(0);
    expect(s.port).toBeLessThan(65536);
    expect(s.family).toBe(hasIpv6 ? 'dual' : '4');
    const s4 = bind({ port: 0, family: '4' });
    expect(s4.family).toBe('4');
    expect(s4.port).toBeGreaterThan(0);
  });

  it('sizes the receive buffer for bursts (7 MiB), TSGUARD_UDP_RCVBUF overrides it', () => {
    // The kernel reports twice the size asked for (it adds its bookkeeping overhead).
    const rcvbuf = (port: number): number => {
      const out = execFileSync('ss', ['-uamnH', 'sport', '=', `:${port}`], { encoding: 'utf8' });
      const m = /skmem:\([^)]*\brb(\d+)/.exec(out);
      if (m === null) throw new Error(`no skmem for UDP port ${port} in: ${out}`);
      return Number(m[1]);
    };
    expect(rcvbuf(bind({ port: 0 }).port)).toBe(2 * 7 * 1024 * 1024);
    const saved = process.env.TSGUARD_UDP_RCVBUF;
    try {
      process.env.TSGUARD_UDP_RCVBUF = '1048576';
      expect(rcvbuf(bind({ port: 0 }).port)).toBe(2 * 1048576);
      process.env.TSGUARD_UDP_RCVBUF = '0'; // the kernel default
      const def = Number(readFileSync('/proc/sys/net/core/rmem_default', 'utf8').trim());
      expect(rcvbuf(bind({ port: 0 }).port)).toBe(def);
    } finally {
      if (saved === undefined) delete process.env.TSGUARD_UDP_RCVBUF;
      else process.env.TSGUARD_UDP_RCVBUF = saved;
    }
  });

  it('reports EADDRINUSE for a taken port', () => {
    const s = bind({ port: 0 });
    expect(() => bind({ port: s.port })).toThrow(expect.objectContaining({ code: 'EADDRINUSE', syscall: 'bind' }));
  });

  it('sets and clears a fwmark', () => {
    const s = bind({ port: 0, fwmark: 0x5147 });
    s.setFwmark(0x1234);
    s.setFwmark(0);
    expect(() => s.setFwmark(-1)).toThrow(RangeError);
  });

  it('exchanges batches over IPv4 with sources reported as plain IPv4', async () => {
    const a = bind({ port: 0 });
    const b = bind({ port: 0 });
    const ca = collector(a);
    const cb = collector(b);
    const n = 200;
    const datas = Array.from({ length: n }, (_, i) => Buffer.from(`v4-${i}`));
    const sent = a.sendBatch(datas, eps(n, '127.0.0.1', b.port));
    expect(sent).toBe(n);
    await cb.waitFor(n);
    expect(cb.received.map((r) => r.data)).toEqual(datas.map(String));
    for (const r of cb.received) expect(r).toMatchObject({ host: '127.0.0.1', port: a.port });
    // One source, one endpoint object (across batches too), with its bytes at hand.
    expect(new Set(cb.received.map((r) => r.from)).size).toBe(1);
    expect([...(cb.received[0]!.from.ip ?? [])]).toEqual([127, 0, 0, 1]);
    for (const size of cb.batches) expect(size).toBeLessThanOrEqual(128);
    expect(b.stats.rxBatches).toBe(cb.batches.length);

    // Reply to the reported sources, with a count smaller than the arrays.
    expect(b.sendBatch(datas, cb.received.map((r) => r.from), 3)).toBe(3);
    // IPv4-mapped IPv6 text works too.
    expect(b.send(Buffer.from('mapped'), ep('::ffff:127.0.0.1', a.port))).toBe(true);
    await ca.waitFor(4);
    expect(ca.received.map((r) => r.data)).toEqual(['v4-0', 'v4-1', 'v4-2', 'mapped']);
    for (const r of ca.received) expect(r).toMatchObject({ host: '127.0.0.1', port: b.port });
    expect(a.stats.txDatagrams).toBe(n);
    expect(ca.errors).toEqual([]);
    expect(cb.errors).toEqual([]);
  });

  it('takes turns with the handle it yields to once a wake has had its 0.5 ms, instead of eight batches', async () => {
    // Without UDP GRO every datagram is one message: a round of recvmmsg takes 64 of them.
    const saved = process.env['TSGUARD_UDP_GRO'];
    process.env['TSGUARD_UDP_GRO'] = '0';
    let x: UdpSocket;
    let y: UdpSocket;
    try {
      x = bind({ port: 0 });
      y = bind({ port: 0 });
    } finally {
      if (saved === undefined) delete process.env['TSGUARD_UDP_GRO'];
      else process.env['TSGUARD_UDP_GRO'] = saved;
    }
    const s = bind({ port: 0 });
    const n = 1500;
    // Both have input before either starts reading: x a backlog, y one datagram.
    expect(s.sendBatch(Array.from({ length: n }, (_, i) => Buffer.from(`bulk-${i}`)), eps(n, '127.0.0.1', x.port))).toBe(n);
    expect(s.send(Buffer.from('sparse'), ep('127.0.0.1', y.port))).toBe(true);
    await until(() => /\bskmem:\(r[1-9]/.test(execFileSync('ss', ['-uamnH', 'sport', '=', `:${y.port}`], { encoding: 'utf8' })), 'the datagram to y');
    x.yieldTo(y);
    y.yieldTo(x);
    const order: string[] = [];
    let xCount = 0;
    x.start((datas) => {
      xCount += datas.length;
      order.push(`x${datas.length}`);
      // Each batch takes 1 ms, so a wake has used its time after the first.
      const until1ms = performance.now() + 1;
      while (performance.now() < until1ms);
    }, () => undefined);
    y.start(() => order.push(`y:after ${xCount}`), () => undefined);
    await until(() => xCount === n && order.some((o) => o.startsWith('y')), 'both sockets to read everything');
    // Whichever the loop served first, y did not wait for more than one of x's batches (64 datagrams).
    // (Without yieldTo, x takes eight batches per wake.)
    const yAt = order.findIndex((o) => o.startsWith('y'));
    expect(order.slice(0, yAt).length).toBeLessThanOrEqual(1);
    expect(Number(order[yAt]!.slice('y:after '.length))).toBeLessThanOrEqual(64);
  });

  it.each(['1', '0'])('sends runs of equal datagrams intact, in order, with UDP GSO %s', async (gso) => {
    const saved = process.env['TSGUARD_UDP_GSO'];
    process.env['TSGUARD_UDP_GSO'] = gso; // read when the socket is created
    let a: UdpSocket;
    try {
      a = bind({ port: 0 });
    } finally {
      if (saved === undefined) delete process.env['TSGUARD_UDP_GSO'];
      else process.env['TSGUARD_UDP_GSO'] = saved;
    }
    const b = bind({ port: 0 });
    const c = bind({ port: 0 });
    const cb = collector(b);
    const cc = collector(c);
    // 40 equal datagrams, a shorter one (ends a run), 20 more with one to another destination in the
    // middle, then 70 in a row (more than one GSO message holds). Small, so that all of them fit the
    // receivers' default socket buffers until they read.
    const datas: Buffer[] = [];
    const ports: number[] = [];
    const add = (len: number, port: number) => {
      const d = Buffer.alloc(len, datas.length & 0xff);
      d.writeUInt32BE(datas.length, 0);
      datas.push(d);
      ports.push(port);
    };
    for (let i = 0; i < 40; i++) add(200, b.port);
    add(100, b.port);
    for (let i = 0; i < 20; i++) add(200, i === 10 ? c.port : b.port);
    for (let i = 0; i < 70; i++) add(150, b.port);
    const toBEp = ep('127.0.0.1', b.port);
    const toCEp = ep('127.0.0.1', c.port);
    expect(a.sendBatch(datas, ports.map((p) => (p === b.port ? toBEp : toCEp)))).toBe(datas.length);
    const toB = datas.filter((_, i) => ports[i] === b.port);
    await cb.waitFor(toB.length);
    await cc.waitFor(1);
    expect(cb.received.map((r) => r.bytes.toString('hex'))).toEqual(toB.map((d) => d.toString('hex')));
    expect(cc.received.map((r) => r.bytes.readUInt32BE(0))).toEqual([51]);
    expect(a.stats.txDatagrams).toBe(datas.length);
    expect(a.stats.txBytes).toBe(datas.reduce((n, d) => n + d.length, 0));
    expect(a.stats.txErrors).toBe(0);
    // GSO messages: 40 + the short one, 10, (the one to c goes alone), 9 + the first 150-byte one, 64, 5.
    expect(a.stats.txGsoMessages).toBe(gso === '1' ? 5 : 0);
    // With UDP GRO (Linux ≥ 5.12) the receiver gets each GSO run as one message and cuts it apart.
    if (b.stats.gro && gso === '1') expect(b.stats.rxGroDatagrams).toBeGreaterThan(0);
    if (gso === '0') expect(b.stats.rxGroDatagrams).toBe(0);
  });

  it.skipIf(!hasIpv6)('exchanges batches over IPv6 (::1)', async () => {
    const a = bind({ port: 0 });
    const b = bind({ port: 0 });
    collector(a);
    const cb = collector(b);
    const n = 100;
    const datas = Array.from({ length: n }, (_, i) => new Uint8Array([i, i + 1, i + 2]));
    expect(a.sendBatch(datas, eps(n, '::1', b.port))).toBe(n);
    await cb.waitFor(n);
    cb.received.forEach((r, i) => {
      expect(r.host).toBe('::1');
      expect(r.port).toBe(a.port);
      expect([...r.bytes]).toEqual([i, i + 1, i + 2]);
    });
    expect(a.stats.txBytes).toBe(3 * n);
    expect(b.stats.rxBytes).toBe(3 * n);
  });

  it('throws on invalid destinations before sending anything', () => {
    const a = bind({ port: 0 });
    const d = [Buffer.from('1'), Buffer.from('2')];
    for (const bad of ['not-an-ip', '1.2.3', '[::1]', '::1::2', '']) {
      expect(() => ep(bad, 9)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ADDRESS' }));
      // An endpoint made elsewhere (not by the socket) is encoded on first use.
      expect(() => a.sendBatch(d, [ep('127.0.0.1', 9), { host: bad, port: 9 }])).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ADDRESS' }),
      );
    }
    expect(() => ep('127.0.0.1', 70000)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ADDRESS' }));
    expect(() => a.sendBatch(d, [ep('127.0.0.1', 9)])).toThrow(RangeError);
    expect(() => a.send(Buffer.from('x'), { host: 'example.com', port: 9 })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ADDRESS' }),
    );
    expect(a.stats.txDatagrams).toBe(0);
  });

  it('counts port 0 as a per-datagram error', async () => {
    const a = bind({ port: 0 });
    const ca = collector(a);
    expect(a.send(Buffer.from('x'), { host: '127.0.0.1', port: 0 })).toBe(false);
    await until(() => ca.sendErrors.length === 1, 'the send error report');
    expect(ca.sendErrors[0]).toMatchObject({ code: 'EINVAL', address: '127.0.0.1', port: 0 });
  });

  it('counts and reports IPv6 destinations on an IPv4 socket without throwing', async () => {
    const a = bind({ port: 0, family: '4' });
    const b = bind({ port: 0, family: '4' });
    const ca = collector(a);
    const cb = collector(b);
    const sent = a.sendBatch([Buffer.from('x'), Buffer.from('y')], [ep('::1', b.port), ep('127.0.0.1', b.port)]);
    expect(sent).toBe(1);
    await cb.waitFor(1);
    await until(() => ca.sendErrors.length === 1, 'the send error report');
    expect(ca.sendErrors[0]).toMatchObject({ code: 'EAFNOSUPPORT', address: '::1', port: b.port });
    expect(a.stats).toMatchObject({ txDatagrams: 1, txErrors: 1, lastTxError: 'EAFNOSUPPORT' });
  });

  it.skipIf(!hasIpv6)('treats an unknown IPv6 scope interface as a per-datagram error', async () => {
    const a = bind({ port: 0 });
    const ca = collector(a);
    expect(a.send(Buffer.from('x'), ep('fe80::1%tsgnosuchif0', 9))).toBe(false);
    expect(() => ep('fe80::1%', 9)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ADDRESS' }));
    await until(() => ca.sendErrors.length === 1, 'the send error report');
    expect(ca.sendErrors[0]).toMatchObject({ code: 'ENODEV', address: 'fe80::1', port: 9 });
    expect(a.stats.txDatagrams).toBe(0);
  });

  it('close is idempotent and later sends throw a clear error', () => {
    const a = bind({ port: 0 });
    a.close();
    a.close();
    expect(a.closed).toBe(true);
    expect(() => a.send(Buffer.from('x'), ep('127.0.0.1', 9))).toThrow(
      expect.objectContaining({ code: 'ERR_SOCKET_NOT_BOUND' }),
    );
  });
});


describe.skipIf(!isRoot)('native UDP in network namespaces', () => {
  const id = randomBytes(4).toString('hex');
  const ns = `tsgtest-${id}`;
  const peerNs = `tsgtest-${id}-peer`;

  beforeAll(() => {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['netns', 'add', peerNs]);
  });

  afterAll(() => {
    for (const n of [ns, peerNs]) {
      try {
        execFileSync('ip', ['netns', 'del', n]);
      } catch {
        // never created or already gone
      }
    }
  });

  it('counts and reports ENETUNREACH per datagram and still sends the rest of the batch', async () => {
    const r = await runChild(ns, 'udp-unreachable');
    expect(r.syncThrow).toBeNull();
    expect(r.accepted).toBe(2);
    // Reported asynchronously, never from inside sendBatch.
    expect(r.sendErrorsRightAfter).toBe(0);
    expect(r.sendErrors).toEqual([
      expect.objectContaining({ code: 'ENETUNREACH', syscall: 'sendmmsg', address: '10.200.0.1', port: 9 }),
      expect.objectContaining({ code: 'ENETUNREACH', address: 'fd00:dead::1', port: 9 }),
    ]);
    expect(r.received.map((x: Received) => [x.data, x.host])).toEqual([
      ['ok1', '127.0.0.1'],
      ['ok2', '::1'],
    ]);
    expect(r.stats).toMatchObject({ txDatagrams: 2, txErrors: 2, lastTxError: 'ENETUNREACH' });
  });

  it('queues datagrams on EAGAIN, drops the oldest beyond the bound and flushes when writable', async () => {
    // A veth pair between the two namespaces; a slow tbf qdisc on the sending
    // side keeps the packets charged to the socket so its buffer fills up.
    const ip = (...a: string[]): void => void execFileSync('ip', a);
    ip('-n', ns, 'link', 'add', 'tsgq0', 'type', 'veth', 'peer', 'name', 'tsgq1', 'netns', peerNs);
    ip('-n', ns, 'addr', 'add', '10.97.0.1/24', 'dev', 'tsgq0');
    ip('-n', peerNs, 'addr', 'add', '10.97.0.2/24', 'dev', 'tsgq1');
    ip('-n', ns, 'link', 'set', 'tsgq0', 'up');
    ip('-n', peerNs, 'link', 'set', 'tsgq1', 'up');
    const link = JSON.parse(execFileSync('ip', ['-n', peerNs, '-j', 'link', 'show', 'tsgq1']).toString()) as {
      address: string;
    }[];
    ip('-n', ns, 'neigh', 'replace', '10.97.0.2', 'lladdr', link[0]!.address, 'dev', 'tsgq0', 'nud', 'permanent');
    execFileSync('tc', ['-n', ns, 'qdisc', 'replace', 'dev', 'tsgq0', 'root', 'tbf', 'rate', '100mbit', 'burst', '32kb', 'limit', '100mb']);

    const n = 8000; // 11 MB: more than the socket buffer (4 MiB asked, doubled by the kernel) and the queue
    const r = await runChild(ns, 'udp-eagain', '10.97.0.2', '9', String(n), '1400');
    expect(r.errors).toEqual([]);
    expect(r.accepted).toBe(n);
    expect(r.afterSend.txQueuedTotal).toBeGreaterThan(0);
    expect(r.afterSend.txQueued).toBeGreaterThan(0);
    expect(r.afterSend.txQueued).toBeLessThanOrEqual(1024);
    expect(r.stats.txQueued).toBe(0);
    expect(r.stats.txDatagrams + r.stats.txDrops).toBe(n);
    expect(r.stats.txErrors).toBe(0);
  });
});
