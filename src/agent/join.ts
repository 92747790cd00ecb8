/**
 * Joining a hub as an agent: register first, then create the interface once
 * with the final address, add the hub as the only peer and wait for the
 * handshake event. No step sleeps: every wait is on an event (TCP/TLS
 * connect, HTTP answer, handshake) bounded by a timeout with a clear error.
 *
 * Transport security of the registration (the request carries the
 * enrollment token):
 * - `https://` needs `caHash` (`sha256:HEX` of the hub certificate's
 *   SubjectPublicKeyInfo, printed by `tsguard hub token create`); the TLS
 *   connection is checked against it before a byte of the request is sent.
 *   Without a hash it is refused unless `insecure` is set explicitly.
 * - `http://` is accepted only for a loopback host (the hub serves plain HTTP
 *   only there).
 *
 * State (`stateDir`, mode 0700): `private.key` (the agent's WireGuard key,
 * 0600, written atomically; the agent's identity across restarts),
 * `credential` (0600: the agent credential the hub returned, sent with every
 * registration so that a new key for this agent id is accepted) and
 * `registration.json` (the hub's last answer, no secrets).
 * @module
 */

import { mkdirSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { hostname } from 'node:os';
import { join as joinPath } from 'node:path';
import tls from 'node:tls';
import { createSecretFileExclusiveSync, readSecretFileSync, writeFileAtomic0600 } from '../os/fsutil.js';
import { loadCrypto } from '../crypto/index.js';
import { loadNativeCrypto } from '../io/native.js';
import { isZeroKey, keyFromBase64, keyToBase64 } from '../crypto/keys.js';
import { serveUapi, type DaemonLog } from '../daemon/daemon.js';
import type { Device } from '../device/device.js';
import { formatEndpoint, type Endpoint } from '../device/types.js';
import { AGENT_KEEPALIVE, isLoopback, type RegisterRequest, type RegisterResponse } from '../hub/protocol.js';
import { certificatePin, parsePin, pinsEqual } from '../hub/tls.js';
import { Runtime } from '../io/runtime.js';
import { runtimeLog } from '../log/logger.js';
import { logPeerEvents } from '../log/peer-events.js';
import { ifnameProblem } from '../os/ifname.js';
import { configureLink } from '../os/link.js';
import { resolveEndpoint } from '../os/resolve.js';
import { formatPrefix, parseIp, parsePrefix, prefixContainsAddress } from '../routing/ip.js';
import type { UapiServer } from '../uapi/server.js';

/** File name of the agent's private key in the state directory. */
export const AGENT_KEY_FILE = 'private.key';
/** File name of the agent credential in the state directory. */
export const AGENT_CREDENTIAL_FILE = 'credential';
/** File name of the last registration answer in the state directory. */
export const REGISTRATION_FILE = 'registration.json';

/** Why joining failed. */
export type JoinErrorCode =
  | 'USAGE'
  | 'INSECURE'
  | 'CERT_MISMATCH'
  | 'CONNECT'
  | 'TIMEOUT'
  | 'REFUSED'
  | 'BAD_RESPONSE'
  | 'STATE'
  | 'INTERFACE'
  | 'HANDSHAKE_TIMEOUT';

/** Every failure of {@link join} and {@link registerWithHub}. */
export class JoinError extends Error {
  override name = 'JoinError';
  /** Machine-readable kind of failure. */
  readonly code: JoinErrorCode;
  /** The hub's refusal reason (`unauthorized`, `subnet_exhausted`, …) for `REFUSED`. */
  readonly reason?: string;
  /** HTTP status for `REFUSED`. */
  readonly status?: number;

  /** @param code kind; @param message human text; @param extra refusal details */
  constructor(code: JoinErrorCode, message: string, extra: { reason?: string; status?: number; cause?: unknown } = {}) {
    super(message, extra.cause !== undefined ? { cause: extra.cause } : undefined);
    this.code = code;
    if (extra.reason !== undefined) this.reason = extra.reason;
    if (extra.status !== undefined) this.status = extra.status;
  }
}

/** Options of {@link registerWithHub}. */
export interface RegisterOptions {
  /** Enrollment token `ID.SECRET`. */
  token: string;
  /** Pin of the hub certificate, `sha256:HEX` (required for https unless `insecure`). */
  caHash?: string;
  /** Accept an https hub without checking its certificate. */
  insecure?: boolean;
  /** Bound on connect + TLS + answer, ms (default 15000). */
  timeoutMs?: number;
}

function registerUrl(text: string): URL {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new JoinError('USAGE', `hub URL "${text}" is not valid: expected https://HOST:PORT as printed by "tsguard hub token create"`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new JoinError('USAGE', `hub URL "${text}": use https:// (or http:// to a loopback address)`);
  const base = u.pathname.replace(/\/+$/, '');
  u.pathname = base.endsWith('/v1/register') ? base : `${base}/v1/register`;
  return u;
}

/** Check the URL, pin and insecure flag against the transport policy (see the module documentation). */
function checkTransport(u: URL, opts: RegisterOptions): string | null {
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (u.protocol === 'http:') {
    if (opts.caHash !== undefined) throw new JoinError('USAGE', `--ca-hash needs an https:// hub URL, not ${u.origin}`);
    if (!isLoopback(host)) {
      throw new JoinError('INSECURE', `refusing to send the enrollment token over plain HTTP to ${host}: use https:// with --ca-hash (plain HTTP is only for a hub on a loopback address)`);
    }
    return null;
  }
  if (opts.caHash !== undefined) {
    try {
      return parsePin(opts.caHash);
    } catch (e) {
      throw new JoinError('USAGE', (e as Error).message);
    }
  }
  if (!opts.insecure) {
    throw new JoinError(
      'INSECURE',
      `refusing to send the enrollment token to ${u.origin} without checking the hub's certificate: pass --ca-hash sha256:HEX ` +
        `(printed by "tsguard hub token create" on the hub), or --insecure to skip the check`,
    );
  }
  return null;
}

/** Connect (and for https, finish TLS and check the pin) before anything is sent. */
function connect(u: URL, pin: string | null, signal: AbortSignal): Promise<net.Socket> {
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  return new Promise((resolve, reject) => {
    const fail = (e: JoinError) => {
      sock.destroy();
      reject(e);
    };
    const onAbort = () => fail(signal.reason as JoinError);
    let sock: net.Socket;
    if (u.protocol === 'https:') {
      // The certificate is checked against the pin below, never against a CA: `ca: []` also spares
      // Node building its root store (~25 ms of CPU on the first TLS connection).
      const t = tls.connect({ host, port, ...(net.isIP(host) ? {} : { servername: host }), rejectUnauthorized: false, ca: [], minVersion: 'TLSv1.2' });
      sock = t;
      t.once('secureConnect', () => {
        signal.removeEventListener('abort', onAbort);
        if (pin !== null) {
          const cert = t.getPeerX509Certificate();
          const got = cert ? certificatePin(cert) : 'none';
          if (!pinsEqual(got, pin)) {
            return fail(
              new JoinError(
                'CERT_MISMATCH',
                `the certificate of ${u.host} does not match --ca-hash: it has ${got}, expected ${pin}; ` +
                  `check the hash printed by "tsguard hub token create" on the hub (someone may be intercepting the connection)`,
              ),
            );
          }
        }
        resolve(t);
      });
    } else {
      sock = net.connect({ host, port });
      sock.once('connect', () => {
        signal.removeEventListener('abort', onAbort);
        resolve(sock);
      });
    }
    sock.once('error', (e: NodeJS.ErrnoException) => {
      signal.removeEventListener('abort', onAbort);
      fail(new JoinError('CONNECT', `cannot reach the hub at ${u.host}: ${e.code === 'ECONNREFUSED' ? 'connection refused (is the hub running with --api?)' : e.message}`, { cause: e }));
    });
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * `POST /v1/register` to the hub at `url` (its base URL, e.g.
 * `https://192.0.2.1:8443`). Resolves with the accepted answer.
 * @throws JoinError `USAGE`, `INSECURE`, `CERT_MISMATCH`, `CONNECT`, `TIMEOUT`, `REFUSED` (with `reason`), `BAD_RESPONSE`
 */
export async function registerWithHub(url: string, body: RegisterRequest, opts: RegisterOptions): Promise<RegisterResponse> {
  const u = registerUrl(url);
  const pin = checkTransport(u, opts);
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new JoinError('TIMEOUT', `no answer from the hub at ${u.host} within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
  try {
    const sock = await connect(u, pin, ac.signal);
    const payload = JSON.stringify(body);
    return await new Promise<RegisterResponse>((resolve, reject) => {
      const req = http.request(
        {
          createConnection: () => sock,
          method: 'POST',
          host: u.hostname,
          port: u.port,
          path: u.pathname,
          headers: {
            host: u.host,
            authorization: `Bearer ${opts.token}`,
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(payload),
            connection: 'close',
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size <= 65536) chunks.push(c);
          });
          res.on('error', (e) => reject(new JoinError('CONNECT', `reading the hub's answer: ${e.message}`, { cause: e })));
          res.on('end', () => {
            let v: RegisterResponse;
            try {
              v = JSON.parse(Buffer.concat(chunks).toString('utf8')) as RegisterResponse;
            } catch {
              return reject(new JoinError('BAD_RESPONSE', `the hub at ${u.host} answered HTTP ${res.statusCode} without a JSON body; is this a tsguard hub?`));
            }
            if (typeof v !== 'object' || v === null || typeof v.accepted !== 'boolean') {
              return reject(new JoinError('BAD_RESPONSE', `the hub at ${u.host} answered HTTP ${res.statusCode} with an unexpected body`));
            }
            if (!v.accepted || res.statusCode !== 200) {
              return reject(
                new JoinError('REFUSED', `the hub refused the registration (${v.reason}, HTTP ${res.statusCode}): ${v.message ?? 'no details'}`, {
                  reason: String(v.reason),
                  status: res.statusCode ?? 0,
                }),
              );
            }
            resolve(v);
          });
        },
      );
      const onAbort = () => {
        req.destroy();
        reject(ac.signal.reason as JoinError);
      };
      ac.signal.addEventListener('abort', onAbort, { once: true });
      req.on('error', (e) => reject(e instanceof JoinError ? e : new JoinError('CONNECT', `registration request to ${u.host} failed: ${e.message}`, { cause: e })));
      req.end(payload);
    });
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Read the agent's private key from `stateDir/private.key`, creating the
 * directory (0700) and a new key (0600, atomic write) on first use.
 * @throws JoinError `STATE`
 */
export async function loadOrCreateAgentKey(stateDir: string): Promise<Uint8Array> {
  const path = joinPath(stateDir, AGENT_KEY_FILE);
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new JoinError('STATE', `cannot create the state directory ${stateDir}: ${(e as Error).message}`);
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    let text: string | null;
    try {
      text = readSecretFileSync(path);
    } catch (e) {
      throw new JoinError('STATE', `cannot read ${path}: ${(e as Error).message}`);
    }
    if (text !== null) {
      let key: Uint8Array;
      try {
        key = keyFromBase64(text, `agent private key in ${path}`);
      } catch (e) {
        throw new JoinError('STATE', `${(e as Error).message}; restore it, or delete it to join with a new key (the hub keeps the address of the agent id)`);
      }
      if (isZeroKey(key)) throw new JoinError('STATE', `${path} holds the all-zero key; delete it to generate a new one`);
      return key;
    }
    const key = (await loadCrypto(loadNativeCrypto)).generatePrivateKey();
    try {
      if (createSecretFileExclusiveSync(path, keyToBase64(key) + '\n')) return key;
    } catch (e) {
      key.fill(0);
      throw new JoinError('STATE', `cannot write ${path}: ${(e as Error).message}`);
    }
    key.fill(0); // another agent process created it first: use that key
  }
  throw new JoinError('STATE', `cannot read or create ${path}`);
}

/** Options of {@link join}. */
export interface JoinOptions {
  /** Base URL of the hub's registration API (`https://HOST:PORT`). */
  url: string;
  /** Enrollment token `ID.SECRET`. */
  token: string;
  /** Pin of the hub certificate, `sha256:HEX`. */
  caHash?: string;
  /** Accept an https hub without checking its certificate (not recommended). */
  insecure?: boolean;
  /** Agent id (default: the host name). */
  agentId?: string;
  /** Labels sent with the registration. */
  labels?: Record<string, string>;
  /** State directory (private key, last registration). */
  stateDir: string;
  /** Interface to create. */
  ifname: string;
  /** Local UDP port (default 0: any). */
  listenPort?: number;
  /** Bound on the handshake with the hub, ms (default 30000). */
  handshakeTimeoutMs?: number;
  /** Bound on the registration request, ms (default 15000). */
  requestTimeoutMs?: number;
  /** Serve the UAPI socket so `wg show` works (default true). */
  uapi?: boolean;
  /** Log sink (never receives the token or keys). */
  log?: DaemonLog;
  /** Called once if the interface fails after the join (e.g. it was deleted). */
  onFatal?: (err: Error) => void;
}

/** A joined agent (resolved by {@link join} once the handshake with the hub is done). */
export interface JoinResult {
  /** The agent's mesh IPv4 address. */
  address: string;
  /** The address with the mesh prefix length, as put on the interface (`10.100.0.2/24`). */
  cidr: string;
  /** The mesh subnet. */
  meshSubnet: string;
  /** The agent's IPv6 mesh address, if the hub has IPv6. */
  address6: string | null;
  /** The agent id used. */
  agentId: string;
  /** The agent's public key, base64. */
  publicKey: string;
  /** The hub's public key, base64. */
  hubPublicKey: string;
  /** The hub endpoint in use. */
  hubEndpoint: Endpoint;
  /** The hub's answer. */
  registration: RegisterResponse;
  /** The engine (emits `handshake` events). */
  device: Device;
  /** The I/O shell. */
  runtime: Runtime;
  /** Remove the interface and the UAPI socket. Idempotent. */
  close(): Promise<void>;
}

/** The hub's endpoint (`host:port`, `[v6]:port`), its host resolved by {@link resolveEndpoint}. */
async function hubEndpoint(text: string): Promise<Endpoint> {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:]+):(\d{1,5})$/.exec(text);
  if (m === null || Number(m[2]) > 65535) throw new JoinError('BAD_RESPONSE', `the hub sent an invalid endpoint "${text}"`);
  try {
    const r = await resolveEndpoint(m[1]!, Number(m[2]));
    return { host: r.host, port: r.port };
  } catch (e) {
    throw new JoinError('CONNECT', `cannot resolve the hub endpoint ${text}: ${(e as Error).message}`);
  }
}

function checkAnswer(r: RegisterResponse): { v4: string; bits: number; v6: { address: string; bits: number } | null; hubKey: Uint8Array } {
  try {
    const ip = parseIp(String(r.assigned_ip));
    const net4 = parsePrefix(String(r.mesh_subnet));
    if (ip.family !== 4 || net4.family !== 4) throw new Error('not IPv4');
    if (!prefixContainsAddress(net4, ip)) throw new Error(`assigned_ip ${r.assigned_ip} is not in mesh_subnet ${r.mesh_subnet}`);
    let v6: { address: string; bits: number } | null = null;
    if (r.assigned_ip6 && r.mesh_subnet6) {
      const ip6 = parseIp(String(r.assigned_ip6));
      const net6 = parsePrefix(String(r.mesh_subnet6));
      if (ip6.family !== 6 || net6.family !== 6) throw new Error('assigned_ip6 or mesh_subnet6 is not IPv6');
      if (!prefixContainsAddress(net6, ip6)) throw new Error(`assigned_ip6 ${r.assigned_ip6} is not in mesh_subnet6 ${r.mesh_subnet6}`);
      v6 = { address: String(r.assigned_ip6), bits: net6.bits };
    }
    return { v4: String(r.assigned_ip), bits: net4.bits, v6, hubKey: keyFromBase64(String(r.hub_public_key), 'hub_public_key') };
  } catch (e) {
    throw new JoinError('BAD_RESPONSE', `the hub's answer is incomplete or invalid (${(e as Error).message})`);
  }
}

/**
 * Join a hub (see the module documentation). Resolves once the interface is
 * up with the assigned address and the first handshake with the hub is done.
 * On failure nothing is left behind (the interface is removed).
 * @throws JoinError
 */
export async function join(opts: JoinOptions): Promise<JoinResult> {
  const log = opts.log ?? (() => undefined);
  const bad = ifnameProblem(opts.ifname);
  if (bad !== null) throw new JoinError('USAGE', bad);
  const agentId = opts.agentId ?? hostname();
  if (!/^[A-Za-z0-9._-]{1,63}$/.test(agentId)) {
    throw new JoinError('USAGE', `agent id "${agentId}" is not valid (1–63 characters from A–Z, a–z, 0–9, ".", "_", "-")${opts.agentId === undefined ? '; the host name is used by default: pass --agent-id' : ''}`);
  }
  // Check the transport policy before creating any state.
  checkTransport(registerUrl(opts.url), opts);

  const key = await loadOrCreateAgentKey(opts.stateDir);
  const c = await loadCrypto(loadNativeCrypto);
  const publicKey = keyToBase64(c.publicKey(key));

  const credentialPath = joinPath(opts.stateDir, AGENT_CREDENTIAL_FILE);
  let credential: string | undefined;
  try {
    credential = readSecretFileSync(credentialPath)?.trim() || undefined;
  } catch (e) {
    throw new JoinError('STATE', `cannot read ${credentialPath}: ${(e as Error).message}`);
  }

  // 1. Register first: the interface is created once, with the final address.
  log('info', `registering agent ${agentId} (${publicKey}) with ${opts.url}`);
  const reg = await registerWithHub(
    opts.url,
    { agent_id: agentId, public_key: publicKey, ...(opts.labels ? { labels: opts.labels } : {}), ...(credential !== undefined ? { agent_credential: credential } : {}) },
    { token: opts.token, ...(opts.caHash !== undefined ? { caHash: opts.caHash } : {}), ...(opts.insecure ? { insecure: true } : {}), ...(opts.requestTimeoutMs ? { timeoutMs: opts.requestTimeoutMs } : {}) },
  );
  const { v4, bits, v6, hubKey } = checkAnswer(reg);
  const hubPublicKey = keyToBase64(hubKey);
  const endpoint = await hubEndpoint(String(reg.hub_endpoint));
  const allowed = (reg.peers?.find((p) => p.public_key === hubPublicKey)?.allowed_ips ?? [String(reg.mesh_subnet)]).map((p) => parsePrefix(p));
  log('info', `registered (${reg.reason}): address ${v4}/${bits}, hub ${hubPublicKey} at ${formatEndpoint(endpoint)}`);
  // A new credential is the only proof of this identity for a later key change: stored before anything else.
  const { agent_credential: newCredential, ...answer } = reg;
  if (newCredential !== undefined) {
    await writeFileAtomic0600(credentialPath, newCredential + '\n').catch((e: unknown) =>
      log('error', `cannot save ${credentialPath}: ${(e as Error).message}; a later key change of this agent will need "tsguard hub agent rekey ${agentId}"`),
    );
  }
  // Saved while the interface comes up (its fsyncs run on the thread pool); awaited before join returns or throws.
  const saved = writeFileAtomic0600(
    joinPath(opts.stateDir, REGISTRATION_FILE),
    JSON.stringify({ agent_id: agentId, public_key: publicKey, url: opts.url, ...answer }, null, 2) + '\n',
  ).catch((e: unknown) => log('error', `cannot save ${REGISTRATION_FILE}: ${(e as Error).message} (continuing)`));

  // 2. The interface, once, with the assigned address.
  let fatal: ((e: Error) => void) | null = null;
  let runtime: Runtime;
  try {
    runtime = Runtime.start({
      ifname: opts.ifname,
      listenPort: opts.listenPort ?? 0,
      log: runtimeLog(log),
      onFatal: (err) => {
        const e = new Error(err.code === 'ELINKGONE' ? `interface ${opts.ifname} was deleted` : err.message);
        if (fatal) fatal(e);
        else opts.onFatal?.(e);
      },
    });
  } catch (e) {
    await saved;
    throw new JoinError('INTERFACE', `cannot create interface ${opts.ifname}: ${(e as Error).message}`, { cause: e });
  }
  let uapi: UapiServer | null = null;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await uapi?.close().catch(() => undefined);
    runtime.close();
  };
  const device = runtime.device;
  try {
    device.setPrivateKey(key);
    key.fill(0);
    // Address(es), then up: ioctls, no `ip` process. The MTU is the one the runtime gave the new
    // interface (WireGuard's default).
    const addresses = [parsePrefix(`${v4}/${bits}`, 'keep'), ...(v6 !== null ? [parsePrefix(`${v6.address}/${v6.bits}`, 'keep')] : [])];
    try {
      await configureLink(opts.ifname, { addresses });
    } catch (e) {
      throw new JoinError('INTERFACE', `cannot configure ${opts.ifname} with ${addresses.map(formatPrefix).join(' and ')}: ${(e as Error).message}`, { cause: e });
    }
    if (opts.uapi ?? true) {
      try {
        uapi = await serveUapi(opts.ifname, runtime, log);
      } catch (e) {
        log('error', `UAPI socket not served (wg show will not see ${opts.ifname}): ${(e as Error).message}`);
      }
    }

    // 3. The hub peer, then wait for the handshake event.
    const timeoutMs = opts.handshakeTimeoutMs ?? 30_000;
    await new Promise<void>((resolve, reject) => {
      const finish = (err: Error | null) => {
        clearTimeout(timer);
        off();
        fatal = null;
        if (err) reject(err);
        else resolve();
      };
      const off = device.events.on('handshake', (e) => {
        if (e.publicKey === hubPublicKey) finish(null);
      });
      const timer = setTimeout(
        () =>
          finish(
            new JoinError(
              'HANDSHAKE_TIMEOUT',
              `registered as ${v4}, but no WireGuard handshake with the hub (${hubPublicKey} at ${formatEndpoint(endpoint)}) within ${Math.round(timeoutMs / 1000)} s: ` +
                `check that UDP to ${formatEndpoint(endpoint)} is reachable from here (firewall, the hub's --endpoint)`,
            ),
          ),
        timeoutMs,
      );
      fatal = (e) => finish(new JoinError('INTERFACE', `${e.message} before the handshake with the hub`));
      runtime.batch(() =>
        device.setPeer(hubKey, { endpoint, replaceAllowedIps: true, allowedIps: allowed, persistentKeepalive: AGENT_KEEPALIVE }),
      );
    });
  } catch (e) {
    await close();
    await saved;
    throw e;
  }
  await saved;
  log('info', `handshake with the hub done; ${opts.ifname} is up with ${v4}/${bits}`);
  logPeerEvents(runtime.device, log, (pk) => (pk === hubPublicKey ? 'the hub' : undefined));
  return {
    address: v4,
    cidr: `${v4}/${bits}`,
    meshSubnet: formatPrefix(parsePrefix(String(reg.mesh_subnet))),
    address6: reg.assigned_ip6 ?? null,
    agentId,
    publicKey,
    hubPublicKey,
    hubEndpoint: endpoint,
    registration: answer,
    device,
    runtime,
    close,
  };
}
