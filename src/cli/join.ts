/**
 * `tsguard join URL --token TOKEN --ca-hash sha256:HEX --state-dir DIR --interface NAME`:
 * register with a hub and keep the tunnel up in the foreground until SIGTERM.
 * @module
 */

import { readFileSync } from 'node:fs';
import { UsageError, type Command, type Values } from './args.js';
import { loggerFromEnv } from '../log/logger.js';

/** `tsguard join`: its options and help (the agent library is loaded when it runs). */
export const joinCommand: Command = {
  name: 'join',
  args: 'URL',
  summary: 'register with a hub and keep the tunnel up',
  description: `Registers this machine with the hub at URL (https://HOST:PORT), creates the interface with the assigned address, adds the hub as peer, waits for the first handshake, prints the address and stays up until SIGTERM/SIGINT. The key is kept in the state directory (the identity survives restarts).

The token may also come from the TSGUARD_TOKEN environment variable. http:// is accepted only for a hub on a loopback address. examples/tsguard-agent.service runs it under systemd.`,
  examples: ['tsguard join https://hub.example.net:8443 --token-file /etc/tsguard/token --ca-hash sha256:HEX --state-dir /var/lib/tsguard-agent --interface tsguard0'],
  positionals: [1, 1],
  options: {
    token: { type: 'string', arg: 'TOKEN', help: 'the enrollment token printed by "tsguard hub token create" (visible in the process list: prefer --token-file)' },
    'token-file': { type: 'string', arg: 'FILE', help: 'read the token from FILE' },
    'ca-hash': { type: 'string', arg: 'sha256:HEX', help: 'pin of the hub\'s certificate, as printed by "tsguard hub token create"; required for https:// unless --insecure' },
    insecure: { type: 'boolean', help: 'do not check the hub\'s certificate' },
    'agent-id': { type: 'string', arg: 'ID', help: 'the agent\'s name at the hub (default: the host name)' },
    label: { type: 'string', multiple: true, arg: 'NAME=VALUE', help: 'a label stored with the agent (repeatable)' },
    'state-dir': { type: 'string', arg: 'DIR', help: 'where the agent keeps its key and last registration (required)' },
    interface: { type: 'string', arg: 'NAME', help: 'the interface to create (required)' },
    'listen-port': { type: 'string', arg: 'PORT', help: 'UDP port (default: any free port)' },
    'handshake-timeout': { type: 'string', arg: 'SECONDS', help: 'how long to wait for the first handshake' },
    'log-format': { type: 'string', arg: 'text|json', help: 'log lines as text (default) or JSON (also TSGUARD_LOG_FORMAT); LOG_LEVEL=verbose logs peer events' },
  },
  run: (values, [url]) => joinMain(values, url!),
};

/** Run `tsguard join` with parsed flags; resolves with the exit code when the agent stops. */
async function joinMain(values: Values, url: string): Promise<number> {
  const { join, JoinError } = await import('../agent/join.js');
  try {
    return await runAgent(join, values as JoinValues, url);
  } catch (e) {
    if (e instanceof JoinError && e.code === 'USAGE') throw new UsageError(e.message, 'tsguard join');
    throw e;
  }
}

type JoinValues = Partial<Record<'token' | 'token-file' | 'ca-hash' | 'agent-id' | 'state-dir' | 'interface' | 'listen-port' | 'handshake-timeout' | 'log-format', string>> & {
  insecure?: boolean;
  label?: string[];
};

async function runAgent(join: typeof import('../agent/join.js').join, values: JoinValues, url: string): Promise<number> {
  let token = values.token ?? process.env.TSGUARD_TOKEN;
  if (values['token-file'] !== undefined) {
    try {
      token = readFileSync(values['token-file'], 'utf8').trim();
    } catch (e) {
      throw new UsageError(`--token-file: ${(e as Error).message}`, 'tsguard join');
    }
  }
  if (!token) throw new UsageError('missing --token TOKEN (or --token-file PATH, or TSGUARD_TOKEN)', 'tsguard join');
  const stateDir = values['state-dir'];
  if (!stateDir) throw new UsageError('missing --state-dir DIR', 'tsguard join');
  const ifname = values.interface;
  if (!ifname) throw new UsageError('missing --interface NAME', 'tsguard join');
  const labels: Record<string, string> = {};
  for (const l of values.label ?? []) {
    const eq = l.indexOf('=');
    if (eq <= 0) throw new UsageError(`--label "${l}": expected NAME=VALUE`, 'tsguard join');
    labels[l.slice(0, eq)] = l.slice(eq + 1);
  }
  const num = (flag: string, v: string | undefined, min: number, max: number): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new UsageError(`${flag} must be a number from ${min} to ${max}`, 'tsguard join');
    return n;
  };
  const listenPort = num('--listen-port', values['listen-port'], 0, 65535);
  const hsTimeout = num('--handshake-timeout', values['handshake-timeout'], 1, 3600);

  let log;
  try {
    log = loggerFromEnv({ defaultLevel: 'info', ...(values['log-format'] !== undefined ? { format: values['log-format'] } : {}) });
  } catch (e) {
    throw new UsageError((e as Error).message, 'tsguard join');
  }

  let stop!: (code: number, reason: string) => void;
  const stopped = new Promise<number>((resolve) => {
    stop = (code, reason) => {
      log('info', `agent shutting down: ${reason}`);
      resolve(code);
    };
  });
  const agent = await join({
    url,
    token,
    ...(values['ca-hash'] !== undefined ? { caHash: values['ca-hash'] } : {}),
    ...(values.insecure ? { insecure: true } : {}),
    ...(values['agent-id'] !== undefined ? { agentId: values['agent-id'] } : {}),
    ...(Object.keys(labels).length ? { labels } : {}),
    stateDir,
    ifname,
    ...(listenPort !== undefined ? { listenPort } : {}),
    ...(hsTimeout !== undefined ? { handshakeTimeoutMs: hsTimeout * 1000 } : {}),
    log,
    onFatal: (e) => stop(1, e.message),
  });
  if (values.insecure && values['ca-hash'] === undefined) log('error', 'WARNING: the hub certificate was not checked (--insecure)');
  process.stdout.write(`joined as ${agent.agentId}: address ${agent.cidr} on ${ifname}, hub ${agent.hubPublicKey} at ${agent.hubEndpoint.host}:${agent.hubEndpoint.port}\n`);
  const onSignal = (sig: NodeJS.Signals) => stop(0, `received ${sig}`);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const code = await stopped;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  await agent.close();
  return code;
}
