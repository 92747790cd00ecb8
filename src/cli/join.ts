/**
 * `tsguard join URL --token TOKEN --ca-hash sha256:HEX --state-dir DIR --interface NAME`:
 * register with a hub and keep the tunnel up in the foreground until SIGTERM.
 * @module
 */

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startAgent } from '../agent/agent.js';
import { JoinError } from '../agent/join.js';
import { loggerFromEnv } from '../log/logger.js';

const USAGE = `Usage: tsguard join URL (--token TOKEN | --token-file PATH) --state-dir DIR --interface NAME
                    [--ca-hash sha256:HEX | --insecure] [--agent-id ID] [--label NAME=VALUE ...]
                    [--listen-port PORT] [--handshake-timeout SECONDS] [--log-format text|json]

  Registers this machine with the hub at URL (https://HOST:PORT), creates NAME with the
  assigned address, adds the hub as peer, waits for the first handshake, prints the address
  and stays up until SIGTERM/SIGINT. The key is kept in DIR (identity survives restarts).
  Restarted with a registration stored in DIR, the tunnel comes up from it at once and the
  registration is retried in the background. When the hub stops answering, the agent moves
  to another hub of the fleet (listed by the hub), keeping its address.

  --ca-hash      pin of the hub's certificate, as printed by "tsguard hub token create";
                 required for https:// unless --insecure (no certificate check) is given.
                 http:// is accepted only for a hub on a loopback address.
  --agent-id     default: the host name
  The token may also come from the TSGUARD_TOKEN environment variable.`;

/** Raised for command-line mistakes (exit status 2). */
export class JoinUsageError extends Error {}

/** Run `tsguard join ARGS`; resolves with the exit code when the agent stops. */
export async function joinMain(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      token: { type: 'string' },
      'token-file': { type: 'string' },
      'ca-hash': { type: 'string' },
      insecure: { type: 'boolean' },
      'agent-id': { type: 'string' },
      label: { type: 'string', multiple: true },
      'state-dir': { type: 'string' },
      interface: { type: 'string' },
      'listen-port': { type: 'string' },
      'handshake-timeout': { type: 'string' },
      'log-format': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (positionals.length !== 1) throw new JoinUsageError(positionals.length === 0 ? 'missing the hub URL' : `unexpected argument "${positionals[1]}"`);
  let token = values.token ?? process.env.TSGUARD_TOKEN;
  if (values['token-file'] !== undefined) {
    try {
      token = readFileSync(values['token-file'], 'utf8').trim();
    } catch (e) {
      throw new JoinUsageError(`--token-file: ${(e as Error).message}`);
    }
  }
  if (!token) throw new JoinUsageError('missing --token TOKEN (or --token-file PATH, or TSGUARD_TOKEN)');
  const stateDir = values['state-dir'];
  if (!stateDir) throw new JoinUsageError('missing --state-dir DIR');
  const ifname = values.interface;
  if (!ifname) throw new JoinUsageError('missing --interface NAME');
  const labels: Record<string, string> = {};
  for (const l of values.label ?? []) {
    const eq = l.indexOf('=');
    if (eq <= 0) throw new JoinUsageError(`--label "${l}": expected NAME=VALUE`);
    labels[l.slice(0, eq)] = l.slice(eq + 1);
  }
  const num = (flag: string, v: string | undefined, min: number, max: number): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new JoinUsageError(`${flag} must be a number from ${min} to ${max}`);
    return n;
  };
  const listenPort = num('--listen-port', values['listen-port'], 0, 65535);
  const hsTimeout = num('--handshake-timeout', values['handshake-timeout'], 1, 3600);

  let log;
  try {
    log = loggerFromEnv({ defaultLevel: 'info', ...(values['log-format'] !== undefined ? { format: values['log-format'] } : {}) });
  } catch (e) {
    throw new JoinUsageError((e as Error).message);
  }

  let stop!: (code: number, reason: string) => void;
  const stopped = new Promise<number>((resolve) => {
    stop = (code, reason) => {
      log('info', `agent shutting down: ${reason}`);
      resolve(code);
    };
  });
  const agent = await startAgent({
    url: positionals[0]!,
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
  process.stdout.write(
    `joined as ${agent.agentId}: address ${agent.cidr} on ${ifname}, hub ${agent.hubPublicKey} at ${agent.hubEndpoint.host}:${agent.hubEndpoint.port}` +
      `${agent.fromStoredState ? ' (up from the stored registration; registering in the background)' : ''}\n`,
  );
  const onSignal = (sig: NodeJS.Signals) => stop(0, `received ${sig}`);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const code = await stopped;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  await agent.close();
  return code;
}

/** True for errors that are the user's to fix on the command line (exit status 2). */
export function isJoinUsageError(e: unknown): boolean {
  return e instanceof JoinUsageError || (e instanceof JoinError && e.code === 'USAGE');
}
