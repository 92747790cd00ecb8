// Types of proc.mjs for the TypeScript tests that import it (test/net/netns.ts).
import type { ChildProcess } from 'node:child_process';

/** Result of {@link run} and {@link collect}. */
export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Options of {@link run}. */
export interface RunOptions {
  /** Written to stdin (stdin is closed either way). */
  input?: string;
  /** Kill (SIGKILL) after this many ms; default 30 s. */
  timeoutMs?: number;
  /** Do not throw on a non-zero exit. */
  allowFail?: boolean;
  /** Environment (default: inherited). */
  env?: NodeJS.ProcessEnv;
  /** Working directory. */
  cwd?: string;
}

export declare const sleep: (ms: number) => Promise<void>;
export declare const rand: (bytes?: number) => string;
export declare function which(cmd: string): string | null;
export declare function run(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult>;
export declare function collect(child: ChildProcess, timeoutMs?: number): Promise<RunResult>;
export declare function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs?: number, stepMs?: number): Promise<NonNullable<T>>;
export declare function alive(pid: number): boolean;
export declare function cmdline(pid: number): string[] | null;
export declare function terminate(pids: number[], graceMs?: number): Promise<void>;
export declare const nsRun: (ns: string, cmd: string, args: string[], opts?: RunOptions) => Promise<RunResult>;
export declare const nsSpawn: (ns: string, cmd: string, args: string[], env?: NodeJS.ProcessEnv) => ChildProcess;
export declare function nsPids(ns: string): Promise<number[]>;
export declare function memKiB(pid: number): { rss: number; hwm: number };
export declare function cpuSeconds(pid: number): number;
export declare function percentile(values: number[], p: number): number | null;
