/**
 * File helpers for configuration files, which hold secrets: atomic writes
 * with mode 0600 and wg-quick's "world accessible" warning.
 * @module
 */

import { randomBytes } from 'node:crypto';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { chmodSync, closeSync, fchmodSync, fsyncSync, linkSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Replace `path` atomically with `data`: write a temporary file in the same
 * directory created with mode 0600, fsync it, rename it over `path`, then
 * fsync the directory (best effort). The temporary file is removed on
 * failure. Readers see either the old or the new contents, never a mix, and
 * the secret contents are never readable by other users.
 */
export async function writeFileAtomic0600(path: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  let renamed = false;
  try {
    try {
      await fh.chmod(0o600); // in case the umask or an ACL changed it
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    renamed = true;
  } finally {
    if (!renamed) await unlink(tmp).catch(() => undefined);
  }
  try {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    // Directory fsync is not supported everywhere; the rename is done anyway.
  }
}

/**
 * wg-quick's permission check: a warning text when the file or its directory
 * grants any access to "other" users, otherwise undefined (also when the
 * file cannot be examined).
 */
export async function worldAccessibleWarning(path: string): Promise<string | undefined> {
  try {
    const [f, d] = await Promise.all([stat(path), stat(dirname(path))]);
    if ((f.mode & d.mode & 0o007) !== 0) return `Warning: \`${path}' is world accessible`;
  } catch {
    return undefined;
  }
  return undefined;
}

/**
 * Read a secret file as text, or null if it does not exist. A file that
 * other users may read is tightened to 0600 on the way (best effort). Other
 * read errors are thrown.
 */
export function readSecretFileSync(path: string): string | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  } catch {
    // best effort
  }
  return text;
}

/**
 * Create `path` holding `data` with mode 0600, only if it does not exist yet,
 * atomically: a temporary file in the same directory is written and fsynced,
 * then hard-linked to `path` (link(2) fails if `path` exists), then the
 * directory is fsynced (best effort). Returns false when another process
 * created `path` first — read theirs, so concurrent starters agree on one
 * secret.
 */
export function createSecretFileExclusiveSync(path: string, data: string): boolean {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      fchmodSync(fd, 0o600);
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
    try {
      const dfd = openSync(dir, 'r');
      try {
        fsyncSync(dfd);
      } finally {
        closeSync(dfd);
      }
    } catch {
      // directory fsync is best effort
    }
    return true;
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
  }
}
