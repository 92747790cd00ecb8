/**
 * Running commands (`ip`, `resolvconf`, hooks …) through an injectable
 * {@link Runner}: the real one is {@link execRunner}; tests pass one that
 * records, or one that runs inside a network namespace.
 * @module
 */

import { execFile } from 'node:child_process';

/** A program and its arguments (never a shell line, except `sh -c HOOK` for hooks). */
export interface Command {
  /** Program name, looked up in PATH. */
  file: string;
  /** Arguments. */
  args: string[];
  /** Text written to the program's standard input. */
  input?: string;
}

/** Outcome of a command. `code` is 127 when the program does not exist. */
export interface RunResult {
  /** Exit status (0 = success). */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

/** Runs commands; never rejects for a non-zero exit status (see {@link RunResult.code}). */
export interface Runner {
  /** Run `file` with `args`, feeding `input` to its standard input. */
  run(file: string, args: readonly string[], input?: string): Promise<RunResult>;
}

/** The real runner: `execFile` with `LC_ALL=C`. */
export const execRunner: Runner = {
  run(file, args, input) {
    return new Promise((resolve) => {
      const child = execFile(
        file,
        [...args],
        { encoding: 'utf8', maxBuffer: 16 << 20, env: { ...process.env, LC_ALL: 'C' } },
        (err, stdout, stderr) => {
          if (err === null) return resolve({ code: 0, stdout, stderr });
          const e = err as NodeJS.ErrnoException & { code?: number | string };
          if (e.code === 'ENOENT') return resolve({ code: 127, stdout, stderr: `${file}: command not found` });
          resolve({ code: typeof e.code === 'number' ? e.code : 1, stdout, stderr: stderr || e.message });
        },
      );
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(input ?? '');
    });
  },
};

/** A command as a readable line (arguments with spaces or quotes are single-quoted). */
export function formatCommand(cmd: Command): string {
  const q = (a: string): string => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  return [cmd.file, ...cmd.args].map(q).join(' ');
}
