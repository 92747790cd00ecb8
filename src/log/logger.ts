/**
 * The one logger of the daemons and commands (tsguard-wg, `tsguard up`,
 * `hub up`, `join`): levels, text or JSON lines, a last-line redaction of
 * anything shaped like a key or a token, and rate limiting for events that
 * a peer can make frequent.
 * @module
 */

/** Levels, most severe first. `verbose` carries peer events; `debug` is for developers. */
export type LogLevel = 'error' | 'info' | 'verbose' | 'debug';
/** A level threshold: `silent` logs nothing. */
export type LogThreshold = LogLevel | 'silent';
/** Output format: `text` (`TIME LEVEL: message key=value`) or `json` (one object per line). */
export type LogFormat = 'text' | 'json';
/** Structured fields of a line (never secrets). */
export type LogFields = Readonly<Record<string, string | number | boolean | null | undefined>>;

/** The signature every module logs through. */
export type Log = (level: LogLevel, message: string, fields?: LogFields) => void;

/** A {@link Log} that can say whether a level is on (to skip building costly messages). */
export interface Logger extends Log {
  /** True when lines of `level` are written. */
  enabled(level: LogLevel): boolean;
}

const RANK: Record<LogThreshold, number> = { silent: 0, error: 1, info: 2, verbose: 3, debug: 4 };

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Threshold (default `info`). */
  level?: LogThreshold;
  /** Default `text`. */
  format?: LogFormat;
  /** Where lines go (default stderr); null discards everything. */
  out?: { write(text: string): unknown } | null;
  /** Text format only: prefix lines with the time and level (default true). False prints the bare message, as wg-quick does. */
  decorate?: boolean;
  /** Clock for the timestamps (tests). */
  now?: () => Date;
  /**
   * Lines logged in one turn of the event loop go out in one write, after that turn's
   * microtasks (a busy daemon: one system call instead of one per line), and at process exit.
   * Default false: every line is written at once.
   */
  coalesce?: boolean;
}

/**
 * Parse a level name (`LOG_LEVEL`, `--log-level`).
 * @throws Error naming the accepted values
 */
export function parseLogLevel(text: string, where = 'LOG_LEVEL'): LogThreshold {
  const t = text.trim().toLowerCase();
  if (t in RANK) return t as LogThreshold;
  throw new Error(`${where} "${text}" is not a log level: use silent, error, info, verbose or debug`);
}

/**
 * Parse a format name (`--log-format`, `TSGUARD_LOG_FORMAT`).
 * @throws Error naming the accepted values
 */
export function parseLogFormat(text: string, where = '--log-format'): LogFormat {
  const t = text.trim().toLowerCase();
  if (t === 'text' || t === 'json') return t;
  throw new Error(`${where} "${text}" is not a log format: use text or json`);
}

// Shapes of secrets, replaced wherever they appear in a line (a safety net: callers never pass them).
const SECRET_PATTERNS: readonly [RegExp, string][] = [
  // UAPI: private_key=<64 hex>, preshared_key=<64 hex>
  [/\b(private_key|preshared_key)=[0-9a-fA-F]{64}\b/g, '$1=(redacted)'],
  // wg-quick files: PrivateKey = <base64>, PresharedKey = <base64>
  [/\b(PrivateKey|PresharedKey)(\s*=\s*)[A-Za-z0-9+/]{42,43}=?/gi, '$1$2(redacted)'],
  // Authorization headers (RFC 6750 token characters).
  [/\b(Bearer\s+)[A-Za-z0-9._~+/=-]+/gi, '$1(redacted)'],
  // Enrollment tokens ID.SECRET: the id stays (it names the token), the secret goes.
  [/\b([0-9a-f]{12})\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/g, '$1.(redacted)'],
];

/** `text` with every key- or token-shaped secret replaced by `(redacted)`. */
export function redact(text: string): string {
  let out = text;
  for (const [re, by] of SECRET_PATTERNS) out = out.replace(re, by);
  return out;
}

function textValue(v: string | number | boolean | null): string {
  const s = String(v);
  return s === '' || /[\s"=]/.test(s) ? JSON.stringify(s) : s;
}

// Flushes of coalescing loggers, run at process exit (process.exit() skips pending microtasks).
let atExit: Set<() => void> | null = null;
function flushAtExit(flush: () => void): void {
  if (atExit === null) {
    const set = (atExit = new Set());
    process.on('exit', () => {
      for (const f of set) f();
    });
  }
  atExit.add(flush);
}

/** Lines written through `out` at most once per turn (see {@link LoggerOptions.coalesce}). */
function coalescing(out: { write(text: string): unknown }): (text: string) => void {
  let pending: string[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    const text = pending.join('');
    pending = [];
    out.write(text);
  };
  flushAtExit(flush);
  return (text) => {
    pending.push(text);
    if (pending.length === 1) queueMicrotask(flush);
    else if (pending.length >= 256) flush();
  };
}

/** Create a logger. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const threshold = RANK[opts.level ?? 'info'];
  const format = opts.format ?? 'text';
  const out = opts.out === undefined ? process.stderr : opts.out;
  const decorate = opts.decorate ?? true;
  const now = opts.now ?? (() => new Date());
  const enabled = (level: LogLevel) => out !== null && RANK[level] <= threshold;
  const write = out === null ? () => undefined : opts.coalesce ? coalescing(out) : (text: string) => void out.write(text);
  const log = ((level: LogLevel, message: string, fields?: LogFields) => {
    if (!enabled(level)) return;
    const entries = fields === undefined ? [] : Object.entries(fields).filter((e): e is [string, string | number | boolean | null] => e[1] !== undefined);
    let line: string;
    if (format === 'json') {
      line = JSON.stringify({ time: now().toISOString(), level, msg: message, ...Object.fromEntries(entries) });
    } else {
      const kv = entries.map(([k, v]) => ` ${k}=${textValue(v)}`).join('');
      line = decorate ? `${now().toISOString()} ${level.toUpperCase()}: ${message}${kv}` : `${message}${kv}`;
    }
    write(redact(line) + '\n');
  }) as Logger;
  log.enabled = enabled;
  return log;
}

/** Whether `log` writes lines of `level` (a plain {@link Log} function is assumed to filter itself). */
export function logEnabled(log: Log | Logger, level: LogLevel): boolean {
  return !('enabled' in log) || log.enabled(level);
}

/**
 * The logger of a command from its environment and flags: `LOG_LEVEL`
 * (default `defaultLevel`) and `--log-format` / `TSGUARD_LOG_FORMAT`
 * (default `text`).
 * @throws Error for a bad level or format
 */
export function loggerFromEnv(
  opts: { defaultLevel?: LogThreshold; format?: string; out?: LoggerOptions['out']; decorate?: boolean; coalesce?: boolean } = {},
  env: NodeJS.ProcessEnv = process.env,
): Logger {
  const level = env.LOG_LEVEL ? parseLogLevel(env.LOG_LEVEL) : (opts.defaultLevel ?? 'info');
  const fmt = opts.format ?? env.TSGUARD_LOG_FORMAT;
  const format = fmt === undefined ? 'text' : parseLogFormat(fmt, opts.format !== undefined ? '--log-format' : 'TSGUARD_LOG_FORMAT');
  return createLogger({
    level,
    format,
    ...(opts.out !== undefined ? { out: opts.out } : {}),
    ...(opts.decorate !== undefined ? { decorate: opts.decorate } : {}),
    ...(opts.coalesce !== undefined ? { coalesce: opts.coalesce } : {}),
  });
}

/**
 * Rate limiting by key (a peer and an event): the first line of a key is
 * written, further ones within `intervalMs` are counted, and the next line
 * written for that key says how many were suppressed. Memory is bounded by
 * the number of keys seen in the last interval (older ones are swept).
 */
export class RateLimitedLog {
  readonly #log: Log;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #keys = new Map<string, { at: number; suppressed: number }>();
  #sweptAt = 0;

  /** @param log sink; @param intervalMs minimum time between two lines of a key; @param now monotonic ms */
  constructor(log: Log, intervalMs: number, now: () => number = () => performance.now()) {
    this.#log = log;
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  /**
   * Log unless a line with the same `key` was written less than the interval
   * ago. `message` may be a function, called only when the line is written.
   * Returns whether it was written.
   */
  log(key: string, level: LogLevel, message: string | (() => string), fields?: LogFields): boolean {
    const now = this.#now();
    if (now - this.#sweptAt >= this.#intervalMs) {
      this.#sweptAt = now;
      for (const [k, e] of this.#keys) if (now - e.at >= this.#intervalMs && e.suppressed === 0) this.#keys.delete(k);
    }
    const e = this.#keys.get(key);
    if (e !== undefined && now - e.at < this.#intervalMs) {
      e.suppressed++;
      return false;
    }
    const suppressed = e?.suppressed ?? 0;
    this.#keys.set(key, { at: now, suppressed: 0 });
    this.#log(level, typeof message === 'string' ? message : message(), suppressed > 0 ? { ...fields, suppressed } : fields);
    return true;
  }
}

/**
 * The log callback for a {@link Runtime}'s messages: the interface being
 * deleted (`tsguard down`, `ip link del`) is how a tunnel normally stops, so
 * that message is `info`; every other one is an `error`.
 */
export function runtimeLog(log: Log): (message: string) => void {
  return (m) => log(/TUN interface '[^']*' is gone/.test(m) ? 'info' : 'error', m);
}
