/**
 * The one loader of the native addon (`build/Release/tsguard_native.node`)
 * and its raw types: Linux TUN interfaces and batched UDP sockets driven by
 * the libuv loop, and OpenSSL crypto for the native provider, which the
 * shell injects into the core ({@link loadNativeCrypto}; the core never
 * loads the addon itself).
 *
 * Most code should use {@link Tun} (`./tun.js`) and {@link UdpSocket}
 * (`./udp.js`) instead of these raw objects.
 * @module
 */

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { createNativeCrypto, type NativeCryptoBinding, type NativeCryptoProvider } from '../crypto/native.js';

/**
 * An error raised or reported by the native layer. System errors carry the
 * errno name in `code` (`'EPERM'`, `'EBUSY'`, ...) and the positive OS errno
 * in `errno`; tsguard-specific conditions use their own codes:
 * `'ELINKGONE'` (the TUN interface was deleted), `'ENOTTUN'` (the name
 * belongs to an interface that is not a TUN), `'ERR_INVALID_ADDRESS'`, ...
 */
export interface NativeError extends Error {
  /** Errno name or tsguard error code. */
  code: string;
  /** Positive OS errno, when a system call failed. */
  errno?: number;
  /** The failing system call, e.g. `'ioctl(TUNSETIFF)'` or `'sendmmsg'`. */
  syscall?: string;
  /** TUN errors: the interface name. */
  ifname?: string;
  /** UDP send errors: destination address (no brackets). */
  address?: string;
  /** UDP send errors: destination port. */
  port?: number;
}

/** Counters of a raw TUN object. */
export interface NativeTunStats {
  /** Packets read from the interface. */
  rxPackets: number;
  /** Bytes read from the interface. */
  rxBytes: number;
  /** JS callbacks made (one per batch of up to 128 packets). */
  rxBatches: number;
  /** Packets written to the interface. */
  txPackets: number;
  /** Bytes written to the interface. */
  txBytes: number;
  /** Packets dropped on write because the interface queue was full (EAGAIN) or it was closed. */
  txDrops: number;
  /** Packets the kernel refused (EINVAL for a non-IP packet, EBADFD once deleted...). */
  txErrors: number;
  /** Errno name of the last write error, or null. */
  lastTxError: string | null;
  /** Reads that were GSO super-packets, split into several packets (counted in rxPackets). */
  rxGsoPackets: number;
  /** Reads dropped because their virtio_net_hdr did not describe the packet. */
  rxMalformed: number;
  /** Writes that carried several coalesced packets (the packets count in txPackets). */
  txCoalesced: number;
  /** Bytes read ahead from the interface and waiting in the flow queue (native/flow_queue.h) now. */
  rxQueueBytes: number;
  /** The most bytes the flow queue has held (`TSGUARD_TUN_QUEUE` bounds it, default 4 MiB). */
  rxQueuePeakBytes: number;
  /** Times reading ahead stopped because memory for a read could not be had (the packets stayed in the kernel). */
  rxNoMemory: number;
  /** `'off'` (TSGUARD_TUN_OFFLOAD=0), `'vnet'` (no offloads taken), `'tso'` or `'tso,uso'`; `',no-coalesce'` once the kernel refused a coalesced write. */
  offloads: string;
}

/** A raw TUN object: `new binding.Tun(name)` opens `/dev/net/tun` and attaches to or creates `name`. */
export interface NativeTun {
  /** The actual interface name (the kernel expands patterns such as `tun%d`). */
  readonly name: string;
  /** The file descriptor, or -1 once closed. */
  readonly fd: number;
  /** Starts reading: `onPackets` gets batches of packets packed in one buffer (src/io/packet-batch.ts), `onError` a fatal error (reading stops). */
  start(onPackets: (batch: Buffer, count: number) => void, onError: (err: NativeError) => void): void;
  /** Stops reading (the interface stays). */
  stop(): void;
  /**
   * Writes the first `count` (default all) packets of `views` (store index,
   * offset, length per packet, over `stores`: src/util/store-table.ts);
   * returns how many were written. Never throws for per-packet errors.
   */
  writePackets(stores: readonly Uint8Array[], views: Uint32Array, count?: number): number;
  /** Counters. */
  stats(): NativeTunStats;
  /** Stops reading and closes the fd (a non-persistent interface disappears). Idempotent. */
  close(): void;
  /** Makes the poll handle keep the event loop alive (default). */
  ref(): void;
  /** Lets the process exit even while reading. */
  unref(): void;
  /** Ends a wake's read rounds early while `fd` has input waiting (-1: never). */
  yieldTo(fd: number): void;
}

/** Counters of a raw UDP socket. */
export interface NativeUdpStats {
  /** Datagrams received and delivered. */
  rxDatagrams: number;
  /** Bytes received. */
  rxBytes: number;
  /** JS callbacks made (one per batch of up to 64 datagrams). */
  rxBatches: number;
  /** Transient receive errors (ICMP errors surfacing on the socket, ENOMEM...). */
  rxErrors: number;
  /** Datagrams dropped because they did not fit the receive slot (never for UDP payloads ≤ 65535). */
  rxTruncated: number;
  /** Datagrams that arrived coalesced by UDP GRO (cut apart by the addon; counted in rxDatagrams). */
  rxGroDatagrams: number;
  /** Whether UDP_GRO is on for this socket. */
  gro: boolean;
  /** Datagrams handed to the kernel. */
  txDatagrams: number;
  /** Bytes handed to the kernel. */
  txBytes: number;
  /** Datagrams currently waiting for the socket to become writable. */
  txQueued: number;
  /** Datagrams ever queued because the socket buffer was full. */
  txQueuedTotal: number;
  /**
   * sendmmsg messages that carried a run of datagrams with UDP GSO
   * (`UDP_SEGMENT`); stays 0 when the kernel refuses GSO or `TSGUARD_UDP_GSO=0`.
   */
  txGsoMessages: number;
  /** Datagrams dropped: the wait queue was full (oldest first), or the socket closed with a non-empty queue. */
  txDrops: number;
  /** Datagrams lost to a send error (EHOSTUNREACH, ENETUNREACH, EPERM, EAFNOSUPPORT...). */
  txErrors: number;
  /** Errno name of the last send error, or null. */
  lastTxError: string | null;
}

/** Address families of a bound socket: `'dual'` (IPv6 socket accepting IPv4 too) or `'4'` (IPv4 only). */
export type UdpFamily = 'dual' | '4';

/** A raw UDP socket: `new binding.UdpSocket()`, then `bind()`. */
export interface NativeUdp {
  /** Binds to the wildcard address; `'dual'` falls back to IPv4 on hosts without IPv6. Returns the bound port. */
  bind(port: number, family: UdpFamily): number;
  /** Bound port (0 before bind). */
  readonly port: number;
  /** Actual family after bind, or null before. */
  readonly family: UdpFamily | null;
  /** The file descriptor, or -1. */
  readonly fd: number;
  /** Sets SO_MARK (0 clears). Needs CAP_NET_ADMIN. */
  setFwmark(mark: number): void;
  /**
   * Starts receiving. `onDatagrams` gets `count` datagrams packed in one
   * buffer (src/io/packet-batch.ts); before each call the source of
   * datagram i is written to `sources` at `i * ENDPOINT_RECORD_LEN` (an
   * endpoint record, see {@link NativeBinding.encodeEndpoint}; `sources`
   * holds 128 of them). `onError` gets fatal receive errors (reading stops);
   * `onSendError`, if given, gets per-datagram send errors asynchronously
   * (at most 64 per loop iteration are kept; all are counted).
   */
  start(
    onDatagrams: (batch: Buffer, count: number) => void,
    onError: (err: NativeError) => void,
    onSendError: ((err: NativeError) => void) | undefined,
    sources: Uint8Array,
  ): void;
  /** Stops receiving; queued sends are still flushed. */
  stop(): void;
  /**
   * Sends datagram i (store index, offset, length at `views[3i]`, over
   * `stores`: src/util/store-table.ts) to the endpoint record at
   * `records[i * ENDPOINT_RECORD_LEN]` for i < count, from the record's local
   * source address when it has one. Returns the number of datagrams sent or queued.
   */
  sendBatch(stores: readonly Uint8Array[], views: Uint32Array, records: Uint8Array, count: number): number;
  /** Sends one datagram to one endpoint record; returns true when it was sent or queued. */
  send(data: Uint8Array, record: Uint8Array): boolean;
  /** Counters. */
  stats(): NativeUdpStats;
  /** Stops everything and closes the fd. Idempotent. */
  close(): void;
  /** Makes the poll handle keep the event loop alive (default). */
  ref(): void;
  /** Lets the process exit even while receiving. */
  unref(): void;
  /** Ends a wake's read rounds early while `fd` has input waiting (-1: never). */
  yieldTo(fd: number): void;
}

/** The addon's exports (its crypto functions are typed by the provider that uses them). */
export interface NativeBinding extends NativeCryptoBinding {
  /** TUN constructor; throws a {@link NativeError} when the interface cannot be opened. */
  Tun: new (name: string) => NativeTun;
  /** UDP socket constructor (unbound). */
  UdpSocket: new () => NativeUdp;
  /**
   * The endpoint record (ENDPOINT_RECORD_LEN bytes: remote IPv6 or
   * IPv4-mapped address, port, scope id, local source, ifindex, errno) of an
   * IPv4 or IPv6 (`%scope` allowed) host and a port in 0..65535. Throws a
   * TypeError with code `ERR_INVALID_ADDRESS` otherwise.
   */
  encodeEndpoint(host: string, port: number): Uint8Array;
  /** The remote host of the endpoint record at `offset` of `records` as text (no brackets, IPv4 plain). */
  endpointHost(records: Uint8Array, offset?: number): string;
  /** The MTU of interface `name` (SIOCGIFMTU). */
  getMtu(name: string): number;
  /** Sets the MTU of interface `name` (SIOCSIFMTU; needs CAP_NET_ADMIN). */
  setMtu(name: string, mtu: number): void;
  /** The interface index of `name`, or 0 when there is none. */
  ifIndex(name: string): number;
  /** Gives interface `name` an address (IPv4: SIOCSIFADDR + SIOCSIFNETMASK; IPv6: added). */
  addAddress(name: string, address: Uint8Array, prefixLength: number): void;
  /** Sets IFF_UP on interface `name`. */
  setUp(name: string): void;
}

/**
 * Absolute path of the addon, found by node-gyp-build under the package root
 * (two levels above this module both in `src/io/` and in `dist/io/`): a
 * source build in `build/Release` or `build/Debug`, else the prebuild in
 * `prebuilds/PLATFORM-ARCH/` that matches this system. `TSGUARD_NATIVE`
 * overrides it.
 */
export function nativeAddonPath(): string {
  const override = process.env['TSGUARD_NATIVE'];
  if (override !== undefined && override !== '') return override;
  const root = fileURLToPath(new URL('../..', import.meta.url));
  try {
    return (createRequire(import.meta.url)('node-gyp-build') as { path(dir: string): string }).path(root);
  } catch {
    return fileURLToPath(new URL('../../build/Release/tsguard_native.node', import.meta.url));
  }
}

let cached: NativeBinding | undefined;

/**
 * Loads the addon once. Throws an Error with `code: 'ERR_TSGUARD_NATIVE'`
 * when it is missing or cannot be loaded (not built, wrong Node ABI, not Linux).
 */
export function loadNative(): NativeBinding {
  if (cached !== undefined) return cached;
  const path = nativeAddonPath();
  if (process.platform !== 'linux') {
    throw Object.assign(new Error(`tsguard's native addon supports Linux only (this is ${process.platform})`), {
      code: 'ERR_TSGUARD_NATIVE',
    });
  }
  if (!existsSync(path)) {
    throw Object.assign(
      new Error(
        `tsguard's native addon is missing (${path}): there is no prebuilt one for ${process.arch} and no source build. ` +
          'Build it with "npm rebuild tsguard" (in a checkout: "npx node-gyp rebuild"); this needs python3, make, a C++17 compiler and the Node.js headers',
      ),
      { code: 'ERR_TSGUARD_NATIVE' },
    );
  }
  try {
    const require = createRequire(import.meta.url);
    cached = require(path) as NativeBinding;
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw Object.assign(
      new Error(`cannot load tsguard's native addon (${path}): ${why}. Rebuild it with "npm run build" or "npx node-gyp rebuild"`),
      { code: 'ERR_TSGUARD_NATIVE', cause: e },
    );
  }
  return cached;
}

let nativeProvider: NativeCryptoProvider | null | undefined;

/**
 * The native crypto provider on the addon's OpenSSL, built once; null when
 * the addon cannot be loaded or its crypto fails the self-test. Entry points
 * pass it to the core: `await loadCrypto(loadNativeCrypto)`.
 */
export function loadNativeCrypto(): NativeCryptoProvider | null {
  if (nativeProvider === undefined) {
    try {
      const addon = loadNative();
      // The handshake worker's batched Noise steps wait on the event loop unless TSGUARD_HANDSHAKE_ASYNC=1
      // (the steps on libuv worker threads: lower packet latency during a flood; bench/README.md step 7).
      const sync = { ...addon, noiseInitiationsAsync: undefined, noiseResponsesAsync: undefined };
      nativeProvider = createNativeCrypto(process.env['TSGUARD_HANDSHAKE_ASYNC'] === '1' ? addon : sync);
    } catch {
      nativeProvider = null;
    }
  }
  return nativeProvider;
}

/**
 * What {@link Tun} and {@link UdpSocket} share: the addon object, the loop
 * reference of its read handle, and closing.
 */
export abstract class NativeHandle<N extends { readonly fd: number; close(): void; ref(): void; unref(): void; yieldTo(fd: number): void }> {
  /** The addon object. */
  protected readonly native: N;
  #closed = false;

  protected constructor(native: N) {
    this.native = native;
  }

  /** True after {@link NativeHandle.close}. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Lets the process exit while reading (the read handle no longer keeps the event loop alive). */
  unref(): void {
    this.native.unref();
  }

  /** Undoes {@link NativeHandle.unref}. */
  ref(): void {
    this.native.ref();
  }

  /**
   * Ends a wake's read rounds early (after the batch that used up its 0.5 ms) whenever `other` has
   * input waiting, so that the event loop serves the other direction before this one's next batch:
   * the TUN and the UDP socket of one device take turns under load instead of eight batches at a
   * time. `null` turns it off.
   */
  yieldTo(other: { readonly fd: number } | null): void {
    this.native.yieldTo(other === null ? -1 : other.fd);
  }

  /** The file descriptor, or -1 once closed. */
  get fd(): number {
    return this.native.fd;
  }

  /**
   * Stops reading and closes the fd: the kernel removes a non-persistent TUN
   * interface when its last fd closes; a socket's queued datagrams are
   * dropped. Idempotent.
   */
  close(): void {
    this.#closed = true;
    this.native.close();
  }
}
