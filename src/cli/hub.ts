/**
 * `tsguard hub …`: run the fleet hub and manage its peers. Peer commands
 * write the registry and work whether or not the hub runs; a running hub
 * applies them within a second.
 * @module
 */

import net from 'node:net';
import { parseArgs } from 'node:util';
import { getCrypto } from '../crypto/index.js';
import { keyToBase64 } from '../crypto/keys.js';
import { formatAgo, formatBytes } from './show.js';
import { Hub, hubControlPath, hubPublicKey, peerStatus, readHubInfo, type HubStatus } from '../hub/hub.js';
import { Registry } from '../hub/registry.js';

const USAGE = `Usage: tsguard hub COMMAND --data-dir DIR [OPTIONS]

  up --interface NAME --subnet CIDR --listen-port PORT [--endpoint HOST:PORT]
     [--allow-device-to-device] [--clients-file PATH] [--ipv6 CIDR]
     [--factory NAME --api-url URL --api-token-file PATH] [--api-interval SECONDS]
                                run the hub in the foreground until SIGTERM
  device add NAME --public-key KEY [--ip IP] [--route CIDR ...]
  device remove NAME
  client add NAME [--public-key KEY] [--ip IP] [--qr]
                                without a key, generates one and prints the client's wg-quick config
  client remove NAME
  show [--json]                 every peer: kind, name, address, key, endpoint, handshake, transfer, relayed/refused
  pubkey                        the hub's public key`;

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
      'public-key': { type: 'string' },
      ip: { type: 'string' },
      route: { type: 'string', multiple: true },
      qr: { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
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
      return hubShow(dataDir, values.json ?? false);
    case 'device':
    case 'client': {
      if (extra.length > 0) throw new HubUsageError(`unexpected argument "${extra[0]}"`);
      const peerName = need(name, `the ${cmd} name`);
      const reg = Registry.open(dataDir);
      try {
        if (sub === 'add') {
          if (cmd === 'device') {
            const rec = reg.addPeer({
              kind: 'device',
              name: peerName,
              publicKey: need(values['public-key'], '--public-key KEY'),
              ip: values.ip,
              routes: values.route,
              source: 'cli',
            });
            process.stdout.write(`device ${rec.name}: ${rec.ipv4}${rec.ipv6 ? `, ${rec.ipv6}` : ''}\n`);
            return 0;
          }
          return clientAdd(reg, dataDir, peerName, values);
        }
        if (sub === 'remove') {
          reg.removePeer(cmd, peerName);
          process.stdout.write(`${cmd} ${peerName} removed\n`);
          return 0;
        }
        throw new HubUsageError(`unknown "${cmd} ${sub ?? ''}": use "${cmd} add" or "${cmd} remove"`);
      } finally {
        reg.close();
      }
    }
    default:
      throw new HubUsageError(`unknown hub command "${cmd}"`);
  }
}

type Values = Record<string, string | boolean | string[] | undefined>;

async function hubUp(dataDir: string, v: Values): Promise<number> {
  const port = Number(need(v['listen-port'] as string | undefined, '--listen-port PORT'));
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new HubUsageError('--listen-port must be a number from 1 to 65535');
  const fleetFlags = [v.factory, v['api-url'], v['api-token-file']].filter((x) => x !== undefined).length;
  if (fleetFlags !== 0 && fleetFlags !== 3) throw new HubUsageError('--factory, --api-url and --api-token-file go together');
  const level = process.env.LOG_LEVEL ?? 'info';
  const log = (lvl: 'error' | 'info' | 'debug', msg: string) => {
    if (lvl === 'debug' && level !== 'debug' && level !== 'verbose') return;
    if (lvl === 'info' && level === 'error') return;
    process.stderr.write(`${new Date().toISOString()} ${lvl.toUpperCase()}: ${msg}\n`);
  };
  const hub = await Hub.start({
    dataDir,
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
  const rec = reg.addPeer({ kind: 'client', name, publicKey: pub, ip: v.ip as string | undefined, source: 'cli' });
  if (priv === null) {
    process.stdout.write(`client ${rec.name}: ${rec.ipv4}${rec.ipv6 ? `, ${rec.ipv6}` : ''}\n`);
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
    sock.on('data', (d: string) => (buf += d));
    sock.on('end', () => {
      try {
        resolve(JSON.parse(buf) as HubStatus);
      } catch {
        resolve(null);
      }
    });
    sock.on('error', () => resolve(null));
  });
}

async function hubShow(dataDir: string, json: boolean): Promise<number> {
  let status = await fetchStatus(dataDir);
  if (status === null) {
    // Hub not running: show the registry.
    const reg = Registry.open(dataDir);
    try {
      status = {
        interface: readHubInfo(dataDir)?.ifname ?? '(not running)',
        publicKey: hubPublicKey(dataDir),
        address: reg.hubAddress,
        listenPort: readHubInfo(dataDir)?.listenPort ?? 0,
        allowDeviceToDevice: false,
        peers: reg.listPeers().map((r) => peerStatus(r)),
      };
    } finally {
      reg.close();
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
      `  endpoint: ${p.endpoint ?? '(none)'}`,
      `  latest handshake: ${p.latestHandshake ? formatAgo(p.latestHandshake, now) : p.lastSeen ? `(last seen ${formatAgo(Math.floor(p.lastSeen / 1000), now)})` : 'never'}`,
      `  transfer: ${formatBytes(p.rxBytes)} received, ${formatBytes(p.txBytes)} sent; relayed ${p.relayed}, refused ${p.refused}`,
    );
  }
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}
