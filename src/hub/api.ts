/**
 * The hub's registration API: `POST /v1/register`, over HTTPS with the
 * hub's self-signed certificate (agents pin it, see `./tls.ts`), or plain
 * HTTP on a loopback address only.
 *
 * Request: `Authorization: Bearer ID.SECRET` and a JSON body (at most
 * {@link MAX_BODY_BYTES}) `{agent_id, public_key, labels?, agent_credential?}`.
 * Answer (always JSON, same shape for every outcome; `agent_credential` when
 * the hub issues one — the agent keeps it and sends it to change its key):
 *
 * | outcome                           | status | `reason`               |
 * | --------------------------------- | ------ | ---------------------- |
 * | new agent                         | 200    | `registered`           |
 * | same agent id and key again       | 200    | `already_registered`   |
 * | same agent id, new key            | 200    | `rekeyed`              |
 * | missing/unknown/revoked token, expired or used-up token for a new agent | 401 | `unauthorized` |
 * | bad JSON, missing or bad fields   | 400    | `invalid_request`      |
 * | body larger than the limit        | 413    | `invalid_request`      |
 * | malformed or low-order key        | 400    | `invalid_public_key`   |
 * | key used by another peer, agent id owned by another source, new key without the agent credential | 409 | `identity_conflict` |
 * | no free address                   | 409    | `subnet_exhausted`     |
 * | registry cannot be read/written   | 503    | `store_unavailable`    |
 * | unknown path / method             | 404 / 405 | `not_found` / `method_not_allowed` |
 *
 * `subnet_exhausted` is a 409 (a conflict with the state of the hub that an
 * admin resolves) rather than 507, which is WebDAV's "insufficient storage".
 *
 * Everything is validated before the registry's single transaction, which
 * checks the token, allocates the address, inserts the agent and counts the
 * token use together; a refused request consumes nothing. Registry calls are
 * asynchronous and bounded (a locked or unreachable store answers 503 within
 * the store timeout). Neither the token nor the credential is ever logged.
 * @module
 */

import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { formatEndpoint } from '../device/types.js';
import type { ListenAddress } from '../util/listen-address.js';
import type { Registry } from './registry/index.js';
import { RegistryError, type HubRecord, type RegisterAgentResult } from './registry/types.js';
import { isValidPeerName } from './registry/validate.js';
import { AGENT_KEEPALIVE, isLoopback, type AcceptReason, type RefusalReason, type RegisterRequest, type RegisterResponse } from './protocol.js';

/** Largest accepted request body. */
export const MAX_BODY_BYTES = 4096;

// The wire format, shared with the agent (which must not load the registry), lives in ./protocol.ts.
export {
  AGENT_KEEPALIVE,
  isLoopback,
  type AcceptReason,
  type RefusalReason,
  type RegisterHub,
  type RegisterPeer,
  type RegisterRequest,
  type RegisterResponse,
} from './protocol.js';

/** HTTP status of each refusal. */
export const REFUSAL_STATUS: Readonly<Record<RefusalReason, number>> = {
  unauthorized: 401,
  invalid_request: 400,
  invalid_public_key: 400,
  identity_conflict: 409,
  subnet_exhausted: 409,
  store_unavailable: 503,
  not_found: 404,
  method_not_allowed: 405,
  internal_error: 500,
};

/** Map a registry error to a refusal reason. */
export function refusalFor(e: unknown): RefusalReason {
  if (!(e instanceof RegistryError)) return 'internal_error';
  switch (e.code) {
    case 'UNAUTHORIZED':
      return 'unauthorized';
    case 'INVALID_KEY':
      return 'invalid_public_key';
    case 'KEY_CONFLICT':
    case 'NAME_CONFLICT':
    case 'IDENTITY_CONFLICT':
    case 'ADDRESS_TAKEN':
      return 'identity_conflict';
    case 'SUBNET_EXHAUSTED':
      return 'subnet_exhausted';
    case 'STORE_UNAVAILABLE':
    case 'NOT_INITIALIZED':
    case 'SUBNET_CHANGED':
      return 'store_unavailable';
    default:
      return 'invalid_request';
  }
}

export { parseListenAddress, type ListenAddress } from '../util/listen-address.js';

/** Options of {@link RegistrationApi.start}. */
export interface RegistrationApiOptions {
  /** The hub registry. */
  registry: Registry;
  /** Where to listen. */
  listen: ListenAddress;
  /** TLS key and certificate (PEM); null serves plain HTTP, allowed on loopback addresses only. */
  tls: { keyPem: string; certPem: string } | null;
  /** The hub's public key, base64. */
  hubPublicKey: string;
  /** The hub's UDP port (for the default endpoint). */
  listenPort: number;
  /**
   * The hub endpoint told to agents (`host:port`). Default: the local
   * address the request arrived on, with the hub's UDP port.
   */
  endpoint?: string;
  /** The hubs listed in every accepted answer (see `RegisterResponse.hubs`). */
  hubs?: () => readonly HubRecord[];
  /** Called (synchronously, before the answer is sent) after every accepted registration. */
  onRegistered?: (r: RegisterAgentResult) => void;
  /** Id of this hub in the registry's hub list (the home hub of the agents it registers), once known. */
  hubId?: () => number | undefined;
  /** Log sink (never receives tokens). */
  log?: (level: 'error' | 'info' | 'debug', message: string) => void;
  /** Called with the outcome of every request (metrics: registrations by result). */
  onResult?: (result: AcceptReason | RefusalReason) => void;
}

class Refusal extends Error {
  constructor(
    readonly reason: RefusalReason,
    message: string,
    readonly status = REFUSAL_STATUS[reason],
  ) {
    super(message);
  }
}

function emptyAnswer(reason: RefusalReason, message: string): RegisterResponse {
  return {
    accepted: false,
    reason,
    message,
    assigned_ip: null,
    mesh_subnet: null,
    hub_public_key: null,
    hub_endpoint: null,
    peers: [],
    registered_at: null,
  };
}

/** The running registration API server. */
export class RegistrationApi {
  readonly #server: http.Server;
  readonly #opts: RegistrationApiOptions;
  /** The bound address. */
  readonly address: ListenAddress;

  private constructor(server: http.Server, opts: RegistrationApiOptions, address: ListenAddress) {
    this.#server = server;
    this.#opts = opts;
    this.address = address;
  }

  /** `https://host:port` (or `http://`) of the server. */
  get url(): string {
    return `${this.#opts.tls ? 'https' : 'http'}://${formatEndpoint(this.address)}`;
  }

  /**
   * Start listening.
   * @throws Error when plain HTTP is asked for on a non-loopback address, or the address cannot be bound
   */
  static async start(opts: RegistrationApiOptions): Promise<RegistrationApi> {
    if (opts.tls === null && !isLoopback(opts.listen.host)) {
      throw new Error(
        `refusing plain HTTP on ${opts.listen.host}: enrollment tokens would cross the network in clear text; ` +
          `--api-insecure-http is allowed only on a loopback address (127.0.0.1, ::1); drop it to serve HTTPS`,
      );
    }
    let api: RegistrationApi | null = null;
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => api!.#handle(req, res);
    const server = opts.tls ? https.createServer({ key: opts.tls.keyPem, cert: opts.tls.certPem, minVersion: 'TLSv1.2' }, handler) : http.createServer(handler);
    server.headersTimeout = 10_000;
    server.requestTimeout = 15_000;
    server.keepAliveTimeout = 5_000;
    server.on('tlsClientError', (e: Error) => opts.log?.('debug', `registration API: TLS error: ${e.message}`));
    server.on('clientError', (_e, sock) => sock.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new Error(`registration API: cannot listen on ${formatEndpoint(opts.listen)}: ${e.code === 'EADDRINUSE' ? 'address already in use' : e.message}`)),
      );
      server.listen({ host: opts.listen.host, port: opts.listen.port, backlog: 1024 }, () => resolve());
    });
    const a = server.address() as AddressInfo;
    api = new RegistrationApi(server, opts, { host: opts.listen.host, port: a.port });
    opts.log?.('info', `registration API listening on ${api.url}`);
    return api;
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    void this.#serve(req, res);
  }

  async #serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const send = (status: number, body: RegisterResponse, close = false) => {
      const text = JSON.stringify(body) + '\n';
      const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' };
      if (status === 401) headers['www-authenticate'] = 'Bearer';
      if (close) headers.connection = 'close';
      res.writeHead(status, headers).end(text);
    };
    const from = req.socket.remoteAddress ?? '?';
    const refuse = (r: Refusal, agent: string) => {
      const log = r.reason === 'store_unavailable' || r.reason === 'internal_error' ? 'error' : 'info';
      this.#opts.log?.(log, `registration refused (${r.reason}) for ${agent} from ${from}: ${r.message}`);
      this.#opts.onResult?.(r.reason);
      // A body we did not read (too large) cannot be followed by another request on this connection.
      send(r.status, emptyAnswer(r.reason, r.message), r.status === 413 || !req.complete);
    };
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/v1/register') return refuse(new Refusal('not_found', `no such endpoint ${path}; use POST /v1/register`), '?');
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return refuse(new Refusal('method_not_allowed', `use POST for /v1/register, not ${req.method}`), '?');
    }
    const auth = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (auth === null) return refuse(new Refusal('unauthorized', 'missing "Authorization: Bearer TOKEN" header'), '?');
    const token = auth[1]!;
    try {
      await this.#opts.registry.checkToken(token);
    } catch (e) {
      return refuse(new Refusal(refusalFor(e), (e as Error).message), '?');
    }
    if (res.destroyed) return;
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > MAX_BODY_BYTES) {
      return refuse(new Refusal('invalid_request', `request body of ${declared} bytes is larger than the limit of ${MAX_BODY_BYTES}`, 413), '?');
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        over = true;
        refuse(new Refusal('invalid_request', `request body is larger than the limit of ${MAX_BODY_BYTES} bytes`, 413), '?');
        req.pause();
        return;
      }
      chunks.push(c);
    });
    req.on('error', () => undefined);
    req.on('end', () => void this.#register(req, token, Buffer.concat(chunks), over, send, refuse, from));
  }

  async #register(
    req: http.IncomingMessage,
    token: string,
    raw: Buffer,
    over: boolean,
    send: (status: number, body: RegisterResponse) => void,
    refuse: (r: Refusal, agent: string) => void,
    from: string,
  ): Promise<void> {
    if (over) return;
    let agent = '?';
    try {
      const body = parseBody(raw);
      agent = `agent ${body.agent_id}`;
      const r = await this.#opts.registry.registerAgent({
        token,
        agentId: body.agent_id,
        publicKey: body.public_key,
        ...(body.labels !== undefined ? { labels: body.labels } : {}),
        ...(body.agent_credential !== undefined ? { credential: body.agent_credential } : {}),
        ...(this.#opts.hubId?.() !== undefined ? { homeHub: this.#opts.hubId()! } : {}),
      });
      try {
        this.#opts.onRegistered?.(r);
      } catch (e) {
        this.#opts.log?.('error', `registration API: applying agent ${r.name}: ${(e as Error).message}`);
      }
      const reason: AcceptReason = r.created ? 'registered' : r.rekeyed ? 'rekeyed' : 'already_registered';
      this.#opts.onResult?.(reason);
      this.#opts.log?.(
        'info',
        `registration ${reason}: agent ${r.name} ${r.publicKey} → ${r.ipv4} (token ${r.tokenId}${r.consumed ? ', one use' : ''}) from ${from}`,
      );
      send(200, this.#answer(r, reason, req));
    } catch (e) {
      if (e instanceof Refusal) return refuse(e, agent);
      const reason = refusalFor(e);
      refuse(new Refusal(reason, reason === 'internal_error' ? `internal error: ${(e as Error).message}` : (e as Error).message), agent);
    }
  }

  #answer(r: RegisterAgentResult, reason: AcceptReason, req: http.IncomingMessage): RegisterResponse {
    const reg = this.#opts.registry;
    let endpoint = this.#opts.endpoint;
    if (endpoint === undefined) {
      let local = req.socket.localAddress ?? this.address.host;
      if (local.startsWith('::ffff:') && local.includes('.')) local = local.slice(7);
      endpoint = formatEndpoint({ host: local, port: this.#opts.listenPort });
    }
    const allowed = [reg.subnet, ...(reg.ipv6Subnet ? [reg.ipv6Subnet] : [])];
    return {
      accepted: true,
      reason,
      assigned_ip: r.ipv4,
      ...(r.ipv6 ? { assigned_ip6: r.ipv6, mesh_subnet6: reg.ipv6Subnet } : {}),
      mesh_subnet: reg.subnet,
      hub_public_key: this.#opts.hubPublicKey,
      hub_endpoint: endpoint,
      peers: [{ public_key: this.#opts.hubPublicKey, endpoint, allowed_ips: allowed, persistent_keepalive: AGENT_KEEPALIVE }],
      registered_at: new Date(r.createdAt).toISOString(),
      ...(this.#opts.hubs ? { hubs: this.#opts.hubs().map((h) => ({ public_key: h.publicKey, endpoint: h.endpoint ?? '', api_url: h.apiUrl, cert_pin: h.certPin })) } : {}),
      ...(r.credential !== undefined ? { agent_credential: r.credential } : {}),
    };
  }

  /** Stop accepting connections and close the open ones. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}

/** Parse and check the JSON body (shape and key format; the registry checks the rest again). */
function parseBody(raw: Buffer): RegisterRequest {
  let v: unknown;
  try {
    v = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw new Refusal('invalid_request', `the body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Refusal('invalid_request', 'the body must be a JSON object {agent_id, public_key, labels?}');
  const o = v as Record<string, unknown>;
  if (o.agent_id === undefined) throw new Refusal('invalid_request', 'agent_id is missing');
  if (!isValidPeerName(o.agent_id)) throw new Refusal('invalid_request', 'agent_id must be 1–63 characters from A–Z, a–z, 0–9, ".", "_" and "-"');
  if (o.public_key === undefined) throw new Refusal('invalid_request', 'public_key is missing');
  if (typeof o.public_key !== 'string') throw new Refusal('invalid_public_key', 'public_key must be a base64 string as printed by "wg pubkey"');
  // The key itself is checked once, by Registry.registerAgent (INVALID_KEY → invalid_public_key), before the store is touched.
  if (o.labels !== undefined && (typeof o.labels !== 'object' || o.labels === null || Array.isArray(o.labels))) {
    throw new Refusal('invalid_request', 'labels must be an object of name → text');
  }
  if (o.agent_credential !== undefined && typeof o.agent_credential !== 'string') throw new Refusal('invalid_request', 'agent_credential must be the text the hub returned at the first registration');
  return {
    agent_id: o.agent_id,
    public_key: o.public_key,
    ...(o.labels !== undefined ? { labels: o.labels as Record<string, string> } : {}),
    ...(o.agent_credential !== undefined ? { agent_credential: o.agent_credential } : {}),
  };
}
