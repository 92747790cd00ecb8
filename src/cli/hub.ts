/**
 * `tsguard hub …`: run the fleet hub and manage its peers. Peer commands
 * write the registry and work whether or not the hub runs; a running hub on
 * the same data directory applies them before the command returns.
 * @module
 */

import net from 'node:net';
import { parseArgs } from 'node:util';
import { getCrypto } from '../crypto/index.js';
import { keyToBase64 } from '../crypto/keys.js';
import { formatAgo, formatBytes } from './show.js';
import { Hub, hubControlPath, hubPublicKey, peerStatus, readHubInfo, type HubStatus } from '../hub/hub.js';
import type { AddPeerInput, AddPeerResult, Registry, TokenInfo } from '../hub/registry/index.js';
import { agentRekey, notifyHub, openRegistry, REGISTRY_OPTIONS, REGISTRY_USAGE, registryFlags } from './hub-registry.js';
import { loadOrCreateApiTls } from '../hub/tls.js';
import { parseDuration } from '../hub/tokens.js';
import { loggerFromEnv } from '../log/logger.js';

const USAGE = `Usage: tsguard hub COMMAND --data-dir DIR [OPTIONS]

  up --interface NAME --subnet CIDR --listen-port PORT [--endpoint HOST:PORT]
     [--allow-device-to-device] [--clients-file PATH] [--ipv6 CIDR]
     [--factory NAME --api-url URL --api-token-file PATH] [--api-interval SECONDS]
     [--api ADDR:PORT [--api-insecure-http]] [--advertise-api URL] [--quarantine SECONDS]
     [--metrics ADDR:PORT] [--log-format text|json]
                                run the hub in the foreground until SIGTERM; --api serves agent
                                registration (HTTPS, self-signed certificate kept in the data dir;
                                plain HTTP only on loopback with --api-insecure-http); --quarantine
                                keeps a removed peer's address unused that long (stored);
                                --metrics serves /metrics (Prometheus), /healthz and the status page /.
                                With --endpoint the hub lists itself in the registry: hubs sharing a
                                registry peer with each other and relay between their peers;
                                --advertise-api is the API URL listed for agents (failover)
  device add NAME --public-key KEY [--ip IP] [--route CIDR ...]
  device remove NAME
  client add NAME [--public-key KEY] [--ip IP] [--qr]
                                without a key, generates one and prints the client's wg-quick config
  client remove NAME
  agent remove NAME             remove a registered agent (its address is quarantined, see --quarantine)
  agent rekey NAME              let the agent register once with a new key without its credential
                                (a machine that lost its state); it keeps its address
  token create [--ttl DURATION] [--uses N] [--comment TEXT] [--json]
                                print a new enrollment token and the "tsguard join" command line
                                (DURATION: 90s, 30m, 24h (default), 7d; 0 = never expires; N: default unlimited)
  token list [--json]           tokens (never their secrets): id, state, uses, expiry
  token revoke ID               the token stops working, also for agents it enrolled
  show [--json]                 every peer: kind, name, address, key, endpoint, handshake, transfer, relayed/refused
  pubkey                        the hub's public key
${REGISTRY_USAGE}`;

/** `--advertise-api URL`: an http(s) base URL agents can reach (listed for failover). */
function checkAdvertiseApi(text: string): string {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new HubUsageError(`--advertise-api "${text}" is not a URL: give the base URL agents reach this hub's API on, e.g. https://hub2.example.net:8443`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new HubUsageError(`--advertise-api "${text}": use an https:// (or http://) URL`);
  return u.origin;
}

/** Raised for command-line mistakes (exit status 2). */
export class HubUsageError extends Error {}

function need<T>(v: T | undefined, flag: string): T {
  if (v === undefined || v === '') throw new HubUsageError(`missing ${flag}`);
  return v;
}

/** Run `tsguard hub ARGS`; resolves with the exit code. */
export async function hubMain(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      'data-dir': { type: 'string' },
      interface: { type: 'string' },
      subnet: { type: 'string' },
      ipv6: { type: 'string' },
      'listen-port': { type: 'string' },
      endpoint: { type: 'string' },
      'allow-device-to-device': { type: 'boolean' },
      'clients-file': { type: 'string' },
      factory: { type: 'string' },
      'api-url': { type: 'string' },
      'api-token-file': { type: 'string' },
      'api-interval': { type: 'string' },
      api: { type: 'string' },
      'api-insecure-http': { type: 'boolean' },
      'advertise-api': { type: 'string' },
      quarantine: { type: 'string' },
      metrics: { type: 'string' },
      'log-format': { type: 'string' },
      ttl: { type: 'string' },
      uses: { type: 'string' },
      comment: { type: 'string' },
      'public-key': { type: 'string' },
      ip: { type: 'string' },
      route: { type: 'string', multiple: true },
      qr: { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      ...REGISTRY_OPTIONS,
    },
  });
  if (values.help || positionals.length === 0) {
    process.stdout.write(USAGE + '\n');
    return values.help ? 0 : 2;
  }
  const dataDir = need(values['data-dir'], '--data-dir DIR');
  const [cmd, sub, name, ...extra] = positionals;
  switch (cmd) {
    case 'up':
      return hubUp(dataDir, values);
    case 'pubkey':
      process.stdout.write(hubPublicKey(dataDir) + '\n');
      return 0;
    case 'show':
      return hubShow(dataDir, values.json ?? false, values);
    case 'token':
      if (extra.length > 0) throw new HubUsageError(`unexpected argument "${extra[0]}"`);
      return hubToken(dataDir, sub, name, values);
    case 'agent': {
      if (sub !== 'remove' && sub !== 'rekey') throw new HubUsageError(`unknown "agent ${sub ?? ''}": agents register themselves ("tsguard join"); use "agent remove NAME" or "agent rekey NAME"`);
      if (extra.length > 0) throw new HubUsageError(`unexpected argument "${extra[0]}"`);
      const agentName = need(name, 'the agent name');
      const reg = await openRegistry(dataDir, values);
      try {
        if (sub === 'rekey') {
          process.stdout.write(await agentRekey(reg, agentName));
          return 0;
        }
        const rec = await reg.removePeer('agent', agentName);
        await notifyHub(dataDir);
        const q = await reg.quarantineSeconds();
        process.stdout.write(`agent ${rec.name} removed${q > 0 ? `; ${rec.ipv4} is quarantined for ${q} s` : ''}\n`);
        return 0;
      } finally {
        await reg.close();
      }
    }
    case 'device':
    case 'client': {
      if (extra.length > 0) throw new HubUsageError(`unexpected argument "${extra[0]}"`);
      const peerName = need(name, `the ${cmd} name`);
      const reg = await openRegistry(dataDir, values);
      try {
        if (sub === 'add') {
          if (cmd === 'device') {
            const rec = await addFromCli(reg, dataDir, {
              kind: 'device',
              name: peerName,
              publicKey: need(values['public-key'], '--public-key KEY'),
              ip: values.ip,
              routes: values.route,
              source: 'cli',
            });
            process.stdout.write(describeAdd(rec));
            return 0;
          }
          return await clientAdd(reg, dataDir, peerName, values);
        }
        if (sub === 'remove') {
          await reg.removePeer(cmd, peerName);
          await notifyHub(dataDir);
          process.stdout.write(`${cmd} ${peerName} removed\n`);
          return 0;
        }
        throw new HubUsageError(`unknown "${cmd} ${sub ?? ''}": use "${cmd} add" or "${cmd} remove"`);
      } finally {
        await reg.close();
      }
    }
    default:
      throw new HubUsageError(`unknown hub command "${cmd}"`);
  }
}

type Values = Record<string, string | boolean | string[] | undefined>;

/**
 * `add` from the command line: the registry's add is idempotent and re-keys a known
 * name; here an explicit --ip or --route that differs from what is stored is an
 * error instead of being silently ignored.
 */
async function addFromCli(reg: Registry, dataDir: string, input: AddPeerInput): Promise<AddPeerResult> {
  const existing = await reg.getPeer(input.kind, input.name);
  if (existing !== null) {
    if (input.ip !== undefined && input.ip !== existing.ipv4) {
      throw new Error(
        `${input.kind} ${input.name} already exists with address ${existing.ipv4}; remove it first ("tsguard hub ${input.kind} remove ${input.name}") to give it ${input.ip}`,
      );
    }
    const routes = input.routes ?? [];
    if (input.routes !== undefined && [...routes].sort().join(',') !== [...existing.routes].sort().join(',')) {
      throw new Error(`${input.kind} ${input.name} already exists with routes ${existing.routes.join(', ') || '(none)'}; remove and add it again to change them`);
    }
  }
  const rec = await reg.addPeer(input);
  // Live on a running hub before the command returns.
  if (rec.created || rec.rekeyed) await notifyHub(dataDir);
  return rec;
}

function describeAdd(rec: AddPeerResult): string {
  const addr = `${rec.ipv4}${rec.ipv6 ? `, ${rec.ipv6}` : ''}`;
  if (rec.rekeyed) return `${rec.kind} ${rec.name}: re-keyed, keeps ${addr}\n`;
  if (!rec.created) return `${rec.kind} ${rec.name}: already registered with this key: ${addr}\n`;
  return `${rec.kind} ${rec.name}: ${addr}\n`;
}

async function hubUp(dataDir: string, v: Values): Promise<number> {
  const port = Number(need(v['listen-port'] as string | undefined, '--listen-port PORT'));
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new HubUsageError('--listen-port must be a number from 1 to 65535');
  const fleetFlags = [v.factory, v['api-url'], v['api-token-file']].filter((x) => x !== undefined).length;
  if (fleetFlags !== 0 && fleetFlags !== 3) throw new HubUsageError('--factory, --api-url and --api-token-file go together');
  let log;
  try {
    log = loggerFromEnv({ defaultLevel: 'info', ...(v['log-format'] !== undefined ? { format: v['log-format'] as string } : {}) });
  } catch (e) {
    throw new HubUsageError((e as Error).message);
  }
  let quarantineSeconds: number | undefined;
  if (v.quarantine !== undefined) {
    quarantineSeconds = Number(v.quarantine);
    if (!Number.isFinite(quarantineSeconds) || quarantineSeconds < 0) throw new HubUsageError('--quarantine must be a number of seconds, 0 or more');
  }
  if (v['api-insecure-http'] && v.api === undefined) throw new HubUsageError('--api-insecure-http needs --api ADDR:PORT');
  if (v['advertise-api'] !== undefined && v.api === undefined) throw new HubUsageError('--advertise-api needs --api ADDR:PORT (it is the URL agents reach that API on)');
  const hub = await Hub.start({
    dataDir,
    ...registryFlags(v),
    ...(v.api !== undefined ? { api: { listen: v.api as string, insecureHttp: (v['api-insecure-http'] as boolean | undefined) ?? false } } : {}),
    ...(quarantineSeconds !== undefined ? { quarantineSeconds } : {}),
    ...(v['advertise-api'] !== undefined ? { advertiseApi: checkAdvertiseApi(v['advertise-api'] as string) } : {}),
    ...(v.metrics !== undefined ? { metrics: v.metrics as string } : {}),
    ifname: need(v.interface as string | undefined, '--interface NAME'),
    subnet: need(v.subnet as string | undefined, '--subnet CIDR'),
    ipv6: v.ipv6 as string | undefined,
    listenPort: port,
    endpoint: v.endpoint as string | undefined,
    allowDeviceToDevice: (v['allow-device-to-device'] as boolean | undefined) ?? false,
    clientsFile: v['clients-file'] as string | undefined,
    fleet:
      fleetFlags === 3
        ? {
            factory: v.factory as string,
            apiUrl: v['api-url'] as string,
            tokenFile: v['api-token-file'] as string,
            intervalMs: v['api-interval'] ? Number(v['api-interval']) * 1000 : undefined,
          }
        : undefined,
    log,
  });
  const onSignal = (sig: NodeJS.Signals) => void hub.stop(`received ${sig}`);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  await hub.done;
  return 0;
}

async function clientAdd(reg: Registry, dataDir: string, name: string, v: Values): Promise<number> {
  let priv: Uint8Array | null = null;
  let pub = v['public-key'] as string | undefined;
  if (pub === undefined) {
    priv = getCrypto().generatePrivateKey();
    pub = keyToBase64(getCrypto().publicKey(priv));
  }
  const rec = await addFromCli(reg, dataDir, { kind: 'client', name, publicKey: pub, ip: v.ip as string | undefined, source: 'cli' });
  if (priv === null) {
    process.stdout.write(describeAdd(rec));
    return 0;
  }
  const info = readHubInfo(dataDir);
  const allowed = [reg.subnet, ...(reg.ipv6Subnet ? [reg.ipv6Subnet] : [])].join(', ');
  const conf = [
    `# tsguard hub client "${rec.name}"`,
    '[Interface]',
    `PrivateKey = ${keyToBase64(priv)}`,
    `Address = ${rec.ipv4}/32${rec.ipv6 ? `, ${rec.ipv6}/128` : ''}`,
    '',
    '[Peer]',
    `PublicKey = ${hubPublicKey(dataDir)}`,
    `AllowedIPs = ${allowed}`,
    ...(info?.endpoint ? [`Endpoint = ${info.endpoint}`] : ['# Endpoint = HUB_HOST:PORT   (start the hub with --endpoint to fill this in)']),
    'PersistentKeepalive = 25',
    '',
  ].join('\n');
  priv.fill(0);
  process.stdout.write(conf);
  if (v.qr) {
    const { default: QRCode } = await import('qrcode');
    process.stdout.write(await QRCode.toString(conf, { type: 'terminal', small: true }));
  }
  return 0;
}

function fetchStatus(dataDir: string): Promise<HubStatus | null> {
  return new Promise((resolve) => {
    const sock = net.connect(hubControlPath(dataDir));
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write('status\n'));
    sock.on('data', (d: string) => (buf += d));
    sock.on('end', () => {
      try {
        const v = JSON.parse(buf) as HubStatus;
        resolve(Array.isArray(v.peers) ? v : null);
      } catch {
        resolve(null);
      }
    });
    sock.on('error', () => resolve(null));
  });
}

async function hubShow(dataDir: string, json: boolean, v: Values): Promise<number> {
  let status = await fetchStatus(dataDir);
  if (status === null) {
    // Hub not running: show the registry.
    const reg = await openRegistry(dataDir, v);
    try {
      status = {
        interface: readHubInfo(dataDir)?.ifname ?? '(not running)',
        publicKey: hubPublicKey(dataDir),
        address: reg.hubAddress,
        listenPort: readHubInfo(dataDir)?.listenPort ?? 0,
        allowDeviceToDevice: false,
        peers: (await reg.listPeers()).map((r) => peerStatus(r)),
      };
    } finally {
      await reg.close();
    }
  }
  if (json) {
    process.stdout.write(JSON.stringify(status, null, 2) + '\n');
    return 0;
  }
  const now = Math.floor(Date.now() / 1000);
  const out = [`hub: ${status.interface}  ${status.address}  port ${status.listenPort}  key ${status.publicKey}`];
  for (const p of status.peers) {
    out.push(
      '',
      `${p.kind} ${p.name}${p.enabled ? '' : ' (disabled)'}: ${p.address}${p.address6 ? `, ${p.address6}` : ''}${p.routes.length ? ` routes ${p.routes.join(', ')}` : ''}`,
      `  key: ${p.publicKey}  source: ${p.source}`,
      ...(Object.keys(p.labels ?? {}).length ? [`  labels: ${Object.entries(p.labels).map(([k, l]) => `${k}=${l}`).join(', ')}`] : []),
      `  endpoint: ${p.endpoint ?? '(none)'}`,
      `  latest handshake: ${p.latestHandshake ? formatAgo(p.latestHandshake, now) : p.lastSeen ? `(last seen ${formatAgo(Math.floor(p.lastSeen / 1000), now)})` : 'never'}`,
      `  transfer: ${formatBytes(p.rxBytes)} received, ${formatBytes(p.txBytes)} sent; relayed ${p.relayed}, refused ${p.refused}`,
    );
  }
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}

function tokenLine(t: TokenInfo, now: number): string {
  const expires = t.expiresAt === null ? 'never expires' : `${t.expiresAt > now ? 'expires' : 'expired'} ${new Date(t.expiresAt).toISOString()}`;
  const uses = `${t.uses}/${t.maxUses ?? 'unlimited'} uses`;
  return `${t.id}  ${t.state.padEnd(8)}  ${uses}  ${expires}${t.comment ? `  # ${t.comment}` : ''}`;
}

/** `hub token create|list|revoke`. */
async function hubToken(dataDir: string, sub: string | undefined, id: string | undefined, v: Values): Promise<number> {
  const reg = await openRegistry(dataDir, v);
  try {
    switch (sub) {
      case 'create': {
        if (id !== undefined) throw new HubUsageError(`unexpected argument "${id}"`);
        let ttlSeconds: number;
        let maxUses: number | null = null;
        try {
          ttlSeconds = v.ttl === undefined ? 86400 : parseDuration(v.ttl as string);
        } catch (e) {
          throw new HubUsageError(`--ttl: ${(e as Error).message}`);
        }
        if (v.uses !== undefined) {
          maxUses = Number(v.uses);
          if (!Number.isInteger(maxUses) || maxUses < 1) throw new HubUsageError('--uses must be a whole number, 1 or more');
        }
        const { token, info } = await reg.createToken({ ttlSeconds, maxUses, comment: (v.comment as string | undefined) ?? null });
        const hubInfo = readHubInfo(dataDir);
        // The certificate file is the source of truth; it is created here if the hub has not served HTTPS yet.
        const pin = loadOrCreateApiTls(dataDir).pin;
        let url = hubInfo?.api ?? 'https://HUB_ADDRESS:PORT';
        url = url.replace('://0.0.0.0:', '://HUB_ADDRESS:').replace('://[::]:', '://HUB_ADDRESS:');
        const insecure = url.startsWith('http://');
        const cmd = `tsguard join ${url} --token ${token}${insecure ? '' : ` --ca-hash ${pin}`} --state-dir /var/lib/tsguard-agent --interface tsguard0`;
        if (v.json) {
          process.stdout.write(JSON.stringify({ token, ...info, caHash: pin, url, join: cmd }, null, 2) + '\n');
          return 0;
        }
        process.stdout.write(
          [
            `token: ${token}`,
            `id: ${info.id}  ${info.maxUses === null ? 'unlimited uses' : `${info.maxUses} use(s)`}, ${info.expiresAt === null ? 'never expires' : `expires ${new Date(info.expiresAt).toISOString()}`}`,
            `ca-hash: ${pin}`,
            '',
            'join an agent with:',
            `  ${cmd}`,
            ...(hubInfo?.api === undefined ? ['  (start the hub with --api ADDR:PORT; replace HUB_ADDRESS:PORT with the address agents reach it on)'] : []),
            '',
          ].join('\n'),
        );
        return 0;
      }
      case 'list': {
        if (id !== undefined) throw new HubUsageError(`unexpected argument "${id}"`);
        const list = await reg.listTokens();
        if (v.json) process.stdout.write(JSON.stringify(list, null, 2) + '\n');
        else if (list.length === 0) process.stdout.write('no enrollment tokens ("tsguard hub token create" makes one)\n');
        else process.stdout.write(list.map((t) => tokenLine(t, Date.now())).join('\n') + '\n');
        return 0;
      }
      case 'revoke': {
        const t = await reg.revokeToken(need(id, 'the token id (see "tsguard hub token list")'));
        process.stdout.write(`token ${t.id} revoked\n`);
        return 0;
      }
      default:
        throw new HubUsageError(`unknown "token ${sub ?? ''}": use "token create", "token list" or "token revoke ID"`);
    }
  } finally {
    await reg.close();
  }
}
