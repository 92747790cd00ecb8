/**
 * Watching a long-running child process (hub, agent) for output lines, for
 * the registration and join namespace tests: every wait is on output or on
 * the exit, bounded by a timeout.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { nsSpawn, ROOT } from '../net/netns.js';

/** The compiled CLI. */
export const TSGUARD = join(ROOT, 'dist/cli/tsguard.js');

/** A child process whose output is kept and can be waited on. */
export interface Watched {
  /** The process (`ip netns exec` execs the command, so its pid is the command's). */
  child: ChildProcess;
  /** Everything printed so far (stdout and stderr interleaved). */
  output(): string;
  /** Resolves with the first match of `re` in stdout+stderr; rejects when the process exits first or after `timeoutMs`. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawn `node ARGS` inside namespace `ns` and watch its output. */
export function spawnNode(ns: string, args: string[], what: string): Watched {
  const child = nsSpawn(ns, process.execPath, args);
  let out = '';
  const listeners = new Set<() => void>();
  let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      exit = { code, signal };
      for (const l of [...listeners]) l();
      resolve(exit);
    });
  });
  const onData = (d: string) => {
    out += d;
    for (const l of [...listeners]) l();
  };
  child.stdout!.setEncoding('utf8').on('data', onData);
  child.stderr!.setEncoding('utf8').on('data', onData);
  return {
    child,
    output: () => out,
    exited,
    waitFor(re, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(out);
          if (m !== null) {
            done();
            resolve(m);
          } else if (exit !== null) {
            done();
            reject(new Error(`${what} exited (${exit.code ?? exit.signal}) before printing ${re}:\n${out}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${what} did not print ${re} within ${timeoutMs} ms:\n${out}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
  };
}
