/**
 * The version of the installed package, for `--version`.
 * @module
 */

import { readFileSync } from 'node:fs';

/** `version` of the package.json two levels above this module (src/cli or dist/cli), or "unknown". */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}
