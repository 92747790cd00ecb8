/**
 * The `ip` commands of `join()`: one `ip -batch -` process, with errors that
 * name the failing command; names batch mode would read differently run one
 * by one as before.
 */
import { describe, expect, it } from 'vitest';
import { JoinError, runIpCommands } from '../src/agent/join.js';
import { recordingRunner } from '../src/config/runner.js';

const CMDS = [
  ['-4', 'address', 'add', '10.79.0.2/22', 'dev', 'tsg0'],
  ['-6', 'address', 'add', 'fd00::2/64', 'dev', 'tsg0', 'nodad'],
  ['link', 'set', 'mtu', '1420', 'up', 'dev', 'tsg0'],
];

describe('runIpCommands', () => {
  it('runs the commands as one ip -batch process (no global options on batch lines)', async () => {
    const r = recordingRunner();
    await runIpCommands(r, CMDS);
    expect(r.calls).toEqual([
      { file: 'ip', args: ['-batch', '-'], input: 'address add 10.79.0.2/22 dev tsg0\naddress add fd00::2/64 dev tsg0 nodad\nlink set mtu 1420 up dev tsg0\n' },
    ]);
  });

  it('names the command that failed, with ip’s message', async () => {
    const r = recordingRunner(() => ({ code: 1, stderr: 'Error: ipv6: address already assigned.\nCommand failed -:2\n' }));
    const err = await runIpCommands(r, CMDS).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JoinError);
    expect((err as JoinError).code).toBe('INTERFACE');
    expect((err as JoinError).message).toBe('ip -6 address add fd00::2/64 dev tsg0 nodad: Error: ipv6: address already assigned.');
  });

  it('without a line number (ip missing) it shows the whole batch', async () => {
    const r = recordingRunner(() => ({ code: 127, stderr: 'ip: command not found' }));
    await expect(runIpCommands(r, CMDS.slice(2))).rejects.toThrow(/^ip -batch - \(link set mtu 1420 up dev tsg0\): ip: command not found$/);
  });

  it('an interface name with "#" or a quote runs the commands one by one', async () => {
    for (const name of ['tsg#0', "tsg'0"]) {
      const cmds = [['-4', 'address', 'add', '10.79.0.2/22', 'dev', name], ['link', 'set', 'up', 'dev', name]];
      const r = recordingRunner((c) => (c.args[0] === 'link' ? { code: 2, stderr: 'Cannot find device\n' } : undefined));
      await expect(runIpCommands(r, cmds)).rejects.toThrow(`ip link set up dev ${name}: Cannot find device`);
      expect(r.calls).toEqual(cmds.map((args) => ({ file: 'ip', args })));
    }
  });
});
