/**
 * UDP sockets with batched I/O (recvmmsg/sendmmsg, UDP GSO and GRO) and SO_MARK support,
 * through the native addon (node:dgram cannot set a fwmark).
 * @module
 */

import { loadNative, NativeHandle, type NativeError, type NativeUdp, type NativeUdpStats, type UdpFamily } from './native.js';

export type { NativeError, UdpFamily } from './native.js';

/** Counters of a {@link UdpSocket}; see {@link NativeUdpStats}. */
export type UdpStats = NativeUdpStats;

/**
 * Receives a batch (1 to 128) of datagrams: `datas[i]` came from
 * `hosts[i]`:`ports[i]`. Hosts are IPv4 dotted quads (IPv4-mapped IPv6
 * sources are reported as plain IPv4) or canonical IPv6 text without
 * brackets; a link-local source keeps its scope as `%ifname`.
 */
export type UdpDatagramsHandler = (datas: Buffer[], hosts: string[], ports: number[]) => void;

/** Receives a fatal receive error; receiving has stopped. */
export type UdpErrorHandler = (err: NativeError) => void;

/**
 * Receives a per-datagram send error (`EHOSTUNREACH`, `ENETUNREACH`,
 * `EPERM` from a firewall, `EMSGSIZE`, `EAFNOSUPPORT` for IPv6 on an IPv4
 * socket...), asynchronously, with `err.address` and `err.port`. Not fatal.
 */
export type UdpSendErrorHandler = (err: NativeError) => void;

/** Options of {@link UdpSocket.bind}. */
export interface UdpBindOptions {
  /** Local port; 0 picks an ephemeral one (see {@link UdpSocket.port}). */
  port: number;
  /** `'dual'` (default): IPv6 socket that also carries IPv4, or IPv4 when the host has no IPv6. `'4'`: IPv4 only. */
  family?: UdpFamily;
  /** SO_MARK for outgoing packets (0 or absent: none). Needs CAP_NET_ADMIN. */
  fwmark?: number;
}

/** A non-blocking UDP socket bound to the wildcard address. */
export class UdpSocket extends NativeHandle<NativeUdp> {
  readonly #port: number;
  readonly #family: UdpFamily;

  private constructor(native: NativeUdp, port: number, family: UdpFamily) {
    super(native);
    this.#port = port;
    this.#family = family;
  }

  /**
   * Creates and binds a socket. Throws a {@link NativeError}
   * (`EADDRINUSE`, `EACCES`, `EPERM` for a fwmark without CAP_NET_ADMIN...).
   */
  // `override`: a class's static side inherits Function.prototype.bind.
  static override bind(options: UdpBindOptions): UdpSocket {
    const binding = loadNative();
    const native = new binding.UdpSocket();
    const port = native.bind(options.port, options.family ?? 'dual');
    try {
      if (options.fwmark !== undefined && options.fwmark !== 0) native.setFwmark(options.fwmark);
    } catch (e) {
      native.close();
      throw e;
    }
    return new UdpSocket(native, port, native.family ?? '4');
  }

  /** The bound port (the actual one when 0 was asked for). */
  get port(): number {
    return this.#port;
  }

  /** The actual family: `'dual'` or `'4'` (also when `'dual'` fell back to IPv4). */
  get family(): UdpFamily {
    return this.#family;
  }

  /** Counters (a fresh snapshot on every access). */
  get stats(): UdpStats {
    return this.native.stats();
  }

  /** Sets SO_MARK on outgoing packets; 0 clears it. Throws `EPERM` without CAP_NET_ADMIN. */
  setFwmark(mark: number): void {
    this.native.setFwmark(mark);
  }

  /**
   * Starts receiving: datagrams are read with recvmmsg when the socket is
   * readable and delivered up to 128 per `onDatagrams` call. With UDP GRO
   * (Linux ≥ 5.12; `TSGUARD_UDP_GRO=0` turns it off) the kernel hands over a
   * run of datagrams from one source as one message, which the addon cuts at
   * the segment size it reports. Calling start again replaces the handlers.
   */
  start(onDatagrams: UdpDatagramsHandler, onError: UdpErrorHandler, onSendError?: UdpSendErrorHandler): void {
    this.native.start(onDatagrams, onError, onSendError);
  }

  /** Stops receiving. */
  stop(): void {
    this.native.stop();
  }

  /**
   * Sends `datas[i]` to `hosts[i]`:`ports[i]` for each i < `count` (default
   * `datas.length`) with sendmmsg. Hosts are IPv4 or IPv6 addresses without
   * brackets (IPv6 may carry `%scope`); IPv4 works on a dual-stack socket.
   * Throws a TypeError with code `ERR_INVALID_ADDRESS` before sending anything
   * when a host or port is invalid. When the socket buffer is full the rest
   * waits in a bounded queue (1024; oldest dropped, counted in
   * `stats.txDrops`); other per-datagram errors are counted and reported to
   * `onSendError`, never thrown. Returns how many datagrams were sent or queued.
   * The buffers may be reused as soon as this returns.
   */
  sendBatch(datas: readonly Uint8Array[], hosts: readonly string[], ports: readonly number[], count?: number): number {
    return this.native.sendBatch(datas, hosts, ports, count);
  }

  /** Sends one datagram; see {@link UdpSocket.sendBatch}. Returns true when it was sent or queued. */
  send(data: Uint8Array, host: string, port: number): boolean {
    return this.native.send(data, host, port);
  }
}
