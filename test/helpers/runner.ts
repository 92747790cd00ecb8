/** Command runners for tests of src/config/link.ts and src/os/link.ts: one that records, one inside a namespace. */
import { execRunner, type Command, type Runner, type RunResult } from '../../src/os/runner.js';

/** A runner that runs every command inside network namespace `ns` (`ip netns exec NS ...`). */
export function netnsRunner(ns: string, inner: Runner = execRunner): Runner {
  return { run: (file, args, input) => inner.run('ip', ['netns', 'exec', ns, file, ...args], input) };
}

/** A runner that records commands instead of running them; see recordingRunner. */
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
