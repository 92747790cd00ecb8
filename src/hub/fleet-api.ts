/**
 * Client of the optional Foundries.io-style fleet API that lists the
 * devices of a factory with their WireGuard keys and addresses:
 *
 * `GET {api}/ota/factories/{factory}/wireguard-ips/` with header
 * `OSF-TOKEN: <token>` answers `[{ "name", "pubkey", "ip", "enabled" }]`.
 *
 * Rules:
 * - The token is read from a file on every poll (so it can be rotated), is
 *   sent only in the `OSF-TOKEN` header, and never appears in a log line or
 *   an error message (any accidental echo is replaced by `[redacted]`).
 *   Redirects are refused, so the header is never forwarded to another host.
 * - Each request has a timeout (default 15 s) covering headers and body.
 * - Any failure (unreadable token file, network error, timeout, non-2xx
 *   status, bad JSON, an answer that is not a list, a non-empty list without
 *   one usable entry) is logged and retried with exponential backoff (5 s,
 *   doubling, capped at the poll interval); the callback is **not** called,
 *   so the devices last delivered stay configured.
 * - Entries are validated one by one: an entry with a bad name, key or
 *   address, or a name, key or address already used by an earlier entry, is
 *   logged and skipped; the others are delivered. An empty list is a valid
 *   answer (the factory has no devices) and is delivered.
 * @module
 */

import { readFile } from 'node:fs/promises';
import { formatIp, parseIp } from '../routing/ip.js';
import { RegistryError } from './registry/types.js';
import { isValidPeerName, validatePublicKey } from './registry/validate.js';

/** One validated device of the fleet API answer. */
export interface FleetDevice {
  /** Device name (a valid peer name). */
  name: string;
  /** Public key, canonical base64. */
  pubkey: string;
  /** IPv4 address, canonical text. */
  ip: string;
  /** False: keep the device registered but not configured. */
  enabled: boolean;
}

/** Why a poll failed. */
export type FleetApiErrorKind = 'token' | 'network' | 'timeout' | 'http' | 'json' | 'shape';

/** A failed poll. The message never contains the token. */
export class FleetApiError extends Error {
  override name = 'FleetApiError';
  /** Failure class. */
  readonly kind: FleetApiErrorKind;
  /** HTTP status, for `http` failures. */
  readonly status?: number;

  /** @param kind failure class; @param message text without secrets; @param status HTTP status */
  constructor(kind: FleetApiErrorKind, message: string, status?: number) {
    super(message);
    this.kind = kind;
    if (status !== undefined) this.status = status;
  }
}

/** Timer functions (injectable for tests). */
export interface FleetTimers {
  /** Schedule `fn` after `ms`. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancel a handle returned by `setTimeout`. */
  clearTimeout(handle: unknown): void;
}

/** Options of {@link FleetApiSource}. */
export interface FleetApiOptions {
  /** Base URL of the API, `http://` or `https://` (e.g. `https://api.foundries.io`). */
  apiUrl: string;
  /** Factory name. */
  factory: string;
  /** File holding the API token (never pass the token itself). */
  tokenFile: string;
  /** Poll interval after a success, ms (default 300 000). Also the backoff cap. */
  intervalMs?: number;
  /** Request timeout, ms (default 15 000). */
  timeoutMs?: number;
  /** First retry delay after a failure, ms (default 5 000); doubles up to `intervalMs`. */
  initialBackoffMs?: number;
  /** `fetch` implementation (default the global one). */
  fetchImpl?: typeof fetch;
  /** Clock, Unix ms (for {@link FleetApiSource.status}). */
  now?: () => number;
  /** Log sink for one-line messages (never receives the token). */
  log?: (line: string) => void;
  /** Timer functions (default the global ones). */
  timers?: FleetTimers;
}

/** Health of the source, for status displays. */
export interface FleetApiStatus {
  /** Time of the last successful poll, Unix ms. */
  lastSuccessAt: number | null;
  /** Message of the last failure since the last success, if any. */
  lastError: string | null;
  /** Failures since the last success. */
  consecutiveFailures: number;
  /** Delay before the next scheduled poll, ms (null when not running). */
  nextPollInMs: number | null;
  /** Devices delivered by the last successful poll. */
  devices: number;
}

const DEFAULT_INTERVAL_MS = 300_000;
const DEFAULT_TIMEOUT_MS = 15_000;
const DEFAULT_BACKOFF_MS = 5_000;
const BODY_SNIPPET = 200;

/** Polls the fleet API and delivers validated device lists; see the module documentation. */
export class FleetApiSource {
  /** The URL polled (contains no secret). */
  readonly url: string;
  readonly #tokenFile: string;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #initialBackoffMs: number;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  readonly #log: (line: string) => void;
  readonly #timers: FleetTimers;
  #token: string | null = null;
  #timer: unknown = null;
  #running = false;
  #inflight: AbortController | null = null;
  #backoffMs: number;
  #status: FleetApiStatus = { lastSuccessAt: null, lastError: null, consecutiveFailures: 0, nextPollInMs: null, devices: 0 };

  /** @param opts see {@link FleetApiOptions} */
  constructor(opts: FleetApiOptions) {
    let base: URL;
    try {
      base = new URL(opts.apiUrl);
    } catch {
      throw new FleetApiError('shape', `fleet API URL ${JSON.stringify(opts.apiUrl)} is not a valid URL; pass e.g. https://api.foundries.io`);
    }
    if (base.protocol !== 'https:' && base.protocol !== 'http:') {
      throw new FleetApiError('shape', `fleet API URL must start with https:// or http://, not ${base.protocol}`);
    }
    if (base.username !== '' || base.password !== '') {
      throw new FleetApiError('shape', 'fleet API URL must not contain credentials; put the token in the token file');
    }
    if (typeof opts.factory !== 'string' || opts.factory === '') throw new FleetApiError('shape', 'fleet API: the factory name is missing');
    const path = base.pathname.replace(/\/+$/, '');
    this.url = `${base.origin}${path}/ota/factories/${encodeURIComponent(opts.factory)}/wireguard-ips/`;
    this.#tokenFile = opts.tokenFile;
    this.#intervalMs = positive(opts.intervalMs, DEFAULT_INTERVAL_MS);
    this.#timeoutMs = positive(opts.timeoutMs, DEFAULT_TIMEOUT_MS);
    this.#initialBackoffMs = Math.min(positive(opts.initialBackoffMs, DEFAULT_BACKOFF_MS), this.#intervalMs);
    this.#backoffMs = this.#initialBackoffMs;
    this.#fetch = opts.fetchImpl ?? fetch;
    this.#now = opts.now ?? Date.now;
    this.#timers = opts.timers ?? {
      setTimeout: (fn, ms) => setTimeout(fn, ms),
      clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
    };
    const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));
    this.#log = (line) => log(this.#scrub(line));
    if (base.protocol === 'http:' && !['localhost', '127.0.0.1', '[::1]'].includes(base.hostname)) {
      this.#log(`fleet-api: warning: ${base.origin} is plain HTTP; the API token travels unencrypted`);
    }
  }

  /** Replace any occurrence of the token in `text`. */
  #scrub(text: string): string {
    const t = this.#token;
    return t !== null && t.length >= 4 ? text.split(t).join('[redacted]') : text;
  }

  async #readToken(): Promise<string> {
    let text: string;
    try {
      text = await readFile(this.#tokenFile, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      throw new FleetApiError('token', `cannot read the API token file ${this.#tokenFile} (${code}); create it with the token on one line, mode 0600`);
    }
    const token = text.trim();
    if (token === '') throw new FleetApiError('token', `the API token file ${this.#tokenFile} is empty; put the token in it`);
    if (!/^[\x21-\x7e]+$/.test(token)) {
      throw new FleetApiError('token', `the API token file ${this.#tokenFile} holds characters that cannot be sent in a header (spaces, line breaks or non-ASCII); it must contain only the token`);
    }
    this.#token = token;
    return token;
  }

  /**
   * Fetch and validate the device list once. Invalid entries are logged
   * and left out. Does not call the `start` callback.
   * @throws FleetApiError when the poll failed as a whole (message without the token)
   */
  async pollOnce(): Promise<FleetDevice[]> {
    try {
      return await this.#poll();
    } catch (e) {
      if (e instanceof FleetApiError) throw new FleetApiError(e.kind, this.#scrub(e.message), e.status);
      throw new FleetApiError('network', this.#scrub(`unexpected failure: ${(e as Error)?.message ?? String(e)}`));
    }
  }

  async #poll(): Promise<FleetDevice[]> {
    const token = await this.#readToken();
    const ac = new AbortController();
    this.#inflight = ac;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, this.#timeoutMs);
    let body: string;
    try {
      let res: Response;
      try {
        res = await this.#fetch(this.url, {
          method: 'GET',
          headers: { 'OSF-TOKEN': token, accept: 'application/json' },
          signal: ac.signal,
          redirect: 'error',
        });
        body = await res.text();
      } catch (e) {
        if (timedOut) throw new FleetApiError('timeout', `no complete answer within ${this.#timeoutMs / 1000} s`);
        if (ac.signal.aborted) throw new FleetApiError('network', 'request cancelled (source stopped)');
        throw new FleetApiError('network', describeNetworkError(e));
      }
      if (res.status < 200 || res.status > 299) {
        const snippet = body.replace(/\s+/g, ' ').trim().slice(0, BODY_SNIPPET);
        const hint = res.status === 401 || res.status === 403 ? ' (check the token and its scopes)' : res.status === 404 ? ' (check the factory name and API URL)' : '';
        throw new FleetApiError('http', `HTTP ${res.status}${hint}${snippet ? `: ${snippet}` : ''}`, res.status);
      }
    } finally {
      clearTimeout(timer);
      if (this.#inflight === ac) this.#inflight = null;
    }
    let data: unknown;
    try {
      data = JSON.parse(body);
    } catch {
      throw new FleetApiError('json', `the answer is not JSON (${body.length} bytes)`);
    }
    if (!Array.isArray(data)) throw new FleetApiError('shape', `the answer is not a list of devices (got ${data === null ? 'null' : typeof data})`);
    const out: FleetDevice[] = [];
    const names = new Set<string>();
    const keys = new Map<string, string>();
    const ips = new Map<string, string>();
    data.forEach((raw: unknown, i) => {
      const where = `entry ${i}${isObj(raw) && typeof raw['name'] === 'string' ? ` (${JSON.stringify(raw['name'].slice(0, 70))})` : ''}`;
      const skip = (why: string) => this.#log(`fleet-api: ${where}: ${why}; entry skipped`);
      if (!isObj(raw)) return skip('not an object');
      const name = raw['name'];
      if (!isValidPeerName(name)) return skip('the name is missing or not a valid peer name (1–63 characters from A–Z a–z 0–9 . _ -)');
      if (names.has(name)) return skip(`device ${name} is listed more than once`);
      let pubkey: string;
      try {
        pubkey = validatePublicKey(raw['pubkey'], 'pubkey');
      } catch (e) {
        return skip(e instanceof RegistryError ? e.message : 'invalid pubkey');
      }
      const k = keys.get(pubkey);
      if (k !== undefined) return skip(`pubkey already used by device ${k}`);
      let ip: string;
      try {
        if (typeof raw['ip'] !== 'string') throw new Error('missing');
        const a = parseIp(raw['ip'].replace(/\/32$/, ''));
        if (a.family !== 4) throw new Error('not IPv4');
        ip = formatIp(a.bytes);
      } catch (e) {
        return skip(`ip ${JSON.stringify(raw['ip'])} is not an IPv4 address (${(e as Error).message})`);
      }
      const o = ips.get(ip);
      if (o !== undefined) return skip(`ip ${ip} already used by device ${o}`);
      const enabled = raw['enabled'];
      if (enabled !== undefined && typeof enabled !== 'boolean') return skip('"enabled" must be true or false');
      names.add(name);
      keys.set(pubkey, name);
      ips.set(ip, name);
      out.push({ name, pubkey, ip, enabled: enabled ?? true });
    });
    if (data.length > 0 && out.length === 0) {
      throw new FleetApiError('shape', `none of the ${data.length} entries of the answer is usable (see the lines above)`);
    }
    return out;
  }

  /**
   * Poll now and then every `intervalMs`; call `onDevices` with each
   * successful answer. Failures are retried with backoff and never call
   * `onDevices`. Calling `start` again while running does nothing.
   */
  start(onDevices: (list: FleetDevice[]) => void): void {
    if (this.#running) return;
    this.#running = true;
    this.#backoffMs = this.#initialBackoffMs;
    const run = async () => {
      this.#timer = null;
      this.#status.nextPollInMs = null;
      let delay: number;
      try {
        const list = await this.pollOnce();
        if (!this.#running) return;
        this.#status = { ...this.#status, lastSuccessAt: this.#now(), lastError: null, consecutiveFailures: 0, devices: list.length };
        this.#backoffMs = this.#initialBackoffMs;
        delay = this.#intervalMs;
        try {
          onDevices(list);
        } catch (e) {
          this.#log(`fleet-api: applying ${list.length} devices failed: ${(e as Error)?.message ?? String(e)}`);
        }
      } catch (e) {
        if (!this.#running) return;
        delay = this.#backoffMs;
        this.#backoffMs = Math.min(this.#backoffMs * 2, this.#intervalMs);
        const msg = (e as Error).message;
        this.#status = { ...this.#status, lastError: msg, consecutiveFailures: this.#status.consecutiveFailures + 1 };
        this.#log(`fleet-api: GET ${this.url} failed: ${msg}; keeping the last known devices, retrying in ${formatDelay(delay)}`);
      }
      this.#status.nextPollInMs = delay;
      this.#timer = this.#timers.setTimeout(() => void run(), delay);
    };
    void run();
  }

  /** Stop polling and cancel a request in flight; its answer is discarded. */
  stop(): void {
    this.#running = false;
    if (this.#timer !== null) this.#timers.clearTimeout(this.#timer);
    this.#timer = null;
    this.#status.nextPollInMs = null;
    this.#inflight?.abort();
    this.#inflight = null;
  }

  /** Health of the source. */
  status(): FleetApiStatus {
    return { ...this.#status };
  }
}

function positive(v: number | undefined, dflt: number): number {
  return v !== undefined && Number.isFinite(v) && v > 0 ? v : dflt;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function formatDelay(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 100) / 10} s` : `${ms} ms`;
}

/** Describe a fetch failure by its cause (ECONNREFUSED, ENOTFOUND, TLS…), without headers. */
function describeNetworkError(e: unknown): string {
  const err = e as { message?: string; cause?: { code?: string; message?: string } };
  const cause = err?.cause;
  if (cause?.code) return `${cause.code}${cause.message ? ` (${cause.message})` : ''}`;
  return cause?.message ?? err?.message ?? String(e);
}
