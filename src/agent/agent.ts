/**
 * A long-running agent (`tsguard join`): {@link join} plus what keeps it up.
 *
 * - **Restart from stored state.** With a `registration.json` of this agent
 *   (same agent id and key, enrolled through this URL or a hub it lists) in
 *   the state directory, the tunnel comes up at once from it — towards the
 *   hub last in use (`home.json`) — and the registration is retried in the
 *   background with exponential backoff ({@link RETRY_MIN_MS} …
 *   {@link RETRY_MAX_MS}). A hub that is down at boot therefore no longer
 *   stops the agent; a refusal (revoked token, identity conflict) is logged
 *   and retried like an outage, the tunnel staying as it is.
 * - **Failover** (`./failover.ts`): when the home hub falls silent, the hub
 *   peer moves to the next listed hub; the agent then registers through that
 *   hub's API (its certificate pin comes from the hub list), which refreshes
 *   the hub list, and records the hub in `home.json`.
 * @module
 */

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join as joinPath } from 'node:path';
import { writeFileAtomic0600 } from '../os/fsutil.js';
import { loadCrypto } from '../crypto/index.js';
import { loadNativeCrypto } from '../io/native.js';
import { keyToBase64 } from '../crypto/keys.js';
import { AGENT_KEEPALIVE, type RegisterHub, type RegisterResponse } from '../hub/protocol.js';
import { formatIp, parsePrefix } from '../routing/ip.js';
import { Failover } from './failover.js';
import {
  join,
  JoinError,
  loadOrCreateAgentKey,
  readAgentCredential,
  registerWithHub,
  REGISTRATION_FILE,
  hubEndpoint,
  storeRegistration,
  type JoinOptions,
  type JoinResult,
} from './join.js';

/** File name of the hub in use (public key and endpoint) in the state directory. */
export const HOME_FILE = 'home.json';
/** First and longest wait between background registration attempts. */
export const RETRY_MIN_MS = 1000;
export const RETRY_MAX_MS = 60_000;

/** What `registration.json` holds: the hub's answer plus who asked. */
export interface StoredRegistration extends RegisterResponse {
  agent_id: string;
  public_key: string;
  url: string;
}

/** Options of {@link startAgent}. */
export interface AgentOptions extends Omit<JoinOptions, 'stored'> {
  /** Silence from the home hub before moving to another, ms (default: REKEY_TIMEOUT × 3). */
  failoverAfterMs?: number;
}

/** A running agent. */
export interface Agent extends JoinResult {
  /** Whether the tunnel came up from the stored registration (the hub was not asked first). */
  fromStoredState: boolean;
  /** The hub failover. */
  failover: Failover;
  /** Resolves after the next successful registration (immediately if there is none pending). */
  registered(): Promise<void>;
}

/** The stored registration in `stateDir`, or null when there is none usable. */
export function readStoredRegistration(stateDir: string): StoredRegistration | null {
  try {
    const v = JSON.parse(readFileSync(joinPath(stateDir, REGISTRATION_FILE), 'utf8')) as StoredRegistration;
    return v !== null && typeof v === 'object' && v.accepted === true && typeof v.assigned_ip === 'string' ? v : null;
  } catch {
    return null;
  }
}

/** The hubs a registration lists (older hubs: only the answering one). */
export function hubsOf(r: RegisterResponse, url: string, caHash?: string): RegisterHub[] {
  if (r.hubs !== undefined && r.hubs.length > 0) return r.hubs;
  return [{ public_key: String(r.hub_public_key), endpoint: String(r.hub_endpoint), api_url: url, cert_pin: caHash ?? null }];
}

function readHome(stateDir: string): string | null {
  try {
    const v = JSON.parse(readFileSync(joinPath(stateDir, HOME_FILE), 'utf8')) as { public_key?: unknown };
    return typeof v.public_key === 'string' ? v.public_key : null;
  } catch {
    return null;
  }
}

/** The first host of the mesh subnet: the hubs' own mesh address. */
function hubAddressOf(subnet: string): string {
  const p = parsePrefix(subnet);
  const b = p.bytes.slice();
  b[b.length - 1]! += 1;
  return formatIp(b);
}

/**
 * Start the agent: from the stored registration when there is one (see the
 * module documentation), otherwise by joining (register, interface, handshake).
 * @throws JoinError as {@link join} (a first join with the hub down still fails)
 */
export async function startAgent(opts: AgentOptions): Promise<Agent> {
  const log = opts.log ?? (() => undefined);
  const agentId = opts.agentId ?? hostname();
  const key = await loadOrCreateAgentKey(opts.stateDir);
  const publicKey = keyToBase64((await loadCrypto(loadNativeCrypto)).publicKey(key));
  key.fill(0);

  const stored = readStoredRegistration(opts.stateDir);
  const usable =
    stored !== null &&
    stored.agent_id === agentId &&
    stored.public_key === publicKey &&
    (stored.url === opts.url || hubsOf(stored, stored.url).some((h) => h.api_url === opts.url));
  let hubs: RegisterHub[];
  let joined: JoinResult;
  if (usable) {
    hubs = hubsOf(stored, stored.url, opts.url === stored.url ? opts.caHash : undefined);
    const homeKey = readHome(opts.stateDir);
    const home = hubs.find((h) => h.public_key === homeKey) ?? hubs.find((h) => h.public_key === stored.hub_public_key) ?? hubs[0]!;
    const from: RegisterResponse = {
      ...stored,
      hub_public_key: home.public_key,
      hub_endpoint: home.endpoint,
      peers: stored.peers.map((p) => ({ ...p, public_key: home.public_key, endpoint: home.endpoint })),
    };
    joined = await join({ ...opts, agentId, stored: from });
  } else {
    joined = await join({ ...opts, agentId });
    hubs = hubsOf(joined.registration, opts.url, opts.caHash);
  }

  const reg = joined.registration;
  const allowed = (reg.peers?.[0]?.allowed_ips ?? [String(reg.mesh_subnet)]).map((p) => parsePrefix(p));
  let pending: Promise<void> = Promise.resolve();
  let stopped = false;
  let retryTimer: NodeJS.Timeout | null = null;
  let generation = 0;

  /** Register through the API of hub `hub` (the one in use), retrying with backoff until it succeeds. */
  const registerVia = (hub: RegisterHub): Promise<void> => {
    const url = hub.api_url ?? opts.url;
    const caHash = hub.cert_pin ?? (url === opts.url ? opts.caHash : undefined);
    let delay = RETRY_MIN_MS;
    const mine = ++generation;
    if (retryTimer !== null) clearTimeout(retryTimer);
    return new Promise<void>((resolve) => {
      const attempt = async () => {
        // Stopped, or moved on to another hub: that hub's registration takes over.
        if (stopped || mine !== generation || failover.current !== hub.public_key) return resolve();
        try {
          const credential = readAgentCredential(opts.stateDir);
          const r = await registerWithHub(
            url,
            { agent_id: agentId, public_key: publicKey, ...(opts.labels ? { labels: opts.labels } : {}), ...(credential !== undefined ? { agent_credential: credential } : {}) },
            { token: opts.token, ...(caHash !== undefined ? { caHash } : {}), ...(opts.insecure ? { insecure: true } : {}), ...(opts.requestTimeoutMs ? { timeoutMs: opts.requestTimeoutMs } : {}) },
          );
          if (r.assigned_ip !== joined.address) {
            log('error', `the hub at ${url} assigned ${r.assigned_ip}, but the tunnel runs with ${joined.address}; keeping ${joined.address} (restart the agent to take the new address)`);
          }
          failover.setHubs(hubsOf(r, url, caHash));
          await storeRegistration(opts.stateDir, { agentId, publicKey, url }, r, log);
          log('info', `registered (${r.reason}) through ${url}; ${failover.hubs.length} hub(s) known`);
          resolve();
        } catch (e) {
          const what = e instanceof JoinError ? e.message : String(e);
          log('error', `registration through ${url} failed: ${what}; retrying in ${Math.round(delay / 1000)} s (the tunnel stays up)`);
          retryTimer = setTimeout(() => void attempt(), delay);
          delay = Math.min(delay * 2, RETRY_MAX_MS);
        }
      };
      void attempt();
    });
  };

  const saveHome = (hub: RegisterHub) =>
    writeFileAtomic0600(joinPath(opts.stateDir, HOME_FILE), JSON.stringify({ public_key: hub.public_key, endpoint: hub.endpoint }) + '\n').catch((e: unknown) =>
      log('error', `cannot save ${HOME_FILE}: ${(e as Error).message}`),
    );

  const failover = new Failover({
    device: joined.device,
    batch: (fn) => joined.runtime.batch(fn),
    hubs,
    current: joined.hubPublicKey,
    allowedIps: allowed,
    keepalive: AGENT_KEEPALIVE,
    address: joined.address,
    hubAddress: hubAddressOf(joined.meshSubnet),
    resolve: hubEndpoint,
    log,
    ...(opts.failoverAfterMs !== undefined ? { deadAfterMs: opts.failoverAfterMs } : {}),
    onSwitch: (hub) => {
      void saveHome(hub);
      pending = registerVia(hub);
    },
  });
  failover.start();
  if (usable) {
    const current = failover.hubs.find((h) => h.public_key === failover.current) ?? { public_key: failover.current, endpoint: '', api_url: opts.url, cert_pin: opts.caHash ?? null };
    pending = registerVia(current);
  }

  const close = joined.close;
  return {
    ...joined,
    fromStoredState: usable,
    failover,
    registered: () => pending,
    close: async () => {
      stopped = true;
      if (retryTimer !== null) clearTimeout(retryTimer);
      failover.stop();
      await close();
    },
  };
}
