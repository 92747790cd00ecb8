// Process and namespace helpers shared by the benchmark harness and the namespace tests
// (test/net/netns.ts re-exports them with the types of proc.d.mts). Plain JS, no dependencies.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Random lowercase hex. */
export const rand = (bytes = 3) => randomBytes(bytes).toString('hex');

/** Absolute path of an executable found in PATH (or the standard sbin dirs), or null. */
export function which(cmd) {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin']);
  for (const d of dirs) {
    if (d === '') continue;
    const p = join(d, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return null;
}

/**
 * Run a command without a shell; resolves { code, signal, stdout, stderr }.
 * Rejects on a non-zero exit unless opts.allowFail, and on timeout (SIGKILL, default 30 s).
 * Options: input (stdin, closed either way), timeoutMs, allowFail, env, cwd.
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
    child.on('error', (e) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`${cmd} ${args.join(' ')}: ${e.message}`));
    });
    // 'close' waits for the pipes, which a detaching daemon may keep open: 'exit' plus a short
    // grace for the streams settles it too.
    const finish = (code, signal) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (timedOut) reject(new Error(`${cmd} ${args.join(' ')}: timed out after ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
      else if (code !== 0 && !opts.allowFail) reject(new Error(`${cmd} ${args.join(' ')}: exit ${code ?? signal}\nstdout: ${stdout}\nstderr: ${stderr}`));
      else resolve({ code, signal, stdout, stderr });
    };
    child.on('close', finish);
    child.on('exit', (code, signal) => setTimeout(() => finish(code, signal), 2000).unref());
  });
}

/** Collect a spawned process's output and exit status; SIGKILLs it and rejects after timeoutMs. */
export function collect(child, timeoutMs = 60_000) {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`process ${child.spawnargs.join(' ')} timed out after ${timeoutMs} ms\nstdout: ${stdout.slice(-2000)}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Poll `fn` until it returns a truthy value; throws `what` after timeoutMs. */
export async function waitFor(what, fn, timeoutMs = 10_000, stepMs = 50) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}

/** Whether a process exists (and is not a zombie). */
export function alive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat[stat.lastIndexOf(')') + 2];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Command line of a process, or null. */
export function cmdline(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((s) => s !== '');
  } catch {
    return null;
  }
}

/** SIGTERM the given processes, wait up to graceMs, then SIGKILL what is left (and wait for it). */
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
    console.warn(`process ${p} (${cmdline(p)?.join(' ')}) ignored SIGTERM; killing it`);
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone
    }
  }
  const end2 = Date.now() + 5000;
  while (pids.some(alive) && Date.now() < end2) await sleep(50);
}

/** Run a command inside a namespace (`ip netns exec NS ...`). */
export const nsRun = (ns, cmd, args, opts) => run('ip', ['netns', 'exec', ns, cmd, ...args], opts);

/** Spawn a long-running command inside a namespace (stdout/stderr piped; the caller waits or kills it). */
export const nsSpawn = (ns, cmd, args, env) =>
  spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });

/** PIDs of the processes in a namespace (without this one). */
export async function nsPids(ns) {
  const r = await run('ip', ['netns', 'pids', ns], { allowFail: true, timeoutMs: 10_000 });
  if (r.code !== 0) return [];
  return r.stdout
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number)
    .filter((p) => p !== process.pid);
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
