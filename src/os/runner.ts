/**
 * Running commands (`ip`, `resolvconf`, hooks …) through an injectable
 * {@link Runner}: the real one ({@link execRunner}), one inside a network
 * namespace ({@link netnsRunner}) and one that only records
 * ({@link recordingRunner}, for tests).
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

/** A runner that runs every command inside network namespace `ns` (`ip netns exec NS ...`). */
export function netnsRunner(ns: string, inner: Runner = execRunner): Runner {
  return { run: (file, args, input) => inner.run('ip', ['netns', 'exec', ns, file, ...args], input) };
}

/** A runner that records commands instead of running them; see {@link recordingRunner}. */
export interface RecordingRunner extends Runner {
  /** Every command run, in order. */
  calls: Command[];
}

/**
 * A runner that runs nothing: it records each command and answers with
 * `reply(cmd)` (default: success with empty output), for planning tests.
 */
export function recordingRunner(reply?: (cmd: Command) => Partial<RunResult> | undefined): RecordingRunner {
  const calls: Command[] = [];
  return {
    calls,
    async run(file, args, input) {
      const cmd: Command = input === undefined ? { file, args: [...args] } : { file, args: [...args], input };
      calls.push(cmd);
      return { code: 0, stdout: '', stderr: '', ...reply?.(cmd) };
    },
  };
}

/** A command as a readable line (arguments with spaces or quotes are single-quoted). */
export function formatCommand(cmd: Command): string {
  const q = (a: string): string => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  return [cmd.file, ...cmd.args].map(q).join(' ');
}
