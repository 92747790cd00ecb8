// Small process helpers for the benchmark harness (no dependencies).
import { spawn } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Absolute path of an executable in PATH (or the sbin dirs), or null. */
export function which(cmd) {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin']);
  for (const d of dirs) {
    if (!d) continue;
    try {
      accessSync(join(d, cmd), constants.X_OK);
      return join(d, cmd);
    } catch {
      // next
    }
  }
  return null;
}

/**
 * Run a command without a shell; resolves { code, signal, stdout, stderr }.
 * Rejects on a non-zero exit unless opts.allowFail, and on timeout (SIGKILL).
 * Resolves on 'exit' (+ short grace) so that detaching daemons holding our pipes do not block.
 */
export function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env, cwd: opts.cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
    const timeoutMs = opts.timeoutMs ?? 30_000;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    let settled = false;
    const finish = (code, signal) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const what = `${cmd} ${args.join(' ')}`.slice(0, 300);
      if (timedOut) reject(new Error(`${what}: timed out after ${timeoutMs} ms\n${stderr}`));
      else if (code !== 0 && !opts.allowFail) reject(new Error(`${what}: exit ${code ?? signal}\n${stdout.slice(-2000)}\n${stderr.slice(-2000)}`));
      else resolve({ code, signal, stdout, stderr });
    };
    child.on('error', (e) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`${cmd}: ${e.message}`));
    });
    child.on('close', finish);
    child.on('exit', (code, signal) => setTimeout(() => finish(code, signal), 1500).unref());
  });
}

/** Collect output/exit of an already spawned child. */
export function collect(child, timeoutMs = 120_000) {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${child.spawnargs.join(' ')}: timed out after ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Poll fn until truthy; throws after timeoutMs. */
export async function waitFor(what, fn, timeoutMs = 10_000, stepMs = 50) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}

/** True if the process exists and is not a zombie. */
export function alive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const s = stat[stat.lastIndexOf(')') + 2];
    return s !== 'Z' && s !== 'X';
  } catch {
    return false;
  }
}

/** argv of a process, or null. */
export function cmdline(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return null;
  }
}

/** SIGTERM the pids, wait up to graceMs, SIGKILL the rest. */
export async function terminate(pids, graceMs = 5000) {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      // gone
    }
  }
  const end = Date.now() + graceMs;
  while (pids.some(alive) && Date.now() < end) await sleep(50);
  for (const p of pids.filter(alive)) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone
    }
  }
  const end2 = Date.now() + 3000;
  while (pids.some(alive) && Date.now() < end2) await sleep(50);
}

/** VmRSS (and VmHWM) of a process in KiB, from /proc/PID/status. */
export function memKiB(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const get = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rss: get('VmRSS'), hwm: get('VmHWM') };
}

/** CPU time (user+system) of a process in seconds, from /proc/PID/stat (includes all threads). */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields after ')' start at field 3 (state); utime=14, stime=15 → index 11, 12
  return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ is 100 on Linux
}

/** Percentile (0..100) of a numeric array (nearest-rank). */
export function percentile(values, p) {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))];
}
