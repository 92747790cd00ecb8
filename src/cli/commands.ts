/**
 * The command table of `tsguard` ({@link ROOT}): every command with its
 * arguments, options and help; `--help`, the manual pages and the bash
 * completion come from it.
 * @module
 */

import { readFileSync } from 'node:fs';
import { formatManual, resolve, UsageError, type Command, type Group } from './args.js';
import { hubGroup } from './hub-commands.js';
import { joinCommand } from './join.js';
import { SHOW_SELECTORS } from './show.js';
// Subcommands' implementations are imported when used (SQLite, QR codes, the TUN runtime, the UAPI
// client), so that e.g. `tsguard join` or `tsguard genkey` start quickly.

/** Output of the commands (standard output). */
const out = (s: string) => void process.stdout.write(s);

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

/** The crypto provider tsguard.ts chose at start. */
async function crypto() {
  const { getCrypto } = await import('../crypto/index.js');
  return getCrypto();
}

const CONFIG_ARG = 'CONFIG|IFNAME';
const CONFIG_TEXT =
  'CONFIG is a wg-quick file whose name (without .conf) is the interface name; a bare IFNAME means /etc/wireguard/IFNAME.conf.';

const commands: (Command | Group)[] = [
  {
    name: 'up',
    args: CONFIG_ARG,
    summary: 'bring up a wg-quick style tunnel',
    description: `Reads the wg-quick configuration, resolves its endpoints, starts the tsguard-wg daemon for the interface, configures it, adds the addresses, MTU, routes (with fwmark policy routing for 0.0.0.0/0 and ::/0) and DNS, runs the PreUp/PostUp hooks and returns once the tunnel is up. A bad file is refused before anything changes; a failure on the way removes what was made.\n\n${CONFIG_TEXT}`,
    examples: ['tsguard up ./wg0.conf', 'tsguard up wg0            # /etc/wireguard/wg0.conf'],
    positionals: [1, 1],
    complete: { files: true },
    run: async (_v, [arg]) => (await import('./quick.js')).up(arg!),
  },
  {
    name: 'down',
    args: CONFIG_ARG,
    summary: 'tear down everything "up" made',
    description: `Runs the PreDown/PostDown hooks, saves the configuration when SaveConfig is set, removes routes, rules, DNS and the interface (which stops its daemon).\n\n${CONFIG_TEXT}`,
    examples: ['tsguard down ./wg0.conf'],
    positionals: [1, 1],
    complete: { files: true, interfaces: true },
    run: async (_v, [arg]) => (await import('./quick.js')).down(arg!),
  },
  {
    name: 'show',
    args: '[IFNAME|all|interfaces] [SELECTOR]',
    summary: 'show interfaces as "wg show" does',
    description: `Prints the same bytes as "wg show" for userspace interfaces (sockets in /var/run/wireguard): the pretty form (colours on a terminal; WG_COLOR_MODE=always|never overrides, WG_HIDE_KEYS=never shows the keys), or one SELECTOR: ${SHOW_SELECTORS.join(', ')}. "all" (the default) prefixes selector lines with the interface name; "interfaces" lists the names. A socket whose daemon is gone is removed and skipped, as wg does.`,
    examples: ['tsguard show', 'tsguard show wg0 latest-handshakes', 'tsguard show all dump'],
    positionals: [0, 2],
    complete: { words: ['all', 'interfaces', ...SHOW_SELECTORS], interfaces: true },
    run: async (_v, args) => (await import('./show-command.js')).showCommand(args, out),
  },
  {
    name: 'showconf',
    args: 'IFNAME',
    summary: 'print the current configuration in wg config format',
    positionals: [1, 1],
    complete: { interfaces: true },
    run: async (_v, [ifname]) => {
      const [{ showconf }, { uapiGetState }] = await Promise.all([import('../config/load.js'), import('../uapi/client.js')]);
      out(showconf(await uapiGetState(ifname!)));
      return 0;
    },
  },
  {
    name: 'syncconf',
    args: 'IFNAME FILE',
    summary: 'apply FILE to a running interface, changing only what differs',
    description: 'Peers that do not change keep their sessions; removed peers are removed, new ones added. FILE may be a wg or a wg-quick file (its wg-quick keys are ignored).',
    positionals: [2, 2],
    complete: { interfaces: true, files: true },
    run: async (_v, [ifname, file]) => {
      const [{ loadDesired }, { uapiGetState, uapiSet }, { syncLines }] = await Promise.all([
        import('../config/load.js'),
        import('../uapi/client.js'),
        import('../uapi/sync.js'),
      ]);
      const desired = await loadDesired(file!);
      const lines = syncLines(await uapiGetState(ifname!), desired);
      if (lines.length > 0) await uapiSet(ifname!, lines);
      return 0;
    },
  },
  {
    name: 'genkey',
    summary: 'print a new private key (base64)',
    examples: ['tsguard genkey | tee wg0.key | tsguard pubkey > wg0.pub'],
    run: async () => {
      const { keyToBase64 } = await import('../crypto/keys.js');
      out(keyToBase64((await crypto()).generatePrivateKey()) + '\n');
      return 0;
    },
  },
  {
    name: 'pubkey',
    summary: 'read a private key on stdin, print its public key',
    run: async () => {
      const p = await crypto();
      const { keyFromBase64, keyToBase64 } = await import('../crypto/keys.js');
      const priv = keyFromBase64(readStdin(), 'private key on standard input');
      out(keyToBase64(p.publicKey(priv)) + '\n');
      return 0;
    },
  },
  {
    name: 'genpsk',
    summary: 'print a new preshared key',
    run: async () => {
      const { keyToBase64 } = await import('../crypto/keys.js');
      out(keyToBase64((await crypto()).randomBytes(32)) + '\n');
      return 0;
    },
  },
  hubGroup,
  joinCommand,
  {
    name: 'help',
    args: '[COMMAND ...]',
    summary: 'the manual page of a command',
    examples: ['tsguard help hub device add'],
    positionals: [0, 8],
    complete: { words: [] },
    run: async (_v, words) => {
      const r = resolve(ROOT, words);
      if (r.rest.length) throw new UsageError(`no command "${[...r.path, ...r.rest].join(' ')}"`, 'tsguard help');
      out(formatManual(r, ['tsguard-wg --help', 'wg(8)', 'wg-quick(8)']));
      return 0;
    },
  },
  {
    name: 'completion',
    args: 'bash',
    summary: 'print the bash completion script',
    description: 'Install it with: tsguard completion bash > /etc/bash_completion.d/tsguard',
    positionals: [1, 1],
    complete: { words: ['bash'] },
    run: async (_v, [shell]) => {
      if (shell !== 'bash') throw new UsageError(`no completion for "${shell}" (only bash)`, 'tsguard completion');
      out((await import('./completion.js')).bashCompletion(ROOT));
      return 0;
    },
  },
];

/** The command table of `tsguard`. */
export const ROOT: Group = {
  name: 'tsguard',
  summary: 'WireGuard in TypeScript: wg-quick, wg show and a fleet hub in one command',
  description:
    'tsguard brings tunnels up and down from wg-quick files (without bash and without wg), shows them as "wg show" does, and runs a fleet hub that devices, clients and self-registering agents connect to. The daemon behind an interface is tsguard-wg, a drop-in for wireguard-go (see "tsguard-wg --help").\n\nUsage errors exit with status 2, other failures with 1.',
  options: { version: { type: 'boolean', help: 'print the version and do nothing else' } },
  commands,
};
