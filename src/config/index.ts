/**
 * `tsguard/config`: the wg-quick / `wg setconf` configuration format, and the
 * link setup of `tsguard up` / `tsguard down`.
 *
 * {@link parseConfig} checks a whole file before anything uses it and throws
 * a {@link ConfigError} naming file, line and problem; {@link serializeConfig}
 * writes it back; {@link readConfig} reads a file. Addresses and allowed IPs
 * are `Prefix` values (`formatPrefix` / `parsePrefix` from `tsguard`). {@link planUp} computes the `ip`/`resolvconf`/`nft` steps
 * of wg-quick for an interface, {@link applyUp} and {@link applyDown} run them.
 * @module
 */

export {
  configPathFor,
  ConfigError,
  emptyInterface,
  parseConfig,
  serializeConfig,
  type ConfigMode,
  type InterfaceConfig,
  type PeerConfig,
  type WgConfig,
} from './wgquick.js';
export { configFromState, loadDesired, readConfig, showconf, toDesired } from './load.js';
export {
  applyDown,
  applyUp,
  computeMtu,
  executePlan,
  LinkSetupError,
  planUp,
  routesFor,
  type LinkEnv,
  type Logger,
  type PlanStep,
  type UpPlan,
} from './link.js';
export { execRunner, formatCommand, type Command, type Runner, type RunResult } from '../os/runner.js';
export { isValidIfname, ifnameProblem, type IfnameRule } from '../os/ifname.js';
export { resolveEndpoint, type LookupAll, type ResolvedEndpoint } from '../os/resolve.js';
