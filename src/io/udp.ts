/**
 * UDP sockets with batched I/O (recvmmsg/sendmmsg, UDP GSO and GRO) and SO_MARK support,
 * through the native addon (node:dgram cannot set a fwmark).
 * @module
 */

import type { Endpoint } from '../device/types.js';
import { ENDPOINT_RECORD_LEN, ENDPOINT_RECORD_WORDS, EndpointInterner, endpointRecord, makeEndpoint } from './endpoint.js';
import { StoreTable, viewTable } from '../util/store-table.js';
import { unpackBatch } from './packet-batch.js';
import { loadNative, NativeHandle, type NativeError, type NativeUdp, type NativeUdpStats, type UdpFamily } from './native.js';

export type { NativeError, UdpFamily } from './native.js';

/** Counters of a {@link UdpSocket}; see {@link NativeUdpStats}. */
export type UdpStats = NativeUdpStats;

/** Datagrams delivered per {@link UdpDatagramsHandler} call at most. */
const MAX_PER_CALLBACK = 128;

/**
 * Receives a batch (1 to 128) of datagrams: `datas[i]` came from `froms[i]`.
 * Equal sources give the same {@link Endpoint} object, which also remembers
 * the local address the datagram arrived on: sending to it replies from that
 * address. Its `host` is an IPv4 dotted quad (IPv4-mapped IPv6 sources are
 * plain IPv4) or canonical IPv6 text without brackets, a link-local source
 * with its scope as `%ifname`; it is made only when read. `froms` is reused
 * by the next call, and so is `datas`: keep the endpoints and datagrams, not
 * the arrays. The datagrams are the callee's; they are views of one buffer
 * per batch.
 */
export type UdpDatagramsHandler = (datas: readonly Uint8Array[], froms: readonly Endpoint[]) => void;

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
  readonly #interner = new EndpointInterner();
  readonly #froms: Endpoint[] = [];
  #tx32 = new Uint32Array(64 * ENDPOINT_RECORD_WORDS);
  #tx8 = new Uint8Array(this.#tx32.buffer);
  readonly #stores = new StoreTable();
  #views: Uint32Array = new Uint32Array(64 * 3);

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

  /**
   * An endpoint for `host` (IPv4, or IPv6 without brackets and with an
   * optional `%scope`) and `port`, to send to. Throws a TypeError with code
   * `ERR_INVALID_ADDRESS` when they are not an address and a port in 0..65535.
   */
  static endpoint(host: string, port: number): Endpoint {
    return makeEndpoint(host, port);
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
    const sources = new Uint32Array(MAX_PER_CALLBACK * ENDPOINT_RECORD_WORDS);
    const interner = this.#interner;
    const froms = this.#froms;
    const datas: Uint8Array[] = [];
    this.native.start(
      (batch, n) => {
        unpackBatch(batch, n, datas);
        froms.length = n;
        for (let i = 0; i < n; i++) froms[i] = interner.intern(sources, i);
        onDatagrams(datas, froms);
      },
      onError,
      onSendError,
      new Uint8Array(sources.buffer),
    );
  }

  /** Stops receiving. */
  stop(): void {
    this.native.stop();
  }

  /**
   * Sends `datas[i]` to `to[i]` for each i < `count` (default
   * `datas.length`) with sendmmsg, from the local address a received
   * endpoint's datagram arrived on (when that address is gone, from the
   * route's choice until a datagram arrives on it again). IPv4 works on a
   * dual-stack socket. Throws a TypeError with code `ERR_INVALID_ADDRESS`
   * before sending anything when an endpoint made elsewhere has a host that
   * is not an IP address. When the socket buffer is full the rest waits in a
   * bounded queue (1024; oldest dropped, counted in `stats.txDrops`); other
   * per-datagram errors (port 0 included) are counted and reported to
   * `onSendError`, never thrown. Returns how many datagrams were sent or
   * queued. The buffers may be reused as soon as this returns.
   */
  sendBatch(datas: readonly Uint8Array[], to: readonly Endpoint[], count = datas.length): number {
    if (count > to.length) throw new RangeError(`UdpSocket.sendBatch: count ${count} exceeds the ${to.length} endpoints`);
    if (this.#tx32.length < count * ENDPOINT_RECORD_WORDS) {
      let words = this.#tx32.length;
      while (words < count * ENDPOINT_RECORD_WORDS) words *= 2;
      this.#tx32 = new Uint32Array(words);
      this.#tx8 = new Uint8Array(this.#tx32.buffer);
    }
    if (count > datas.length) throw new RangeError(`UdpSocket.sendBatch: count ${count} exceeds the ${datas.length} datagrams`);
    const t = this.#tx32;
    for (let i = 0; i < count; i++) t.set(endpointRecord(to[i]!), i * ENDPOINT_RECORD_WORDS);
    this.#views = viewTable(this.#stores, datas, count, this.#views);
    try {
      return this.native.sendBatch(this.#stores.stores, this.#views, this.#tx8, count);
    } finally {
      this.#stores.clear();
    }
  }

  /** Sends one datagram; see {@link UdpSocket.sendBatch}. Returns true when it was sent or queued. */
  send(data: Uint8Array, to: Endpoint): boolean {
    const r = endpointRecord(to);
    return this.native.send(data, new Uint8Array(r.buffer, r.byteOffset, ENDPOINT_RECORD_LEN));
  }
}
