/**
 * Runs a scenario of test/fixtures/native-child.mjs (which loads the raw addon) inside a network
 * namespace and returns its JSON result line.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { nativeAddonPath } from '../../src/io/native.js';

const child = fileURLToPath(new URL('../fixtures/native-child.mjs', import.meta.url));

/** Runs a fixture scenario in namespace `ns` and returns its JSON result. */
export function runChild(ns: string, ...args: string[]): Promise<Record<string, any>> {
  return new Promise((resolve, reject) => {
    execFile(
      'ip',
      ['netns', 'exec', ns, process.execPath, child, ...args],
      { timeout: 50_000, env: { ...process.env, TSGUARD_NATIVE: nativeAddonPath() } },
      (err, stdout, stderr) => {
        const last = stdout.trim().split('\n').pop() ?? '';
        let parsed: Record<string, any> | undefined;
        try {
          parsed = JSON.parse(last) as Record<string, any>;
        } catch {
          parsed = undefined;
        }
        if (err !== null || parsed === undefined || 'fatal' in parsed) {
          reject(new Error(`fixture ${args.join(' ')} failed: ${err?.message ?? ''}\n${stdout}\n${stderr}`));
        } else {
          resolve(parsed);
        }
      },
    );
  });
}
