/**
 * The command line of `tsguard` as a user meets it: `--help` on every command prints help and
 * does nothing else, `help COMMAND` prints a manual page, `--version`, usage errors exit 2 with
 * a short message naming the flag, and the generated bash completion completes commands,
 * flags, selectors and file names.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isGroup, type Command, type Group } from '../src/cli/args.js';
import { ROOT } from '../src/cli/commands.js';
import { run, which } from './net/netns.js';
import { TSGUARD } from './helpers/proc.js';

const ENV = { ...process.env, TSGUARD_HUB_DIR: '/nonexistent/tsguard-hub-dir', TSGUARD_TOKEN: '' };
const cli = (args: string[], input?: string) => run(process.execPath, [TSGUARD, ...args], { allowFail: true, env: ENV, input, timeoutMs: 20_000 });

function paths(node: Command | Group, prefix: string[] = []): string[][] {
  const here = [...prefix, node.name];
  return isGroup(node) ? [here, ...node.commands.flatMap((c) => paths(c, here))] : [here];
}
const ALL = paths(ROOT).map((p) => p.slice(1));

describe('tsguard command line', () => {
  it('--help on every command prints its help and does nothing else', async () => {
    expect(ALL.length).toBeGreaterThan(25);
    for (const p of ALL) {
      for (const flag of p.length <= 1 ? ['--help', '-h'] : ['--help']) {
        // Arguments that would make the command act (a file, a name) are ignored once --help is there.
        const r = await cli([...p, flag, ...(p.length ? ['/etc/wireguard/x.conf'] : [])]);
        const what = `tsguard ${[...p, flag].join(' ')}: ${r.stderr}`;
        expect(r.code, what).toBe(0);
        expect(r.stderr, what).toBe('');
        expect(r.stdout.startsWith(`Usage: ${['tsguard', ...p].join(' ')}`), what + r.stdout).toBe(true);
      }
    }
    // genkey --help used to print a key, up --help to look for /etc/wireguard/--help.conf.
    expect((await cli(['genkey', '--help'])).stdout).not.toMatch(/^[A-Za-z0-9+/]{43}=$/m);
  }, 120_000);

  it('help COMMAND prints a manual page for every command; --version the package version', async () => {
    for (const p of ALL) {
      const r = await cli(['help', ...p]);
      expect(r.code, p.join(' ')).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^NAME\\n    ${['tsguard', ...p].join(' ')} - `));
      expect(r.stdout).toContain('\nSYNOPSIS\n');
    }
    expect((await cli(['help', 'hub', 'client', 'add'])).stdout).toMatch(/--qr-file FILE\n/);
    expect((await cli(['help', 'nosuch'])).code).toBe(2);
    const version = (JSON.parse(readFileSync(join(import.meta.dirname, '../package.json'), 'utf8')) as { version: string }).version;
    expect((await cli(['--version'])).stdout).toBe(`tsguard ${version}\n`);
  }, 120_000);

  it('usage errors exit 2 with one short message naming the mistake', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['up', '--bogus', 'x.conf'], /^tsguard: unknown option --bogus\nTry "tsguard up --help"\.\n$/],
      [['up'], /^tsguard: missing CONFIG\|IFNAME\n/],
      [['genkey', 'extra'], /^tsguard: unexpected argument "extra"\n/],
      [['frobnicate'], /^tsguard: unknown command "tsguard frobnicate"/],
      [['hub'], /^tsguard: missing a command: up, show/],
      [['hub', 'device', 'add', 'x', '--ip'], /^tsguard: --ip needs a value \(IP\)\n/],
      [['hub', 'device', 'add', 'x', '--rekey=yes'], /^tsguard: --rekey takes no value\n/],
      [['hub', 'device', 'add', 'x'], /^tsguard: missing --public-key KEY/],
      [['hub', 'client', 'add', 'x', '--qr-file', 'x.jpg'], /must end in \.png or \.svg/],
      [['hub', 'up'], /^tsguard: missing --interface NAME, --subnet CIDR, --listen-port PORT \(as flags or in --config FILE\)\n/],
      [['show', 'wg0', 'bogus'], /^tsguard: invalid parameter "bogus"/],
      [['show', 'a', 'b', 'c'], /^tsguard: unexpected argument "c"/],
      [['completion', 'zsh'], /only bash/],
      [['join', 'https://x'], /^tsguard: missing --token TOKEN/],
    ];
    for (const [args, re] of cases) {
      const r = await cli(args);
      const what = `tsguard ${args.join(' ')} → ${r.code}: ${r.stderr}`;
      expect(r.code, what).toBe(2);
      expect(r.stderr, what).toMatch(re);
      expect(r.stderr.split('\n').length, what).toBeLessThanOrEqual(3);
      expect(r.stdout, what).toBe('');
    }
    // Flags may come before the subcommand words.
    const r = await cli(['hub', '--data-dir', '/nonexistent/x', 'device', 'list']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no hub data directory \/nonexistent\/x/);
    // No arguments at all: the command list on stderr, status 2.
    const none = await cli([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^Usage: tsguard COMMAND/);
  }, 60_000);

  it.skipIf(which('bash') === null)('bash completion: commands, subcommands, flags, selectors, files', async () => {
    const script = (await cli(['completion', 'bash'])).stdout;
    const complete = async (words: string[]) => {
      const line = `source /dev/stdin <<'EOF'\n${script}\nEOF\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _tsguard; printf '%s\\n' "\${COMPREPLY[@]}"`;
      const r = await run('bash', ['-c', line], { cwd: join(import.meta.dirname, '..') });
      return r.stdout.split('\n').filter(Boolean).sort();
    };
    expect(await complete(['tsguard', 'sh'])).toEqual(['show', 'showconf']);
    expect(await complete(['tsguard', 'hub', 'de'])).toEqual(['device']);
    expect(await complete(['tsguard', 'hub', 'device', ''])).toEqual(['--data-dir', '--help', '--registry', '--registry-password-file', 'add', 'list', 'remove']);
    expect(await complete(['tsguard', 'hub', 'client', 'add', 'x', '--qr'])).toEqual(['--qr', '--qr-file']);
    expect(await complete(['tsguard', 'show', 'wg0', 'latest'])).toEqual(['latest-handshakes']);
    expect(await complete(['tsguard', 'hub', 'up', '--config', 'package.j'])).toEqual(['package.json']);
    expect(await complete(['tsguard', 'up', 'package.j'])).toEqual(['package.json']);
    expect(await complete(['tsguard', 'hub', 'up', '--subnet', ''])).toEqual([]);
  });
});
