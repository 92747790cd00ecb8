/**
 * The thin I/O shell around the sans-IO {@link Device}: a TUN interface, a
 * UDP socket and one timer. Packets arrive in batches from the native addon
 * and each is handed to the device as one {@link Device.batch}, so the
 * crypto of the whole batch is one provider call (on the addon's threads
 * when it is large; `TSGUARD_CRYPTO_BATCH=0` goes back to one call per
 * packet); everything the device produces is written out as a batch when
 * the handler returns.
 *
 * The device queues handshake messages itself (see device/load.ts); the
 * runtime only schedules their processing, a few per turn of the event loop
 * (setImmediate; more when many wait and the batches of Noise steps are asynchronous),
 * so that a burst of handshakes does not hold back the data packets of the
 * batches behind it; asynchronous batches complete later through the
 * device's `resume` hook.
 * @module
 */

import { Device, type DeviceOptions } from '../device/device.js';
import { systemClock, type Clock, type Endpoint } from '../device/types.js';
import { Tun } from './tun.js';
import { UdpSocket } from './udp.js';

/** How often the interface MTU is re-read. */
const MTU_POLL_MS = 2000;
/** Handshake messages taken per turn of the event loop before I/O gets its turn again, with a short queue. */
const HANDSHAKES_PER_TURN = 16;
/**
 * Per turn when more than that many wait (a flood) and the batches of Noise steps are asynchronous: a turn then
 * costs the event loop only the MAC checks, and larger batches mean fewer thread hand-offs.
 */
const HANDSHAKES_PER_TURN_ASYNC_LOADED = 64;
/** Handshake steps in flight (asynchronous batches and what waits behind them) before the queue is left alone. */
const HANDSHAKE_STEPS_IN_FLIGHT = 4;

/** Options of {@link Runtime.start}. */
export interface RuntimeOptions {
  /** Interface name for the TUN device; null runs without a TUN (deliveries go to `onPacket`). */
  ifname: string | null;
  /** UDP listen port (0 = random). */
  listenPort?: number;
  /** Firewall mark for the UDP socket. */
  fwmark?: number;
  /** Device options other than io. */
  device?: Omit<DeviceOptions, 'io'>;
  /** Receives decrypted packets when there is no TUN, or instead of the TUN when it returns true. */
  onPacket?: (packet: Uint8Array, fromPeer: string) => boolean;
  /** Fatal I/O errors (e.g. the interface was deleted). */
  onFatal?: (err: Error & { code?: string }) => void;
  /** Log lines (never secrets). */
  log?: (message: string) => void;
}

/** A running device with real I/O. */
export class Runtime {
  /** The protocol engine. */
  readonly device: Device;
  #tun: Tun | null;
  #udp: UdpSocket;
  #outData: Uint8Array[] = [];
  #outTo: Endpoint[] = [];
  #tunOut: Uint8Array[] = [];
  #timer: NodeJS.Timeout | null = null;
  #mtuTimer: NodeJS.Timeout | null = null;
  #timerAt = Infinity;
  #inBatch = 0;
  #closed = false;
  #hsScheduled: NodeJS.Immediate | null = null;
  /** Whether a batch's crypto runs as one batch (Device.batch); TSGUARD_CRYPTO_BATCH=0 seals and opens per packet. */
  readonly #cryptoBatch = process.env['TSGUARD_CRYPTO_BATCH'] !== '0';
  /** Whether the TUN and the UDP socket take turns under load (#pairTurns); TSGUARD_TURNS=0 turns it off. */
  readonly #turns = process.env['TSGUARD_TURNS'] !== '0';
  readonly #opts: RuntimeOptions;
  readonly #clock: Clock;

  private constructor(opts: RuntimeOptions, tun: Tun | null, udp: UdpSocket) {
    this.#opts = opts;
    this.#clock = opts.device?.clock ?? systemClock;
    this.#tun = tun;
    this.#udp = udp;
    this.device = new Device({
      ...opts.device,
      // #flush sends (or the socket's EAGAIN queue copies) every datagram when the batch ends; only
      // with device batches (every one of them inside a runtime batch).
      reuseDatagrams: this.#cryptoBatch,
      io: {
        sendDatagram: (data, to) => this.#queueDatagram(data, to),
        deliverPacket: (packet, fromPeer) => {
          if (opts.onPacket?.(packet, fromPeer)) return;
          this.#tunOut.push(packet);
        },
        // A handshake batch computed off the event loop: its outputs as a batch, then more queue work.
        resume: (fn) => {
          if (this.#closed) return;
          this.batch(fn);
          if (this.device.pendingHandshakes > 0) this.#scheduleHandshakes();
        },
      },
    });
    this.device.fwmark = opts.fwmark ?? 0;
  }

  /** Open the TUN (if any) and bind the UDP socket, then start processing. */
  static start(opts: RuntimeOptions): Runtime {
    const tun = opts.ifname === null ? null : Tun.open(opts.ifname);
    let udp: UdpSocket;
    try {
      udp = UdpSocket.bind({ port: opts.listenPort ?? 0, fwmark: opts.fwmark ?? 0 });
    } catch (e) {
      tun?.close();
      throw e;
    }
    const rt = new Runtime(opts, tun, udp);
    rt.#startIo();
    return rt;
  }

  #startIo(): void {
    const tun = this.#tun;
    if (tun !== null) {
      // Like wireguard-go: a new interface starts with the device's MTU (the WireGuard default).
      try {
        tun.setMtu(this.device.mtu);
      } catch {
        // An attached persistent interface may refuse; keep its MTU.
      }
      // Follow MTU changes (ip link set mtu …) so padding never exceeds the interface MTU.
      const readMtu = () => {
        try {
          this.device.mtu = tun.getMtu();
        } catch {
          // interface going away; the TUN error handler deals with it
        }
      };
      readMtu();
      this.#mtuTimer = setInterval(readMtu, MTU_POLL_MS);
      this.#mtuTimer.unref();
    }
    this.#tun?.start(
      (packets) => this.batch(() => {
        for (const p of packets) this.device.sendPacket(p);
      }),
      (err) => this.#fatal(err),
    );
    this.#startUdp(this.#udp);
  }

  /**
   * The TUN and the UDP socket take turns while both have input (NativeHandle.yieldTo: after 0.5 ms
   * of one side's batches), so that a packet in one direction does not wait for up to eight batches
   * of the other (a ping's reply behind a bulk upload's batches; bench/README.md, step 8).
   * `TSGUARD_TURNS=0` turns it off.
   */
  #pairTurns(): void {
    if (this.#tun === null || !this.#turns) return;
    this.#tun.yieldTo(this.#udp);
    this.#udp.yieldTo(this.#tun);
  }

  #startUdp(udp: UdpSocket): void {
    udp.start(
      (datas, froms) => this.batch(() => {
        for (let i = 0; i < datas.length; i++) this.device.receiveDatagram(datas[i]!, froms[i]!);
        if (this.device.pendingHandshakes > 0) this.#scheduleHandshakes();
      }),
      (err) => this.#opts.log?.(`udp: ${err.message}`),
    );
    this.#pairTurns();
  }

  #scheduleHandshakes(): void {
    this.#hsScheduled ??= setImmediate(() => this.#workHandshakes());
  }

  /**
   * Let the device take some queued handshake messages, then yield to I/O:
   * {@link HANDSHAKES_PER_TURN}, or with asynchronous batches
   * {@link HANDSHAKES_PER_TURN_ASYNC_LOADED} when more than that wait. With
   * {@link HANDSHAKE_STEPS_IN_FLIGHT} steps in flight the queue waits (a
   * completion reschedules), so that a flood stays in the queue, where the
   * under-load rules see it.
   */
  #workHandshakes(): void {
    this.#hsScheduled = null;
    if (this.#closed || this.device.handshakesInFlight >= HANDSHAKE_STEPS_IN_FLIGHT) return;
    const deep = this.device.pendingHandshakes > HANDSHAKES_PER_TURN && this.device.crypto.initiationStepsAsync !== undefined;
    const max = deep ? HANDSHAKES_PER_TURN_ASYNC_LOADED : HANDSHAKES_PER_TURN;
    this.batch(() => this.device.workHandshakes(max));
    if (this.device.pendingHandshakes > 0) this.#scheduleHandshakes();
  }

  /** The TUN interface name, if any. */
  get ifname(): string | null {
    return this.#tun?.name ?? null;
  }

  /** The bound UDP port. */
  get listenPort(): number {
    return this.#udp.port;
  }

  /**
   * Run `fn` (which may feed the device) and then write out everything it
   * produced and re-arm the timer. Use it for every external change of the
   * device (UAPI, hub reconciliation) so outputs are flushed.
   */
  batch<T>(fn: () => T): T {
    this.#inBatch++;
    try {
      return this.#cryptoBatch ? this.device.batch(fn) : fn();
    } finally {
      if (--this.#inBatch === 0) this.#flush();
    }
  }

  /** Rebind the UDP socket to another port (0 = random). Keeps the old one on failure. */
  setListenPort(port: number): void {
    if (port === this.#udp.port && port !== 0) return;
    const udp = UdpSocket.bind({ port, fwmark: this.device.fwmark });
    this.#udp.close();
    this.#udp = udp;
    this.#startUdp(udp);
  }

  /** Set SO_MARK on the UDP socket. */
  setFwmark(mark: number): void {
    this.#udp.setFwmark(mark);
    this.device.fwmark = mark;
  }

  #queueDatagram(data: Uint8Array, to: Endpoint): void {
    this.#outData.push(data);
    this.#outTo.push(to);
    if (this.#inBatch === 0) this.#flush();
  }

  #flush(): void {
    if (this.#closed) return;
    if (this.#outData.length > 0) {
      const d = this.#outData;
      const to = this.#outTo;
      this.#outData = [];
      this.#outTo = [];
      this.#udp.sendBatch(d, to);
    }
    if (this.#tunOut.length > 0) {
      const t = this.#tunOut;
      this.#tunOut = [];
      this.#tun?.write(t);
    }
    this.#arm();
  }

  #arm(): void {
    const at = this.device.nextDeadline();
    if (at >= this.#timerAt) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerAt = at;
    if (at === Infinity) {
      this.#timer = null;
      return;
    }
    const delay = Math.max(0, Math.ceil(at - this.#clock.now()));
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#timerAt = Infinity;
      this.batch(() => this.device.tick());
    }, delay);
  }

  #fatal(err: Error & { code?: string }): void {
    this.#opts.log?.(`tun: ${err.message}`);
    this.#opts.onFatal?.(err);
  }

  /** Stop I/O and erase keys. Closing the TUN removes the interface. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    if (this.#hsScheduled !== null) clearImmediate(this.#hsScheduled);
    if (this.#mtuTimer !== null) clearInterval(this.#mtuTimer);
    this.device.close();
    this.#udp.close();
    this.#tun?.close();
  }
}
