/**
 * `tsguard/agent`: join a tsguard hub from a program, as `tsguard join` does.
 *
 * {@link join} registers the agent's public key with the hub's registration
 * API (`POST /v1/register`), creates the interface with the assigned address
 * and resolves once the first handshake with the hub is done. Needs root (or
 * CAP_NET_ADMIN) and `/dev/net/tun`; does not need SQLite.
 * @module
 */

export {
  AGENT_KEY_FILE,
  REGISTRATION_FILE,
  join,
  JoinError,
  loadOrCreateAgentKey,
  registerWithHub,
  type JoinErrorCode,
  type JoinOptions,
  type JoinResult,
  type RegisterOptions,
} from './join.js';
// The registration wire format (shared by the hub and the agent).
export * from '../hub/protocol.js';
export { certificatePin, parsePin } from '../hub/tls.js';
export type { DaemonLog } from '../daemon/daemon.js';
