#!/usr/bin/env node
/**
 * `tsguard`: our own wg-quick and wg in one command, without bash and
 * without the `wg` tool. The commands are the table in ./commands.ts.
 * @module
 */

import { dispatch, formatUsage, resolve, UsageError } from './args.js';
import { ROOT } from './commands.js';
import { loadCrypto } from '../crypto/index.js';
import { loadNativeCrypto } from '../io/native.js';
import { packageVersion } from './version.js';

const out = (s: string) => void process.stdout.write(s);

async function main(argv: string[]): Promise<number> {
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
    out(`tsguard ${packageVersion()}\n`);
    return 0;
  }
  if (argv.length === 0) {
    process.stderr.write(formatUsage(resolve(ROOT, [])));
    return 2;
  }
  // The provider every command (and a hub or agent it runs) uses: the native addon unless TSGUARD_CRYPTO says otherwise.
  await loadCrypto(loadNativeCrypto);
  return dispatch(ROOT, argv, out);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`tsguard: ${msg}\n`);
    if (e instanceof UsageError) {
      const cmd = e.command ?? 'tsguard';
      process.stderr.write(`Try "${cmd} --help".\n`);
    }
    process.exitCode = e instanceof UsageError ? 2 : 1;
  },
);
