/**
 * `tsguard hub …` shared parts and the token commands: the data directory,
 * opening the registry with errors that say what is wrong, the running
 * hub's status, the join line.
 * @module
 */

import { accessSync, constants, existsSync, statSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { UsageError, type Values } from './args.js';
import { DEFAULT_HUB_DIR } from './hub-commands.js';
import { hubControlPath, hubPublicKey, readHubInfo, type HubInfo, type HubStatus } from '../hub/hub.js';
import { HUB_KEY_FILE, Registry, RegistryError, REGISTRY_FILE, type TokenInfo } from '../hub/registry/index.js';
import { registryFlags } from './hub-registry.js';
import { loadOrCreateApiTls } from '../hub/tls.js';
import { parseDuration } from '../hub/tokens.js';

/** The data directory: --data-dir, else $TSGUARD_HUB_DIR, else /var/lib/tsguard-hub. */
export function dataDirOf(v: Values): string {
  const d = (v['data-dir'] as string | undefined) ?? process.env.TSGUARD_HUB_DIR ?? DEFAULT_HUB_DIR;
  if (d === '') throw new UsageError('--data-dir is empty');
  return d;
}

function whoami(): string {
  return typeof process.getuid === 'function' ? `uid ${process.getuid()}` : 'this user';
}

/** CLI processes may wait longer for a lock than the hub does. */
const CLI_STORE_TIMEOUT_MS = 5000;

/**
 * Open the registry of an existing hub — the one `--registry URL` names, else
 * the SQLite file in the data directory — with errors that name the cause: no
 * data directory, permission denied (and by whom), no registry yet.
 */
export async function openRegistry(v: Values): Promise<Registry> {
  const dataDir = dataDirOf(v);
  const f = registryFlags(v);
  const opts = {
    timeoutMs: CLI_STORE_TIMEOUT_MS,
    // A CLI process carries no packets: SQLite may block it (no worker thread to start).
    sqliteOnThisThread: true,
    ...(f.registry !== undefined ? { url: f.registry } : {}),
    ...(f.registryPasswordFile !== undefined ? { passwordFile: f.registryPasswordFile } : {}),
  };
  if (f.registry === undefined) checkDataDir(dataDir);
  try {
    return await Registry.open(dataDir, opts);
  } catch (e) {
    if (e instanceof RegistryError && e.code === 'NOT_INITIALIZED') {
      throw new Error(`no hub registry in ${f.registry === undefined ? dataDir : 'the --registry database'} yet: start the hub once ("tsguard hub up --data-dir ${dataDir} --interface NAME --subnet CIDR --listen-port PORT")`);
    }
    throw e;
  }
}

/** Errors that name the cause for a missing or unreadable SQLite registry in `dataDir`. */
function checkDataDir(dataDir: string): void {
  const file = join(dataDir, REGISTRY_FILE);
  let st;
  try {
    st = statSync(dataDir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES') throw new Error(`permission denied: ${whoami()} cannot look into the parent of ${dataDir}; run as root or as the hub's user`);
    throw new Error(`no hub data directory ${dataDir}: start the hub once with "tsguard hub up", or point --data-dir (or TSGUARD_HUB_DIR) at its data directory`);
  }
  try {
    // SQLite in WAL mode writes next to the database even to read it.
    accessSync(dataDir, constants.R_OK | constants.W_OK | constants.X_OK);
    accessSync(file, constants.R_OK | constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
      throw new Error(
        `permission denied: ${dataDir} (owner uid ${st.uid}, mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}) is not readable and writable by ${whoami()}; run as root (sudo) or as the hub's user`,
      );
    }
    if (code !== 'ENOENT') throw e;
  }
}

/** Run `fn` with the registry the command's flags name open, closing it afterwards. */
export async function withRegistry<T>(v: Values, fn: (reg: Registry) => T | Promise<T>): Promise<T> {
  const reg = await openRegistry(v);
  try {
    return await fn(reg);
  } finally {
    await reg.close();
  }
}

/** The running hub's status from its control socket, or null when it does not run. */
export function fetchStatus(dataDir: string): Promise<HubStatus | null> {
  return new Promise((resolve) => {
    const sock = net.connect(hubControlPath(dataDir));
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write('status\n'));
    sock.on('data', (d: string) => (buf += d));
    sock.on('end', () => {
      try {
        const status = JSON.parse(buf) as HubStatus;
        resolve(Array.isArray(status.peers) ? status : null);
      } catch {
        resolve(null);
      }
    });
    sock.on('error', () => resolve(null));
  });
}

/** Unix ms → Unix seconds (null stays null): the one time unit of `--json`. */
export function seconds(ms: number | null | undefined): number | null {
  return ms === null || ms === undefined ? null : Math.floor(ms / 1000);
}

/** `hub pubkey`. */
export async function hubPubkey(v: Values): Promise<number> {
  const dir = dataDirOf(v);
  // The key is the hub's own (in its data directory, whatever registry it uses); without one,
  // the same errors as the other commands for a missing or unreadable hub.
  if (!existsSync(join(dir, HUB_KEY_FILE))) await withRegistry(v, () => undefined);
  const key = hubPublicKey(dir);
  process.stdout.write(v.json ? JSON.stringify({ publicKey: key }) + '\n' : key + '\n');
  return 0;
}

/**
 * The registration URL agents use: the API's URL, with the host of the
 * hub's --endpoint when it listens on a wildcard address; null when the
 * API is not served or no reachable host is known.
 */
export function joinUrl(info: HubInfo | null): string | null {
  if (info?.api === undefined) return null;
  const m = /^(https?):\/\/(\[[^\]]+\]|[^:/]+):(\d+)/.exec(info.api);
  if (m === null) return info.api;
  const [, scheme, host, port] = m;
  if (host !== '0.0.0.0' && host !== '[::]') return info.api;
  const ep = info.endpoint?.replace(/:\d+$/, '');
  if (!ep) return null;
  const h = ep.includes(':') && !ep.startsWith('[') ? `[${ep}]` : ep;
  return `${scheme}://${h}:${port}`;
}

function tokenJson(t: TokenInfo) {
  return { ...t, createdAt: seconds(t.createdAt), expiresAt: seconds(t.expiresAt), revokedAt: seconds(t.revokedAt) };
}

function tokenLine(t: TokenInfo, now: number): string {
  const expires = t.expiresAt === null ? 'never expires' : `${t.expiresAt > now ? 'expires' : 'expired'} ${new Date(t.expiresAt).toISOString()}`;
  const uses = `${t.uses}/${t.maxUses ?? 'unlimited'} uses`;
  return `${t.id}  ${t.state.padEnd(8)}  ${uses}  ${expires}${t.comment ? `  # ${t.comment}` : ''}`;
}

/** `hub token create`. */
export async function tokenCreate(v: Values): Promise<number> {
  let ttlSeconds: number;
  let maxUses: number | null = null;
  try {
    ttlSeconds = v.ttl === undefined ? 86400 : parseDuration(v.ttl as string);
  } catch (e) {
    throw new UsageError(`--ttl: ${(e as Error).message}`, 'tsguard hub token create');
  }
  if (v.uses !== undefined) {
    maxUses = Number(v.uses);
    if (!Number.isInteger(maxUses) || maxUses < 1) throw new UsageError('--uses must be a whole number, 1 or more', 'tsguard hub token create');
  }
  const dir = dataDirOf(v);
  const { token, info } = await withRegistry(v, (reg) => reg.createToken({ ttlSeconds, maxUses, comment: (v.comment as string | undefined) ?? null }));
  const hubInfo = readHubInfo(dir);
  // The certificate file is the source of truth; it is created here if the hub has not served HTTPS yet.
  const pin = loadOrCreateApiTls(dir).pin;
  const known = joinUrl(hubInfo);
  const url = known ?? 'https://HUB_ADDRESS:PORT';
  const insecure = url.startsWith('http://');
  const cmd = `tsguard join ${url} --token ${token}${insecure ? '' : ` --ca-hash ${pin}`} --state-dir /var/lib/tsguard-agent --interface tsguard0`;
  if (v.json) {
    process.stdout.write(JSON.stringify({ token, ...tokenJson(info), caHash: pin, url: known, join: cmd }, null, 2) + '\n');
    return 0;
  }
  const hint =
    hubInfo?.api === undefined
      ? '  (the hub does not serve registration: start it with --api ADDR:PORT, then replace HUB_ADDRESS:PORT)'
      : '  (the API listens on a wildcard address and the hub has no --endpoint: replace HUB_ADDRESS with the address agents reach it on)';
  process.stdout.write(
    [
      `token: ${token}`,
      `id: ${info.id}  ${info.maxUses === null ? 'unlimited uses' : `${info.maxUses} use(s)`}, ${info.expiresAt === null ? 'never expires' : `expires ${new Date(info.expiresAt).toISOString()}`}`,
      `ca-hash: ${pin}`,
      '',
      'join an agent with:',
      `  ${cmd}`,
      ...(known === null ? [hint] : []),
      '',
    ].join('\n'),
  );
  return 0;
}

/** `hub token list`. */
export async function tokenList(v: Values): Promise<number> {
  const list = await withRegistry(v, (reg) => reg.listTokens());
  if (v.json) process.stdout.write(JSON.stringify(list.map(tokenJson), null, 2) + '\n');
  else if (list.length === 0) process.stdout.write('no enrollment tokens ("tsguard hub token create" makes one)\n');
  else process.stdout.write(list.map((t) => tokenLine(t, Date.now())).join('\n') + '\n');
  return 0;
}

/** `hub token revoke ID`. */
export async function tokenRevoke(id: string, v: Values): Promise<number> {
  const t = await withRegistry(v, (reg) => reg.revokeToken(id));
  process.stdout.write(`token ${t.id} revoked\n`);
  return 0;
}
