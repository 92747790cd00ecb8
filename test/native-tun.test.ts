/**
 * Native TUN addon. Everything that creates interfaces runs in a child
 * process inside a network namespace created (and removed) here; the child
 * (test/fixtures/native-child.mjs) loads the raw addon.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { runChild } from './helpers/native-child.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ifIndex, Tun } from '../src/io/tun.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) {
  console.warn('test/native-tun.test.ts: TUN tests skipped, they need root (network namespaces, /dev/net/tun)');
}



describe('Tun name checks (no system call)', () => {
  it('rejects names longer than 15 bytes with ENAMETOOLONG before any syscall', () => {
    let err: any;
    try {
      Tun.open('tsg-way-too-long0');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('ENAMETOOLONG');
    expect(err.syscall).toBeUndefined();
    expect(err.message).toMatch(/at most 15/);
    expect(() => Tun.open('')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => Tun.open('a/b')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => Tun.open('a b')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('ifIndex of a missing interface is 0', () => {
    expect(ifIndex('tsgnosuchif0')).toBe(0);
  });
});

describe.skipIf(!isRoot)('native TUN in a network namespace', () => {
  let ns = '';

  beforeAll(() => {
    ns = `tsgtest-${randomBytes(4).toString('hex')}`;
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  });

  afterAll(() => {
    if (ns !== '') {
      try {
        execFileSync('ip', ['netns', 'del', ns]);
      } catch {
        // already gone
      }
    }
  });

  it('reads ICMP echo requests in batches and writes replies that make ping succeed', async () => {
    const r = await runChild(ns, 'tun-ping', 'tsgt0');
    expect(r.errors).toEqual([]);
    expect(r.name).toBe('tsgt0');
    expect(r.v4.request).toEqual({ dst: '10.99.0.2', length: 84 });
    expect(r.v4.pingExit, r.v4.output).toBe(0);
    if (r.v6 !== null) {
      expect(r.v6.request).not.toBeNull();
      expect(r.v6.pingExit, r.v6.output).toBe(0);
    }
    expect(r.batches.length).toBeGreaterThan(0);
    for (const n of r.batches) expect(n).toBeGreaterThanOrEqual(1);
    expect(r.stats.rxBatches).toBe(r.batches.length);
    expect(r.stats.txPackets).toBe(r.v6 !== null ? 2 : 1);
    expect(r.stats.txErrors).toBe(0);
    // Every read went through the flow queue (native/flow_queue.cc), which is empty again.
    expect(r.stats.rxQueuePeakBytes).toBeGreaterThan(0);
    expect(r.stats.rxQueueBytes).toBe(0);
    expect(r.stats.rxNoMemory).toBe(0);
    expect(r.mtu).toBe(1500);
    expect(r.mtuAfterSet).toBe(1380);
    expect(r.ifIndex).toBeGreaterThan(0);
    // Writes after close drop instead of throwing; closing removed the interface.
    expect(r.writeAfterClose).toBe(0);
    expect(r.removedOnClose).toBe(true);
  });

  it('reports ELINKGONE through the error callback when the interface is deleted', async () => {
    const r = await runChild(ns, 'tun-linkdel', 'tsgt1');
    expect(r.isError).toBe(true);
    expect(r.error.code).toBe('ELINKGONE');
    expect(r.error.ifname).toBe('tsgt1');
    expect(r.error.message).toMatch(/tsgt1.*gone/);
    // Writing to the detached fd is counted, not thrown.
    expect(r.writeResult).toBe(0);
    expect(r.stats.txErrors).toBe(1);
    expect(r.stats.lastTxError).toBe('EBADFD');
  });

  it('gives an interface addresses and brings it up without `ip` (what join uses), with clear errors', async () => {
    const r = await runChild(ns, 'tun-addresses', 'tsgt3');
    expect(r.up).toBe(true);
    expect(r.addrs).toEqual(['10.79.3.2/22', 'fd00::2/64']);
    expect(r.routes).toMatch(/^10\.79\.0\.0\/22 proto kernel scope link src 10\.79\.3\.2/m);
    expect(r.errors.missing.code).toBe('ENODEV');
    expect(r.errors.missing.message).toMatch(/tsgt3x/);
    expect(r.errors.badPrefix.code).toBe('ERR_OUT_OF_RANGE');
    expect(r.errors.badAddress.code).toBe('ERR_INVALID_ARG_TYPE');
    expect(r.errors.v6again.code).toBe('EEXIST');
    expect(r.errors.upMissing.code).toBe('ENODEV');
  });

  it('gives clear errors for names taken by other interfaces or busy TUNs', async () => {
    const r = await runChild(ns, 'tun-taken', 'tsgt2');
    expect(r.veth.code).toBe('ENOTTUN');
    expect(r.veth.message).toMatch(/already exists and is not a TUN/);
    expect(r.lo.code).toBe('ENOTTUN');
    expect(r.busy.code).toBe('EBUSY');
    expect(r.busy.message).toMatch(/already attached/);
    expect(r.autoName).toMatch(/^tsgauto\d+$/);
  });
});
