/**
 * `tsguard hub device|client|agent add|remove|list` and `hub show`: the
 * guard rails (no silent re-key, no removal the clients file would undo),
 * the wg-quick configuration of a new peer, the status views.
 * @module
 */

import { fstatSync, fchmodSync } from 'node:fs';
import { emptyInterface, serializeConfig } from '../config/wgquick.js';
import { getCrypto } from '../crypto/index.js';
import { keyFromBase64, keyToBase64 } from '../crypto/keys.js';
import { hubPublicKey, peerStatus, readHubInfo, type HubPeerStatus, type HubStatus } from '../hub/hub.js';
import { AGENT_KEEPALIVE } from '../hub/protocol.js';
import type { PeerKind } from '../hub/relay.js';
import { writeFileAtomic0600 } from '../os/fsutil.js';
import { parsePrefix } from '../routing/ip.js';
import { validatePublicKey, type AddPeerInput, type AddPeerResult, type Registry } from '../hub/registry/index.js';
import { UsageError, type Values } from './args.js';
import { dataDirOf, fetchStatus, seconds, withRegistry } from './hub.js';
import { agentRekey, notifyHub } from './hub-registry.js';
import { formatAgo, formatBytes } from './show.js';

/** A session older than this (REJECT_AFTER_TIME) is dead: the peer counts as offline. */
const ONLINE_WITHIN_S = 180;

/**
 * `add` from the command line: the registry's add is idempotent and re-keys
 * a known name; here a new key needs --rekey, and an explicit --ip or
 * --route that differs from what is stored is an error instead of being
 * silently ignored.
 */
async function addFromCli(reg: Registry, dataDir: string, input: AddPeerInput, rekey: boolean): Promise<AddPeerResult> {
  const existing = await reg.getPeer(input.kind, input.name);
  if (existing !== null) {
    const cmd = `tsguard hub ${input.kind}`;
    if (existing.source !== 'cli') {
      throw new Error(`${input.kind} ${input.name} comes from the ${existing.source === 'clients-file' ? 'clients file' : existing.source}; change it there`);
    }
    if (input.ip !== undefined && input.ip !== existing.ipv4) {
      throw new Error(`${input.kind} ${input.name} already exists with address ${existing.ipv4}; remove it first ("${cmd} remove ${input.name}") to give it ${input.ip}`);
    }
    const routes = input.routes ?? [];
    if (input.routes !== undefined && [...routes].sort().join(',') !== [...existing.routes].sort().join(',')) {
      throw new Error(`${input.kind} ${input.name} already exists with routes ${existing.routes.join(', ') || '(none)'}; remove and add it again to change them`);
    }
    if (validatePublicKey(input.publicKey) !== existing.publicKey && !rekey) {
      throw new Error(
        `${input.kind} ${input.name} already exists with another public key (${existing.publicKey}); add --rekey to replace it (the old key stops working at once), or pick another name`,
      );
    }
  }
  const rec = await reg.addPeer(input);
  // Live on a running hub before the command returns.
  if (rec.created || rec.rekeyed) await notifyHub(dataDir);
  return rec;
}

function describeAdd(rec: AddPeerResult): string {
  const addr = `${rec.ipv4}${rec.ipv6 ? `, ${rec.ipv6}` : ''}`;
  if (rec.rekeyed) return `${rec.kind} ${rec.name}: ${addr} (re-keyed, keeps its address)\n`;
  if (!rec.created) return `${rec.kind} ${rec.name}: ${addr} (already registered with this key)\n`;
  return `${rec.kind} ${rec.name}: ${addr}\n`;
}

/**
 * The wg-quick configuration of a peer of the hub: its address, the hub as
 * its one peer (key, endpoint, the mesh as AllowedIPs, keepalive). Without
 * `privateKey` the PrivateKey line is a comment to fill in.
 */
function peerConfig(dataDir: string, reg: Registry, rec: AddPeerResult, privateKey: Uint8Array | null): string {
  const info = readHubInfo(dataDir);
  const iface = emptyInterface();
  iface.addresses = [parsePrefix(`${rec.ipv4}/32`), ...(rec.ipv6 ? [parsePrefix(`${rec.ipv6}/128`)] : [])];
  if (privateKey) iface.privateKey = privateKey;
  let endpoint: { host: string; port: number } | undefined;
  const m = info?.endpoint ? /^\[?(.*?)\]?:(\d+)$/.exec(info.endpoint) : null;
  if (m) endpoint = { host: m[1]!, port: Number(m[2]) };
  const text = serializeConfig(
    {
      interface: iface,
      peers: [
        {
          publicKey: keyFromBase64(hubPublicKey(dataDir)),
          allowedIps: [reg.subnet, ...(reg.ipv6Subnet ? [reg.ipv6Subnet] : [])].map((c) => parsePrefix(c)),
          ...(endpoint ? { endpoint } : {}),
          persistentKeepalive: AGENT_KEEPALIVE,
          line: 0,
        },
      ],
    },
    'wg-quick',
  );
  const lines = text.split('\n');
  if (!privateKey) lines.splice(1, 0, `# PrivateKey = (the private key of ${rec.name}, whose public key is ${rec.publicKey})`);
  if (!endpoint) lines.splice(lines.indexOf('[Peer]') + 2, 0, '# Endpoint = HUB_HOST:PORT   (start the hub with --endpoint to fill this in)');
  return [`# tsguard hub ${rec.kind} "${rec.name}"`, ...lines].join('\n');
}

/** `hub device add NAME --public-key KEY`. */
export async function deviceAdd(name: string, v: Values): Promise<number> {
  const pub = v['public-key'] as string | undefined;
  if (pub === undefined) throw new UsageError('missing --public-key KEY (the device\'s "wg pubkey")', 'tsguard hub device add');
  const dir = dataDirOf(v);
  await withRegistry(v, async (reg) => {
    const rec = await addFromCli(reg, dir, { kind: 'device', name, publicKey: pub, ip: v.ip as string | undefined, routes: v.route as string[] | undefined, source: 'cli' }, v.rekey === true);
    const stub = peerConfig(dir, reg, rec, null);
    if (v.json) process.stdout.write(JSON.stringify({ ...peerJson(peerStatus(rec)), created: rec.created, rekeyed: rec.rekeyed, config: stub }, null, 2) + '\n');
    else process.stdout.write(`${describeAdd(rec)}\nwg-quick configuration for ${name}:\n\n${stub}`);
  });
  return 0;
}

/** `hub client add NAME`: registers the client; without a key, makes one and delivers its configuration. */
export async function clientAdd(name: string, v: Values): Promise<number> {
  const dir = dataDirOf(v);
  let priv: Uint8Array | null = null;
  let pub = v['public-key'] as string | undefined;
  if (pub === undefined) {
    priv = getCrypto().generatePrivateKey();
    pub = keyToBase64(getCrypto().publicKey(priv));
  }
  const output = v.output as string | undefined;
  const qrFile = v['qr-file'] as string | undefined;
  if (qrFile !== undefined && !/\.(png|svg)$/i.test(qrFile)) throw new UsageError(`--qr-file ${qrFile}: the name must end in .png or .svg (the image format)`, 'tsguard hub client add');
  if (priv === null && (output !== undefined || qrFile !== undefined || v.qr)) {
    throw new UsageError('--output, --qr and --qr-file deliver a generated configuration: leave out --public-key', 'tsguard hub client add');
  }
  const conf = await withRegistry(v, async (reg) => {
    const rec = await addFromCli(reg, dir, { kind: 'client', name, publicKey: pub!, ip: v.ip as string | undefined, source: 'cli' }, v.rekey === true);
    if (priv === null) {
      process.stdout.write(describeAdd(rec));
      return null;
    }
    process.stderr.write(describeAdd(rec));
    return peerConfig(dir, reg, rec, priv);
  });
  priv?.fill(0);
  if (conf === null) return 0;
  if (output !== undefined) {
    await writeFileAtomic0600(output, conf);
    process.stderr.write(`configuration written to ${output} (mode 0600)\n`);
  } else {
    // `> alice.conf` made a file with the shell's umask: it holds a private key.
    try {
      if (fstatSync(1).isFile()) fchmodSync(1, 0o600);
    } catch {
      // not ours to change (best effort)
    }
    process.stdout.write(conf);
  }
  if (v.qr || qrFile !== undefined || process.stderr.isTTY) {
    const { default: QRCode } = await import('qrcode');
    if (qrFile !== undefined) {
      // The image holds the private key: 0600, atomically, like the configuration.
      const image = qrFile.toLowerCase().endsWith('.svg') ? await QRCode.toString(conf, { type: 'svg' }) : await QRCode.toBuffer(conf, { type: 'png' });
      await writeFileAtomic0600(qrFile, image);
      process.stderr.write(`QR code written to ${qrFile} (mode 0600)\n`);
    }
    if (v.qr || process.stderr.isTTY) process.stderr.write(await QRCode.toString(conf, { type: 'terminal', small: true }));
  }
  return 0;
}

/** `hub device|client|agent remove NAME`. */
export async function peerRemove(kind: PeerKind, name: string, v: Values): Promise<number> {
  const dir = dataDirOf(v);
  await withRegistry(v, async (reg) => {
    const rec = await reg.getPeer(kind, name);
    if (rec?.source === 'clients-file') {
      throw new Error(`client ${name} comes from the clients file: remove its line there (removed here it would come back on the next change of the file)`);
    }
    if (rec?.source === 'fleet-api') throw new Error(`device ${name} comes from the fleet API: remove it there (removed here it would come back on the next poll)`);
    const removed = await reg.removePeer(kind, name);
    await notifyHub(dir);
    const q = await reg.quarantineSeconds();
    process.stdout.write(`${kind} ${removed.name} removed${q > 0 ? `; ${removed.ipv4} is quarantined for ${q} s` : ''}\n`);
  });
  return 0;
}

/** `hub agent rekey NAME`. */
export async function agentRekeyCommand(name: string, v: Values): Promise<number> {
  const text = await withRegistry(v, (reg) => agentRekey(reg, name));
  process.stdout.write(text);
  return 0;
}

/** A peer for `--json`: times in Unix seconds (null = never), `online` from the session age. */
export function peerJson(p: HubPeerStatus, nowSec = Math.floor(Date.now() / 1000)) {
  const hs = p.latestHandshake > 0 ? p.latestHandshake : null;
  return { ...p, latestHandshake: hs, lastSeen: seconds(p.lastSeen), online: hs !== null && nowSec - hs < ONLINE_WITHIN_S };
}

/** The hub's status: live when it runs, from the registry otherwise. */
async function status(v: Values): Promise<{ running: boolean; status: HubStatus }> {
  const dataDir = dataDirOf(v);
  const live = await fetchStatus(dataDir);
  if (live !== null) return { running: true, status: live };
  const info = readHubInfo(dataDir);
  return withRegistry(v, async (reg) => ({
    running: false,
    status: {
      interface: info?.ifname ?? '',
      publicKey: hubPublicKey(dataDir),
      address: reg.hubAddress,
      listenPort: info?.listenPort ?? 0,
      allowDeviceToDevice: false,
      peers: (await reg.listPeers()).map((r) => peerStatus(r)),
    },
  }));
}

function handshakeText(p: HubPeerStatus, now: number): string {
  if (p.latestHandshake) return formatAgo(p.latestHandshake, now);
  if (p.lastSeen) return `(last seen ${formatAgo(Math.floor(p.lastSeen / 1000), now)})`;
  return 'never';
}

/** `hub device|client|agent list`. */
export async function peerList(kind: PeerKind, v: Values): Promise<number> {
  const { status: s } = await status(v);
  const list = s.peers.filter((p) => p.kind === kind).sort((a, b) => a.name.localeCompare(b.name));
  if (v.json) {
    process.stdout.write(JSON.stringify(list.map((p) => peerJson(p)), null, 2) + '\n');
    return 0;
  }
  if (list.length === 0) {
    process.stdout.write(`no ${kind}s${kind === 'agent' ? ' ("tsguard join" registers one)' : ` ("tsguard hub ${kind} add NAME" adds one)`}\n`);
    return 0;
  }
  const now = Math.floor(Date.now() / 1000);
  const rows = [['NAME', 'ADDRESS', 'SOURCE', 'STATE', 'LATEST HANDSHAKE']];
  for (const p of list) {
    const online = p.latestHandshake > 0 && now - p.latestHandshake < ONLINE_WITHIN_S;
    rows.push([p.name, [p.address, p.address6, ...p.routes].filter(Boolean).join(', '), p.source, !p.enabled ? 'disabled' : online ? 'online' : 'offline', handshakeText(p, now)]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  process.stdout.write(rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n');
  return 0;
}

function peerBlock(p: HubPeerStatus, now: number): string[] {
  return [
    `${p.kind} ${p.name}${p.enabled ? '' : ' (disabled)'}: ${p.address}${p.address6 ? `, ${p.address6}` : ''}${p.routes.length ? ` routes ${p.routes.join(', ')}` : ''}`,
    `  key: ${p.publicKey}  source: ${p.source}`,
    ...(Object.keys(p.labels ?? {}).length ? [`  labels: ${Object.entries(p.labels).map(([k, l]) => `${k}=${l}`).join(', ')}`] : []),
    `  endpoint: ${p.endpoint ?? '(none)'}`,
    `  latest handshake: ${handshakeText(p, now)}`,
    `  transfer: ${formatBytes(p.rxBytes)} received, ${formatBytes(p.txBytes)} sent; relayed ${p.relayed}, refused ${p.refused}`,
  ];
}

/** `hub show [NAME]`. */
export async function hubShow(name: string | undefined, v: Values): Promise<number> {
  const dir = dataDirOf(v);
  const { running, status: s } = await status(v);
  const peers = name === undefined ? s.peers : s.peers.filter((p) => p.name === name);
  if (name !== undefined && peers.length === 0) throw new Error(`no peer named "${name}" ("tsguard hub device|client|agent list" shows them)`);
  if (v.json) {
    const out = name === undefined ? { running, ...s, peers: peers.map((p) => peerJson(p)) } : peers.map((p) => peerJson(p));
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return 0;
  }
  const now = Math.floor(Date.now() / 1000);
  const out: string[] = [];
  if (name === undefined) {
    const info = readHubInfo(dir);
    out.push(
      running
        ? `hub: ${s.interface} running, ${s.address} on UDP ${s.listenPort}${info?.endpoint ? `, endpoint ${info.endpoint}` : ''}, key ${s.publicKey}`
        : `hub: not running${info ? ` (last up as ${info.ifname} on UDP ${info.listenPort})` : ''}, ${s.address}, key ${s.publicKey}`,
    );
    if (!running) out.push('  (registry contents; transfer and handshakes need the running hub)');
  }
  for (const p of peers) out.push(...(out.length ? [''] : []), ...peerBlock(p, now));
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}
