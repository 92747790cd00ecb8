/**
 * Linux TUN interfaces (layer 3, no packet information header) read and
 * written in batches through the native addon. With offloads (the default;
 * `TSGUARD_TUN_OFFLOAD=0` turns them off) the interface is opened with
 * `IFF_VNET_HDR` and TSO/USO: the addon splits the kernel's super-packets on
 * read and coalesces each written batch per flow, so callers always see and
 * write plain IP packets.
 * @module
 */

import { StoreTable, viewTable } from '../util/store-table.js';
import { unpackBatch } from './packet-batch.js';
import { loadNative, NativeHandle, type NativeError, type NativeTun, type NativeTunStats } from './native.js';

export type { NativeError } from './native.js';

/** Counters of a {@link Tun}; see {@link NativeTunStats}. */
export type TunStats = NativeTunStats;

/**
 * Receives a batch of IP packets read from the interface (up to 64 reads,
 * each maybe split into several packets). The interface is read ahead into a
 * flow-fair queue (fq_codel's scheduler: one queue per flow, deficit round
 * robin, flows that were idle first; `TSGUARD_TUN_QUEUE` bytes, default
 * 4 MiB), so a batch holds packets in that order, in arrival order within a
 * flow, and the packets of flows that were idle come in a batch of their own.
 * The packets are the callee's; they are views of one buffer per batch.
 * `packets` is reused by the next call: keep the packets, not the array.
 */
export type TunPacketsHandler = (packets: readonly Uint8Array[]) => void;

/**
 * Receives a fatal error; reading has stopped. `err.code === 'ELINKGONE'`
 * means the interface was deleted (`ip link del`, namespace removed): the
 * owner should close the Tun and shut down.
 */
export type TunErrorHandler = (err: NativeError) => void;

/** A TUN interface opened with `IFF_TUN | IFF_NO_PI` (and `IFF_VNET_HDR` with offloads), non-blocking. */
export class Tun extends NativeHandle<NativeTun> {
  readonly #stores = new StoreTable();
  #views: Uint32Array = new Uint32Array(128 * 3);

  private constructor(native: NativeTun) {
    super(native);
  }

  /**
   * Creates the TUN interface `name`, or attaches to an existing
   * (persistent, unused) one. Patterns such as `tun%d` let the kernel pick
   * the number; {@link Tun.name} tells the result.
   *
   * Throws a {@link NativeError}: `ENAMETOOLONG` (more than 15 bytes, checked
   * before any system call), `EINVAL` (invalid name), `ENOENT`/`ENODEV`
   * (no `/dev/net/tun` or no tun driver), `EPERM`/`EACCES` (needs root or
   * CAP_NET_ADMIN), `EBUSY` (the TUN is in use by another process),
   * `ENOTTUN` (the name belongs to an interface that is not a TUN).
   */
  static open(name: string): Tun {
    const binding = loadNative();
    return new Tun(new binding.Tun(name));
  }

  /** The interface name. */
  get name(): string {
    return this.native.name;
  }

  /** Counters (a fresh snapshot on every access). */
  get stats(): TunStats {
    return this.native.stats();
  }

  /**
   * Starts reading. Packets are read from the libuv loop when the fd is
   * readable (and while read-ahead packets wait), up to 128 per `onPackets`
   * call. `onError` is called at most once, with a fatal error; see
   * {@link TunErrorHandler}. Calling start again replaces the handlers.
   */
  start(onPackets: TunPacketsHandler, onError: TunErrorHandler): void {
    const packets: Uint8Array[] = [];
    this.native.start((batch, count) => onPackets(unpackBatch(batch, count, packets)), onError);
  }

  /** Stops reading; packets queue up in the kernel (and are then dropped by it). */
  stop(): void {
    this.native.stop();
  }

  /**
   * Writes IP packets to the interface (synchronous, non-blocking; with
   * offloads, packets of one TCP or UDP flow that the kernel's GRO would merge
   * go out as one write). Packets the kernel cannot take right now are dropped and
   * counted in `stats.txDrops`; refused ones in `stats.txErrors`. Writing to
   * a closed Tun drops. Returns the number of packets written.
   */
  write(packets: readonly Uint8Array[], count = packets.length): number {
    if (!(count >= 0 && count <= packets.length && Number.isInteger(count))) {
      throw Object.assign(new RangeError(`Tun.write: count must be an integer between 0 and ${packets.length}, got ${count}`), { code: 'ERR_OUT_OF_RANGE' });
    }
    this.#views = viewTable(this.#stores, packets, count, this.#views);
    try {
      return this.native.writePackets(this.#stores.stores, this.#views, count);
    } finally {
      this.#stores.clear();
    }
  }

  /** The interface MTU. */
  getMtu(): number {
    return loadNative().getMtu(this.name);
  }

  /** Sets the interface MTU (needs CAP_NET_ADMIN). */
  setMtu(mtu: number): void {
    loadNative().setMtu(this.name, mtu);
  }
}

/** The index of network interface `name`, or 0 when it does not exist. */
export function ifIndex(name: string): number {
  return loadNative().ifIndex(name);
}
