/**
 * `tsguard hub up`: settings from flags and an optional `--config FILE`
 * (flags win), every missing or bad setting reported at once, then the hub
 * in the foreground until SIGTERM.
 * @module
 */

import { readFileSync } from 'node:fs';
import { Hub } from '../hub/hub.js';
import { loggerFromEnv } from '../log/logger.js';
import { UsageError, type Options, type OptionSpec, type Values } from './args.js';
import { HUB_UP_OPTIONS, REGISTRY_OPTIONS } from './hub-commands.js';
import { registryFlags } from './hub-registry.js';
import { dataDirOf } from './hub.js';

const CMD = 'tsguard hub up';

/**
 * Parse a hub settings file: `name = value` lines whose names are the long
 * flags of `hub up` (and `data-dir`, `registry`, `registry-password-file`),
 * `#` comments, booleans `true|false`.
 * @throws Error naming the file and line of the first bad line
 */
export function parseHubConfig(text: string, file: string): Values {
  const out: Values = {};
  const known: Options = { ...HUB_UP_OPTIONS, ...REGISTRY_OPTIONS, 'data-dir': { type: 'string', help: '' } };
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (line === '') return;
    const where = `${file}:${i + 1}`;
    const m = /^([A-Za-z][A-Za-z0-9-]*)\s*=\s*(.*)$/.exec(line);
    if (m === null) throw new Error(`${where}: expected "name = value", got "${line}"`);
    const [, name, value] = m as unknown as [string, string, string];
    const spec: OptionSpec | undefined = known[name];
    if (spec === undefined || name === 'config') throw new Error(`${where}: unknown setting "${name}" (the settings are the long flags of "tsguard hub up": ${Object.keys(HUB_UP_OPTIONS).filter((k) => k !== 'config').join(', ')}, data-dir, ${Object.keys(REGISTRY_OPTIONS).join(', ')})`);
    if (name in out) throw new Error(`${where}: "${name}" is set twice`);
    if (spec.type === 'boolean') {
      if (!/^(true|false|yes|no)$/.test(value)) throw new Error(`${where}: ${name} must be true or false, not "${value}"`);
      out[name] = value === 'true' || value === 'yes';
    } else {
      if (value === '') throw new Error(`${where}: ${name} has no value`);
      out[name] = value;
    }
  });
  return out;
}

/** `hub up`: resolves when the hub has stopped. */
export async function hubUp(flags: Values): Promise<number> {
  let v: Values = flags;
  if (flags.config !== undefined) {
    const file = flags.config as string;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new Error(`--config ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`);
    }
    const fromFile = parseHubConfig(text, file);
    v = { ...fromFile, ...Object.fromEntries(Object.entries(flags).filter(([, x]) => x !== undefined)) };
  }
  const problems: string[] = [];
  const missing = (['interface', 'subnet', 'listen-port'] as const).filter((k) => v[k] === undefined || v[k] === '');
  if (missing.length) problems.push(`missing ${missing.map((k) => `--${k} ${HUB_UP_OPTIONS[k]!.arg}`).join(', ')}`);
  const port = Number(v['listen-port']);
  if (v['listen-port'] !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) problems.push('--listen-port must be a number from 1 to 65535');
  const fleet = (['factory', 'api-url', 'api-token-file'] as const).filter((k) => v[k] !== undefined);
  if (fleet.length !== 0 && fleet.length !== 3) problems.push('--factory, --api-url and --api-token-file go together');
  let intervalMs: number | undefined;
  if (v['api-interval'] !== undefined) {
    intervalMs = Number(v['api-interval']) * 1000;
    if (!Number.isFinite(intervalMs) || intervalMs <= 0) problems.push('--api-interval must be a number of seconds, more than 0');
  }
  let quarantineSeconds: number | undefined;
  if (v.quarantine !== undefined) {
    quarantineSeconds = Number(v.quarantine);
    if (!Number.isFinite(quarantineSeconds) || quarantineSeconds < 0) problems.push('--quarantine must be a number of seconds, 0 or more');
  }
  if (v['api-insecure-http'] && v.api === undefined) problems.push('--api-insecure-http needs --api ADDR:PORT');
  if (v['advertise-api'] !== undefined && v.api === undefined) problems.push('--advertise-api needs --api ADDR:PORT (it is the URL agents reach that API on)');
  const advertiseApi = v['advertise-api'] === undefined ? undefined : checkAdvertiseApi(String(v['advertise-api']), problems);
  if (problems.length) throw new UsageError(`${problems.join('; ')}${flags.config === undefined ? ' (as flags or in --config FILE)' : ''}`, CMD);

  let log;
  try {
    log = loggerFromEnv({ defaultLevel: 'info', coalesce: true, ...(v['log-format'] !== undefined ? { format: v['log-format'] as string } : {}) });
  } catch (e) {
    throw new UsageError((e as Error).message, CMD);
  }
  const str = (k: string) => v[k] as string | undefined;
  const hub = await Hub.start({
    dataDir: dataDirOf(v),
    ...registryFlags(v),
    ...(v.api !== undefined ? { api: { listen: str('api')!, insecureHttp: v['api-insecure-http'] === true } } : {}),
    ...(quarantineSeconds !== undefined ? { quarantineSeconds } : {}),
    ...(v.metrics !== undefined ? { metrics: str('metrics')! } : {}),
    ...(advertiseApi !== undefined ? { advertiseApi } : {}),
    ifname: str('interface')!,
    subnet: str('subnet')!,
    ipv6: str('ipv6'),
    listenPort: port,
    endpoint: str('endpoint'),
    allowDeviceToDevice: v['allow-device-to-device'] === true,
    clientsFile: str('clients-file'),
    fleet: fleet.length === 3 ? { factory: str('factory')!, apiUrl: str('api-url')!, tokenFile: str('api-token-file')!, intervalMs } : undefined,
    log,
  });
  const onSignal = (sig: NodeJS.Signals) => void hub.stop(`received ${sig}`);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  await hub.done;
  return 0;
}

/** `--advertise-api URL`: an http(s) base URL agents can reach (its origin), or a problem noted. */
function checkAdvertiseApi(text: string, problems: string[]): string | undefined {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    problems.push(`--advertise-api "${text}" is not a URL: give the base URL agents reach this hub's API on, e.g. https://hub2.example.net:8443`);
    return undefined;
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') {
    problems.push(`--advertise-api "${text}": use an https:// (or http://) URL`);
    return undefined;
  }
  return u.origin;
}
