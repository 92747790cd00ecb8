/**
 * `tsguard/hub`: the fleet hub and its peer registry, as `tsguard hub` uses them.
 *
 * {@link Hub.start} opens the registry, creates the interface and applies
 * every peer change live; {@link Registry} is the store of devices, clients,
 * agents, addresses and enrollment tokens (SQLite in the data directory, or
 * PostgreSQL), usable while a hub runs. The SQLite registry needs the
 * optional dependency better-sqlite3; a hub also needs root (or
 * CAP_NET_ADMIN) and `/dev/net/tun`.
 * @module
 */

export {
  Hub,
  hubControlPath,
  hubPublicKey,
  peerStatus,
  readHubInfo,
  type HubInfo,
  type HubOptions,
  type HubPeerStatus,
  type HubStatus,
} from './hub.js';
export * from './registry/index.js';
export { RegistrationApi, parseListenAddress, REFUSAL_STATUS, type ListenAddress, type RegistrationApiOptions } from './api.js';
export { parseClientsFile, clientNameFromKey, type ClientsFileEntry, type ClientsFileError, type ClientsFileParse } from './clients-file.js';
export { FleetApiError, FleetApiSource, type FleetApiErrorKind, type FleetApiOptions, type FleetApiStatus, type FleetDevice } from './fleet-api.js';
export { Relay, relayAllowed, type RelayCounters, type RelayPolicy } from './relay.js';
export { API_TLS_FILE, certificatePin, createSelfSignedCertificate, loadOrCreateApiTls, parsePin, type ApiTlsIdentity } from './tls.js';
export { parseDuration } from './tokens.js';
// The registration wire format (shared by the hub and the agent).
export * from './protocol.js';
