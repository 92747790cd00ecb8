/**
 * The thin I/O shell around the sans-IO {@link Device}: a TUN interface, a
 * UDP socket and one timer. Packets arrive in batches from the native addon;
 * everything the device produces while handling a batch is written out as a
 * batch when the handler returns.
 *
 * Handshake initiations and responses do not go to the device with the rest
 * of their batch: they wait in a bounded queue that is worked off a few at a
 * time between I/O events (as wireguard-go gives them their own queue and
 * workers), so that a burst of handshakes (~200 µs of CPU each) does not hold
 * back the data packets behind it. The queue's length is the device's
 * "under load" signal, as in wireguard-go: a responder that keeps up never
 * demands cookies, one that falls behind does (for one second after).
 * @module
 */

import { Device, type DeviceOptions } from '../device/device.js';
import { systemClock, type Clock, type Endpoint } from '../device/types.js';
import { DEFAULT_MTU, INITIATION_SIZE, MSG_INITIATION, MSG_RESPONSE, RESPONSE_SIZE } from '../noise/constants.js';
import { Tun } from './tun.js';
import { UdpSocket } from './udp.js';

/** How often the interface MTU is re-read. */
const MTU_POLL_MS = 2000;
/** Handshake messages waiting at most (wireguard-go's QueueHandshakeSize); more are dropped. */
export const HANDSHAKE_QUEUE_SIZE = 1024;
/** Queue length from which the device is under load (wireguard-go: an eighth of the queue). */
const UNDER_LOAD_QUEUE = HANDSHAKE_QUEUE_SIZE / 8;
/** How long the device stays under load after the queue was that long (wireguard-go's UnderLoadAfterTime). */
const UNDER_LOAD_AFTER_MS = 1000;
/** Handshake messages handled per turn of the event loop before I/O gets its turn again. */
const HANDSHAKES_PER_TURN = 16;

/** A handshake message waiting for its turn. */
interface QueuedHandshake {
  data: Uint8Array;
  from: Endpoint;
}

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
  #outHosts: string[] = [];
  #outPorts: number[] = [];
  #tunOut: Uint8Array[] = [];
  #timer: NodeJS.Timeout | null = null;
  #mtuTimer: NodeJS.Timeout | null = null;
  #timerAt = Infinity;
  #inBatch = 0;
  #closed = false;
  #hsQueue: (QueuedHandshake | undefined)[] = [];
  #hsHead = 0;
  #hsScheduled: NodeJS.Immediate | null = null;
  #underLoadUntil = -Infinity;
  #hsDrops = 0;
  readonly #opts: RuntimeOptions;
  readonly #clock: Clock;

  private constructor(opts: RuntimeOptions, tun: Tun | null, udp: UdpSocket) {
    this.#opts = opts;
    this.#clock = opts.device?.clock ?? systemClock;
    this.#tun = tun;
    this.#udp = udp;
    this.device = new Device({
      underLoad: () => this.#underLoad(),
      ...opts.device,
      io: {
        sendDatagram: (data, to) => this.#queueDatagram(data, to),
        deliverPacket: (packet, fromPeer) => {
          if (opts.onPacket?.(packet, fromPeer)) return;
          this.#tunOut.push(packet);
        },
      },
    });
    this.device.listenPort = udp.port;
    this.device.fwmark = opts.fwmark ?? 0;
  }

  /** Open the TUN (if any) and bind the UDP socket, then start processing. */
  static start(opts: RuntimeOptions): Runtime {
    const tun = opts.ifname === null ? null : Tun.open(opts.ifname);
    if (tun !== null) {
      // Like wireguard-go: a new interface starts with the WireGuard default MTU.
      try {
        tun.setMtu(opts.device?.mtu ?? DEFAULT_MTU);
      } catch {
        // An attached persistent interface may refuse; keep its MTU.
      }
    }
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

  #startUdp(udp: UdpSocket): void {
    udp.start(
      (datas, hosts, ports) => this.batch(() => {
        for (let i = 0; i < datas.length; i++) {
          const d = datas[i]!;
          const from = { host: hosts[i]!, port: ports[i]! };
          if (isHandshake(d)) this.#queueHandshake(d, from);
          else this.device.receiveDatagram(d, from);
        }
      }),
      (err) => this.#opts.log?.(`udp: ${err.message}`),
    );
  }

  #queueHandshake(data: Uint8Array, from: Endpoint): void {
    if (this.#hsQueue.length - this.#hsHead >= HANDSHAKE_QUEUE_SIZE) {
      this.#hsDrops++;
      return;
    }
    this.#hsQueue.push({ data, from });
    this.#hsScheduled ??= setImmediate(() => this.#workHandshakes());
  }

  /** Handle up to {@link HANDSHAKES_PER_TURN} queued handshake messages, then yield to I/O. */
  #workHandshakes(): void {
    this.#hsScheduled = null;
    if (this.#closed) return;
    this.batch(() => {
      for (let n = 0; n < HANDSHAKES_PER_TURN && this.#hsHead < this.#hsQueue.length; n++) {
        const m = this.#hsQueue[this.#hsHead]!;
        this.#hsQueue[this.#hsHead++] = undefined;
        this.device.receiveDatagram(m.data, m.from);
      }
    });
    if (this.#hsHead >= this.#hsQueue.length) {
      this.#hsQueue = [];
      this.#hsHead = 0;
    } else {
      // Under sustained load the queue may never run empty: drop the handled slots now and then.
      if (this.#hsHead >= HANDSHAKE_QUEUE_SIZE) {
        this.#hsQueue = this.#hsQueue.slice(this.#hsHead);
        this.#hsHead = 0;
      }
      this.#hsScheduled ??= setImmediate(() => this.#workHandshakes());
    }
  }

  /** wireguard-go's rule: under load while the queue holds ≥ 1/8 of its capacity, and one second after. */
  #underLoad(): boolean {
    const now = this.#clock.now();
    if (this.#hsQueue.length - this.#hsHead >= UNDER_LOAD_QUEUE) this.#underLoadUntil = now + UNDER_LOAD_AFTER_MS;
    return now < this.#underLoadUntil;
  }

  /** Handshake messages dropped because the queue was full. */
  get handshakeQueueDrops(): number {
    return this.#hsDrops;
  }

  /** Handshake messages waiting to be handled. */
  get handshakeQueueLength(): number {
    return this.#hsQueue.length - this.#hsHead;
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
      return fn();
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
    this.device.listenPort = udp.port;
    this.#startUdp(udp);
  }

  /** Set SO_MARK on the UDP socket. */
  setFwmark(mark: number): void {
    this.#udp.setFwmark(mark);
    this.device.fwmark = mark;
  }

  #queueDatagram(data: Uint8Array, to: Endpoint): void {
    this.#outData.push(data);
    this.#outHosts.push(to.host);
    this.#outPorts.push(to.port);
    if (this.#inBatch === 0) this.#flush();
  }

  #flush(): void {
    if (this.#closed) return;
    if (this.#outData.length > 0) {
      const d = this.#outData;
      const h = this.#outHosts;
      const p = this.#outPorts;
      this.#outData = [];
      this.#outHosts = [];
      this.#outPorts = [];
      this.#udp.sendBatch(d, h, p);
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
    this.#hsQueue = [];
    this.#hsHead = 0;
    if (this.#mtuTimer !== null) clearInterval(this.#mtuTimer);
    this.device.close();
    this.#udp.close();
    this.#tun?.close();
  }
}

/** A handshake initiation or response by type and size (anything else goes to the device at once). */
function isHandshake(d: Uint8Array): boolean {
  const t = d[0];
  return (t === MSG_INITIATION && d.length === INITIATION_SIZE) || (t === MSG_RESPONSE && d.length === RESPONSE_SIZE);
}
