/**
 * `tsguard/config`: the wg-quick / `wg setconf` configuration format, and the
 * link setup of `tsguard up` / `tsguard down`.
 *
 * {@link parseConfig} checks a whole file before anything uses it and throws
 * a {@link ConfigError} naming file, line and problem; {@link serializeConfig}
 * writes it back. {@link planUp} computes the `ip`/`resolvconf`/`nft` steps
 * of wg-quick for an interface, {@link applyUp} and {@link applyDown} run them.
 * @module
 */

export {
  canonicalIp,
  configPathFor,
  ConfigError,
  emptyInterface,
  formatCidr,
  isValidIfname,
  maskCidr,
  parseCidr,
  parseConfig,
  resolveEndpoint,
  serializeConfig,
  type Cidr,
  type ConfigMode,
  type InterfaceConfig,
  type LookupAll,
  type PeerConfig,
  type ResolvedEndpoint,
  type WgConfig,
} from './wgquick.js';
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
export { execRunner, formatCommand, netnsRunner, type Command, type Runner, type RunResult } from './runner.js';
