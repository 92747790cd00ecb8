/**
 * The command table of `tsguard hub …`: options and help texts. The
 * implementations (SQLite, QR codes, the hub runtime) are loaded when a
 * command runs.
 * @module
 */

import type { Command, Group, Options } from './args.js';

/** Data directory used when neither --data-dir nor TSGUARD_HUB_DIR is given. */
export const DEFAULT_HUB_DIR = '/var/lib/tsguard-hub';

const impl = () => import('./hub.js');
const peers = () => import('./hub-peers.js');

const JSON_OPT: Options = {
  json: { type: 'boolean', help: 'print JSON: times are Unix seconds (null = never), sizes bytes, durations seconds' },
};

/** The `--registry` flags every hub command takes. */
export const REGISTRY_OPTIONS: Options = {
  registry: {
    type: 'string',
    arg: 'URL',
    help: 'a registry shared by several hubs, postgresql://USER@HOST[:PORT]/DB (or ?host=/socket/dir), instead of the SQLite file in the data directory; the password comes from --registry-password-file, PGPASSWORD or PGPASSFILE / ~/.pgpass, never from the URL',
  },
  'registry-password-file': { type: 'string', arg: 'FILE', help: 'file holding the PostgreSQL password of --registry' },
};

/** The options of `hub up`, also the keys of its --config file. */
export const HUB_UP_OPTIONS: Options = {
  config: { type: 'string', arg: 'FILE', help: 'read settings from FILE: "name = value" lines with the names of these flags ("listen-port = 51820", "allow-device-to-device = true"), # comments; flags given on the command line win' },
  interface: { type: 'string', arg: 'NAME', help: 'the hub interface to create (required)' },
  subnet: { type: 'string', arg: 'CIDR', help: 'mesh IPv4 subnet, e.g. 10.100.0.0/24; the hub takes its first address (required; fixed once stored)' },
  ipv6: { type: 'string', arg: 'CIDR', help: 'optional mesh IPv6 prefix' },
  'listen-port': { type: 'string', arg: 'PORT', help: 'UDP port (required)' },
  endpoint: { type: 'string', arg: 'HOST:PORT', help: 'how peers reach the hub; written into client configs, device stubs and join lines' },
  'allow-device-to-device': { type: 'boolean', help: 'relay device ↔ device traffic too (default: only client ↔ device)' },
  'clients-file': { type: 'string', arg: 'FILE', help: 'client peers file ("<public_key> <ip> [comment]" lines), watched and applied live' },
  factory: { type: 'string', arg: 'NAME', help: 'fleet API factory (with --api-url and --api-token-file)' },
  'api-url': { type: 'string', arg: 'URL', help: 'fleet API base URL' },
  'api-token-file': { type: 'string', arg: 'FILE', help: 'file holding the fleet API token' },
  'api-interval': { type: 'string', arg: 'SECONDS', help: 'fleet API poll interval (default 300)' },
  api: { type: 'string', arg: 'ADDR:PORT', help: 'serve agent registration (HTTPS, self-signed certificate kept in the data directory)' },
  'api-insecure-http': { type: 'boolean', help: 'serve --api over plain HTTP (loopback addresses only)' },
  quarantine: {
    type: 'string',
    arg: 'SECONDS',
    help: 'keep a removed peer\'s address unused that long before it is given to another peer (stored in the registry; default 0: reused at once)',
  },
  metrics: { type: 'string', arg: 'ADDR:PORT', help: 'serve /metrics (Prometheus), /healthz and the status page / on ADDR:PORT' },
  'log-format': { type: 'string', arg: 'text|json', help: 'log lines as text (default) or JSON (also TSGUARD_LOG_FORMAT); LOG_LEVEL=verbose logs peer events' },
};

function peerCommands(kind: 'device' | 'client' | 'agent'): Command[] {
  const list: Command = {
    name: 'list',
    summary: `the ${kind}s: name, address, source, state, latest handshake`,
    options: JSON_OPT,
    run: async (v) => (await peers()).peerList(kind, v),
  };
  const remove: Command = {
    name: 'remove',
    args: 'NAME',
    summary: `remove a ${kind} (its address is quarantined if --quarantine was set on "hub up")`,
    description:
      kind === 'client'
        ? 'A client that comes from the clients file is refused: remove its line from the file instead (a CLI removal would come back on the next change of the file).'
        : kind === 'device'
          ? 'A device that comes from the fleet API is refused: it would come back on the next poll.'
          : 'The agent can register again with a valid token.',
    positionals: [1, 1],
    run: async (v, [name]) => (await peers()).peerRemove(kind, name!, v),
  };
  if (kind === 'agent') {
    const rekeyAgent: Command = {
      name: 'rekey',
      args: 'NAME',
      summary: 'let an agent register once with a new key without its credential',
      description:
        'For a machine that lost its state (its key and agent credential): its next registration with a valid token may present a new key; it keeps its address and gets a new credential. Without this, a new key for an existing agent is refused with identity_conflict.',
      positionals: [1, 1],
      run: async (v, [name]) => (await peers()).agentRekeyCommand(name!, v),
    };
    return [list, remove, rekeyAgent];
  }
  const rekey: Options = {
    rekey: { type: 'boolean', help: `give an existing ${kind} a new public key (it keeps its address; its old key stops working at once)` },
  };
  const add: Command =
    kind === 'device'
      ? {
          name: 'add',
          args: 'NAME',
          summary: 'register a device and print a wg-quick config stub for it',
          description:
            'Registers the device\'s public key and gives it an address (or --ip). Adding an existing device with the same key changes nothing; with a different key it is refused unless --rekey. Prints the assigned address, then a wg-quick configuration for the device with the hub\'s key, endpoint, AllowedIPs and keepalive; only its PrivateKey is to be filled in.',
          examples: ['tsguard hub device add sensor-1 --public-key "$(cat sensor-1.pub)"'],
          positionals: [1, 1],
          options: {
            'public-key': { type: 'string', arg: 'KEY', help: 'the device\'s public key (required)' },
            ip: { type: 'string', arg: 'IP', help: 'its mesh address (default: the first free one)' },
            route: { type: 'string', arg: 'CIDR', multiple: true, help: 'a prefix behind the device, routed to it (repeatable)' },
            ...rekey,
            ...JSON_OPT,
          },
          run: async (v, [name]) => (await peers()).deviceAdd(name!, v),
        }
      : {
          name: 'add',
          args: 'NAME',
          summary: 'register a client; without --public-key, make its key and print its wg-quick config',
          description:
            'Without --public-key a key pair is generated and the client\'s complete wg-quick configuration goes to standard output and nowhere else (with --output FILE: into FILE, mode 0600, written atomically). The QR code for the WireGuard mobile apps goes to the terminal (standard error) when it is one or with --qr, and to --qr-file FILE as a PNG or SVG image (by the file\'s extension). A file standard output is redirected to is made mode 0600.',
          examples: ['tsguard hub client add erin-laptop > erin.conf', 'tsguard hub client add erin-phone --qr-file erin-phone.png --output erin-phone.conf'],
          positionals: [1, 1],
          options: {
            'public-key': { type: 'string', arg: 'KEY', help: 'the client\'s public key (then nothing secret is printed)' },
            ip: { type: 'string', arg: 'IP', help: 'its mesh address (default: the first free one)' },
            ...rekey,
            output: { type: 'string', arg: 'FILE', help: 'write the configuration to FILE (0600, atomically) instead of standard output' },
            qr: { type: 'boolean', help: 'print the QR code on standard error even when it is not a terminal' },
            'qr-file': { type: 'string', arg: 'FILE', help: 'write the QR code to FILE: .png or .svg' },
          },
          run: async (v, [name]) => (await peers()).clientAdd(name!, v),
        };
  return [add, remove, list];
}

const tokenGroup: Group = {
  name: 'token',
  summary: 'enrollment tokens for "tsguard join"',
  commands: [
    {
      name: 'create',
      summary: 'print a new enrollment token and the "tsguard join" line',
      description:
        'The secret is printed once and stored hashed. The join line uses the hub\'s registration URL with the host of its --endpoint when the API listens on a wildcard address.',
      options: {
        ttl: { type: 'string', arg: 'DURATION', help: 'lifetime: 90s, 30m, 24h (default), 7d; 0 = never expires' },
        uses: { type: 'string', arg: 'N', help: 'how many agents it may enroll (default: unlimited)' },
        comment: { type: 'string', arg: 'TEXT', help: 'shown by "token list"' },
        ...JSON_OPT,
      },
      run: async (v) => (await impl()).tokenCreate(v),
    },
    { name: 'list', summary: 'tokens (never their secrets): id, state, uses, expiry', options: JSON_OPT, run: async (v) => (await impl()).tokenList(v) },
    {
      name: 'revoke',
      args: 'ID',
      summary: 'stop a token from registering anything',
      description:
        'A revoked token enrolls no new agent and re-registers none of the agents it enrolled (an expired or used-up one still re-registers them). Agents already registered stay until "hub agent remove".',
      positionals: [1, 1],
      run: async (v, [id]) => (await impl()).tokenRevoke(id!, v),
    },
  ],
};

/** `tsguard hub`. */
export const hubGroup: Group = {
  name: 'hub',
  summary: 'run and manage a fleet hub',
  description:
    'Peer commands write the registry (the SQLite file in the data directory, or --registry) and work whether or not the hub runs; a running hub on the same data directory applies them before the command returns, other hubs on a shared registry within a second.',
  options: {
    'data-dir': { type: 'string', arg: 'DIR', help: `the hub's data directory (default: $TSGUARD_HUB_DIR, else ${DEFAULT_HUB_DIR})` },
    ...REGISTRY_OPTIONS,
  },
  commands: [
    {
      name: 'up',
      summary: 'run the hub in the foreground until SIGTERM',
      description:
        'Creates the interface, restores every registered peer before the first packet, watches the clients file and the registry, and serves registration with --api. Every missing setting is reported at once. examples/tsguard-hub.service runs it under systemd with examples/hub.conf.',
      examples: ['tsguard hub up --config /etc/tsguard/hub.conf', 'tsguard hub up --interface hub0 --subnet 10.100.0.0/24 --listen-port 51820 --endpoint hub.example.net:51820'],
      options: HUB_UP_OPTIONS,
      run: async (v) => (await import('./hub-up.js')).hubUp(v),
    },
    {
      name: 'show',
      args: '[NAME]',
      summary: 'whether the hub runs, and every peer (or the peers named NAME)',
      description: 'Live figures (endpoint, handshake, transfer, relayed/refused) when the hub runs; otherwise the registry.',
      positionals: [0, 1],
      options: JSON_OPT,
      run: async (v, [name]) => (await peers()).hubShow(name, v),
    },
    { name: 'pubkey', summary: "the hub's public key", options: JSON_OPT, run: async (v) => (await impl()).hubPubkey(v) },
    { name: 'device', summary: 'devices: add, remove, list', commands: peerCommands('device') },
    { name: 'client', summary: 'clients (engineers\' laptops, phones): add, remove, list', commands: peerCommands('client') },
    { name: 'agent', summary: 'self-registered agents ("tsguard join"): list, remove, rekey', commands: peerCommands('agent') },
    tokenGroup,
  ],
};
