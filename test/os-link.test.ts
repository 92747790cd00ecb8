/**
 * The one link setup (src/os/link.ts): the steps and their `ip` equivalents, then (as root) the
 * ioctl path run by a child process inside a namespace created and removed here, on a persistent TUN.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { linkSteps, runLinkStep } from '../src/os/link.js';
import { formatCommand } from '../src/os/runner.js';
import { recordingRunner } from './helpers/runner.js';
import { parsePrefix } from '../src/routing/ip.js';
import { ROOT, run, shouldSkip, teardownAll, Topology } from './net/netns.js';

const keep = (t: string) => parsePrefix(t, 'keep');

describe('linkSteps', () => {
  it('addresses in order, then MTU and up; ioctls except for a second IPv4 address', async () => {
    const steps = linkSteps('wg7', { addresses: [keep('10.0.0.2/24'), keep('fd00::2/64'), keep('10.1.0.2/16')], mtu: 1380 });
    expect(steps.map((s) => formatCommand(s.command))).toEqual([
      'ip -4 address add 10.0.0.2/24 dev wg7',
      'ip -6 address add fd00::2/64 dev wg7',
      'ip -4 address add 10.1.0.2/16 dev wg7',
      'ip link set mtu 1380 up dev wg7',
    ]);
    expect(steps.map((s) => s.ioctl !== undefined)).toEqual([true, true, false, true]);
    expect(steps.map((s) => s.undo && formatCommand(s.undo))).toEqual([
      'ip -4 address del 10.0.0.2/24 dev wg7',
      'ip -6 address del fd00::2/64 dev wg7',
      'ip -4 address del 10.1.0.2/16 dev wg7',
      undefined,
    ]);
    expect(linkSteps('wg7', { addresses: [] }).map((s) => formatCommand(s.command))).toEqual(['ip link set up dev wg7']);
    // Through any runner other than the real one, every step is its command.
    const rec = recordingRunner();
    for (const s of steps) expect((await runLinkStep(s, rec)).code).toBe(0);
    expect(rec.calls.map(formatCommand)).toEqual(steps.map((s) => formatCommand(s.command)));
  });
});

const SKIP = shouldSkip('os-link.test.ts', ['ip']);
afterAll(teardownAll);

/** Run configureLink from dist/ in a child process inside `ns`; resolves with its error message or null. */
function childConfigure(ns: string, ifname: string, addresses: string[], mtu?: number): Promise<string | null> {
  const script = `
    const { configureLink } = await import(${JSON.stringify(join(ROOT, 'dist/os/link.js'))});
    const { parsePrefix } = await import(${JSON.stringify(join(ROOT, 'dist/routing/ip.js'))});
    try {
      await configureLink(${JSON.stringify(ifname)}, { addresses: ${JSON.stringify(addresses)}.map((t) => parsePrefix(t, 'keep')), mtu: ${mtu ?? 'undefined'} });
      console.log(JSON.stringify({ error: null }));
    } catch (e) {
      console.log(JSON.stringify({ error: e.message }));
    }`;
  return new Promise((resolve, reject) => {
    execFile('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', script], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err !== null) return reject(new Error(`child failed: ${err.message}\n${stdout}\n${stderr}`));
      resolve((JSON.parse(stdout.trim().split('\n').pop()!) as { error: string | null }).error);
    });
  });
}

describe.skipIf(SKIP)('configureLink by ioctl, in a namespace', () => {
  it('sets two IPv4 addresses, an IPv6 address, the MTU and IFF_UP; names the failed step', async () => {
    const t = await Topology.create({ single: true });
    try {
      await run('ip', ['-n', t.a, 'tuntap', 'add', 'dev', 'tsgl0', 'mode', 'tun']);
      expect(await childConfigure(t.a, 'tsgl0', ['10.70.0.2/24', '10.71.0.2/16', 'fd70::2/64'], 1380)).toBeNull();
      const link = (await run('ip', ['-n', t.a, 'link', 'show', 'dev', 'tsgl0'])).stdout;
      expect(link).toMatch(/<[^>]*\bUP\b/);
      expect(link).toMatch(/ mtu 1380 /);
      const addrs = (await run('ip', ['-n', t.a, 'address', 'show', 'dev', 'tsgl0'])).stdout;
      expect(addrs).toContain('inet 10.70.0.2/24');
      expect(addrs).toContain('inet 10.71.0.2/16');
      expect(addrs).toContain('inet6 fd70::2/64');
      expect(await childConfigure(t.a, 'tsgnosuch0', ['10.72.0.2/24'])).toMatch(/^adding address 10\.72\.0\.2\/24 on tsgnosuch0 failed \(ip -4 address add 10\.72\.0\.2\/24 dev tsgnosuch0\): /);
    } finally {
      await t.teardown();
    }
  }, 60_000);
});
