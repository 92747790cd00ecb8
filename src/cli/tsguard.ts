#!/usr/bin/env node
/**
 * `tsguard`: our own wg-quick and wg in one command, without bash and
 * without the `wg` tool.
 * @module
 */

import { readFileSync } from 'node:fs';
import { loadCrypto } from '../crypto/index.js';
import { loadNativeCrypto } from '../io/native.js';
import { keyFromBase64, keyToBase64 } from '../crypto/keys.js';
// Subcommands' modules are imported when used (SQLite, QR codes, the TUN runtime, the UAPI client),
// so that e.g. `tsguard join` or `tsguard genkey` start quickly.

const USAGE = `Usage: tsguard COMMAND [ARGS]

  up CONFIG|IFNAME          bring up a wg-quick style tunnel (IFNAME → /etc/wireguard/IFNAME.conf)
  down CONFIG|IFNAME        tear down everything "up" made
  show [IFNAME|all|interfaces] [dump]
                            show interfaces as "wg show" does
  showconf IFNAME           print the current configuration in wg config format
  syncconf IFNAME FILE      apply FILE to a running interface, changing only what differs
  genkey                    print a new private key (base64)
  pubkey                    read a private key on stdin, print its public key
  genpsk                    print a new preshared key
  hub ...                   run and manage a fleet hub (see "tsguard hub --help")
  join URL ...              register with a hub and keep the tunnel up (see "tsguard join --help")

The daemon behind an interface is tsguard-wg (see "tsguard-wg --help").`;

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...args] = argv;
  const p = await loadCrypto(loadNativeCrypto);
  switch (cmd) {
    case undefined:
    case 'help':
    case '-h':
    case '--help':
      process.stdout.write(USAGE + '\n');
      return cmd === undefined ? 2 : 0;
    case 'genkey':
    case 'genpsk': {
      const key = cmd === 'genkey' ? p.generatePrivateKey() : p.randomBytes(32);
      process.stdout.write(keyToBase64(key) + '\n');
      return 0;
    }
    case 'pubkey': {
      const priv = keyFromBase64(readStdin(), 'private key on standard input');
      process.stdout.write(keyToBase64(p.publicKey(priv)) + '\n');
      return 0;
    }
    case 'show': {
      const [{ listInterfaces, uapiGetState }, { formatDump, formatShow }] = await Promise.all([import('../uapi/client.js'), import('./show.js')]);
      let names: string[];
      let dump = false;
      const rest = [...args];
      if (rest.at(-1) === 'dump') {
        dump = true;
        rest.pop();
      }
      const target = rest[0] ?? 'all';
      if (rest.length > 1) throw new UsageError('show takes at most an interface name and "dump"');
      if (target === 'interfaces') {
        const list = listInterfaces();
        if (list.length) process.stdout.write(list.join(' ') + '\n');
        return 0;
      }
      names = target === 'all' ? listInterfaces() : [target];
      const multi = target === 'all';
      const chunks: string[] = [];
      for (const name of names) {
        const state = await uapiGetState(name);
        chunks.push(dump ? formatDump(state, multi ? name : undefined) : formatShow(name, state));
      }
      process.stdout.write(chunks.join(dump ? '' : '\n'));
      return 0;
    }
    case 'showconf': {
      if (args.length !== 1) throw new UsageError('showconf takes an interface name');
      const [{ showconf }, { uapiGetState }] = await Promise.all([import('../config/load.js'), import('../uapi/client.js')]);
      process.stdout.write(showconf(await uapiGetState(args[0]!)));
      return 0;
    }
    case 'syncconf': {
      if (args.length !== 2) throw new UsageError('syncconf takes an interface name and a configuration file');
      const [ifname, file] = args as [string, string];
      const [{ loadDesired }, { uapiGetState, uapiSet }, { syncLines }] = await Promise.all([
        import('../config/load.js'),
        import('../uapi/client.js'),
        import('../uapi/sync.js'),
      ]);
      const desired = await loadDesired(file);
      const lines = syncLines(await uapiGetState(ifname), desired);
      if (lines.length > 0) await uapiSet(ifname, lines);
      return 0;
    }
    case 'hub':
      const { hubMain, HubUsageError } = await import('./hub.js');
      return subcommand(() => hubMain(args), (e) => e instanceof HubUsageError);
    case 'join':
      const { joinMain, isJoinUsageError } = await import('./join.js');
      return subcommand(() => joinMain(args), isJoinUsageError);
    case 'up':
    case 'down': {
      if (args.length !== 1) throw new UsageError(`${cmd} takes a configuration file or an interface name`);
      const { up, down } = await import('./quick.js');
      return cmd === 'up' ? up(args[0]!) : down(args[0]!);
    }
    default:
      throw new UsageError(`unknown command "${cmd}"`);
  }
}

class UsageError extends Error {}

/** A subcommand's own usage error: exit status 2, with the subcommand's message only. */
class SubcommandUsageError extends Error {}

async function subcommand(run: () => Promise<number>, isUsage: (e: unknown) => boolean): Promise<number> {
  try {
    return await run();
  } catch (e) {
    if (isUsage(e)) throw new SubcommandUsageError((e as Error).message);
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`tsguard: ${msg}\n`);
    if (e instanceof UsageError) process.stderr.write(`\n${USAGE}\n`);
    process.exitCode = e instanceof UsageError || e instanceof SubcommandUsageError ? 2 : 1;
  },
);
