/**
 * `tsguard up` / `tsguard down`: wg-quick without bash and without `wg`.
 * The configuration is parsed and its endpoints resolved before anything
 * changes; a failure while bringing the interface up removes what was made.
 * @module
 */

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configFromState, readConfig, toDesired } from '../config/load.js';
import { configPathFor, serializeConfig, type WgConfig } from '../config/wgquick.js';
import { applyDown, applyUp, runHooks, type LinkEnv } from '../config/link.js';
import { loggerFromEnv, type Logger } from '../log/logger.js';
import { worldAccessibleWarning, writeFileAtomic0600 } from '../os/fsutil.js';
import { execRunner } from '../os/runner.js';
import { uapiGetState, uapiSet } from '../uapi/client.js';
import { socketPath } from '../uapi/server.js';
import { syncLines } from '../uapi/sync.js';

// wg-quick's "[#] command" lines, through the common logger (TSGUARD_LOG_FORMAT=json makes them JSON lines).
let logger: Logger | null = null;
// Always printed, like wg-quick's: LOG_LEVEL is for the daemon.
const log = (line: string) => (logger ??= loggerFromEnv({ decorate: false }, { TSGUARD_LOG_FORMAT: process.env.TSGUARD_LOG_FORMAT }))('info', line);

/** Path of the daemon script next to this file (dist/cli/tsguard-wg.js). */
function daemonScript(): string {
  return fileURLToPath(new URL('./tsguard-wg.js', import.meta.url));
}

/** Start `tsguard-wg IFNAME` detached; resolves once the interface and its socket exist. */
function startDaemon(ifname: string, configPath: string): Promise<void> {
  log(`[#] tsguard-wg ${ifname}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [daemonScript(), ifname], {
      stdio: ['ignore', 'inherit', 'pipe'],
      env: { ...process.env, TSGUARD_CONFIG: configPath },
    });
    let err = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0) resolve();
      else reject(new Error(err.trim().replace(/^tsguard-wg: /, '') || `tsguard-wg exited with status ${code}`));
    });
  });
}

async function deleteLink(ifname: string): Promise<void> {
  log(`[#] ip link delete dev ${ifname}`);
  const r = await execRunner.run('ip', ['link', 'delete', 'dev', ifname]);
  if (r.code !== 0) throw new Error(`ip link delete dev ${ifname}: ${r.stderr.trim()}`);
  // The daemon notices the deletion and removes its socket; wait for that (bounded).
  for (let i = 0; i < 100 && existsSync(socketPath(ifname)); i++) await new Promise((r2) => setTimeout(r2, 20));
}

/** `tsguard up CONFIG|IFNAME`. Resolves with the exit code. */
export async function up(arg: string): Promise<number> {
  const { path, ifname } = configPathFor(arg);
  const warning = await worldAccessibleWarning(path);
  const cfg = await readConfig(path);
  if (warning) log(warning);
  if (existsSync(`/sys/class/net/${ifname}`)) throw new Error(`\`${ifname}' already exists`);
  const desired = await toDesired(cfg); // DNS resolution happens before anything changes
  const env: LinkEnv = { log, setFwmark: (mark) => uapiSet(ifname, [`fwmark=${mark}`]) };

  await runHooks(cfg.interface.preUp, ifname, env, 'PreUp');
  await startDaemon(ifname, path);
  try {
    const lines = syncLines(await uapiGetState(ifname), desired);
    log(`[#] tsguard setconf ${ifname} (${desired.peers.length} peer${desired.peers.length === 1 ? '' : 's'})`);
    await uapiSet(ifname, lines);
    await applyUp(ifname, cfg, env);
  } catch (e) {
    await deleteLink(ifname).catch(() => undefined);
    throw e;
  }
  return 0;
}

/** `tsguard down CONFIG|IFNAME`. Resolves with the exit code. */
export async function down(arg: string): Promise<number> {
  const { path, ifname } = configPathFor(arg);
  const cfg = await readConfig(path);
  if (!existsSync(`/sys/class/net/${ifname}`)) throw new Error(`\`${ifname}' is not a WireGuard interface (it does not exist)`);
  let fwmark: number | undefined;
  try {
    const state = await uapiGetState(ifname);
    fwmark = state.fwmark || undefined;
    if (cfg.interface.saveConfig) await saveConfig(path, cfg, state);
  } catch (e) {
    if (!existsSync(socketPath(ifname))) throw new Error(`\`${ifname}' is not a tsguard/userspace WireGuard interface (no UAPI socket)`);
    throw e;
  }
  await applyDown(ifname, cfg, { log, fwmark, deleteLink: () => deleteLink(ifname) });
  return 0;
}

/** SaveConfig: the running peers and keys, with the file's wg-quick settings. */
async function saveConfig(path: string, cfg: WgConfig, state: Awaited<ReturnType<typeof uapiGetState>>): Promise<void> {
  log(`[#] saving configuration to ${path}`);
  await writeFileAtomic0600(path, serializeConfig(configFromState(state, cfg.interface), 'wg-quick'));
}
