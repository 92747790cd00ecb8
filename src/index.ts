/**
 * tsguard — WireGuard in TypeScript.
 *
 * The sans-IO engine ({@link Device}) can be embedded anywhere; {@link Runtime}
 * puts it on a real TUN interface and UDP socket; the UAPI helpers talk to any
 * userspace WireGuard daemon.
 *
 * More in subpaths: `tsguard/config` (the wg-quick format and link setup),
 * `tsguard/agent` (`join()` a hub) and `tsguard/hub` (the fleet hub and its
 * registry; its SQLite store needs the optional dependency better-sqlite3).
 * @module
 */

export { Device, paddedLength, type DeviceOptions, type PeerUpdate, type PeerInfo } from './device/device.js';
export type { Peer } from './device/peer.js';
export {
  DROP_REASONS,
  formatEndpoint,
  parseEndpoint,
  systemClock,
  type Clock,
  type DeviceEvents,
  type DeviceIo,
  type DeviceStats,
  type DropReason,
  type Endpoint,
} from './device/types.js';
// Entry points choose the provider once: `await loadCrypto(loadNativeCrypto)` (native unless TSGUARD_CRYPTO says otherwise).
export { getCrypto, loadCrypto, setCrypto, nodeCrypto, type CryptoProvider } from './crypto/index.js';
export { loadNativeCrypto } from './io/native.js';
// Imported statically here (not by ./crypto/index.js, to keep the CLI's start fast): library users
// always have the @noble provider, also for TSGUARD_CRYPTO=noble without loadCrypto().
export { nobleCrypto } from './crypto/noble.js';
export { keyFromBase64, keyToBase64, keyFromHex, keyToHex, KeyFormatError } from './crypto/keys.js';
export { AllowedIps, AllowedIpsOverlapError } from './routing/allowed-ips.js';
export { parseIp, formatIp, parsePrefix, formatPrefix, type Prefix } from './routing/ip.js';
export { Runtime, type RuntimeOptions } from './io/runtime.js';
export { Tun, type TunStats } from './io/tun.js';
export { UdpSocket, type UdpBindOptions, type UdpStats } from './io/udp.js';
export type { NativeError, UdpFamily } from './io/native.js';
export {
  uapiGetState,
  uapiSet,
  uapiRequest,
  listInterfaces,
  UapiCallError,
  type UapiDeviceState,
  type UapiPeerState,
} from './uapi/client.js';
export type { DaemonLog } from './daemon/daemon.js';
