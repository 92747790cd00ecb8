/**
 * The state a {@link Device} shares with its modules (send.ts, receive.ts,
 * timers.ts, sessions.ts): package-internal, like the fields of
 * wireguard-go's Device struct. Only the device's modules use it; embedders
 * go through the Device.
 * @internal
 * @module
 */

import { AeadBatch } from '../crypto/batch.js';
import type { CryptoProvider } from '../crypto/provider.js';
import { MAX_DATAGRAM_SIZE } from '../noise/constants.js';
import { CookieChecker } from '../noise/cookie.js';
import type { LocalIdentity } from '../noise/handshake.js';
import { RateLimiter } from '../noise/ratelimit.js';
import { AllowedIps } from '../routing/allowed-ips.js';
import type { Keypair } from '../session/keypair.js';
import { Emitter } from '../util/emitter.js';
import { DEFAULT_MTU } from './constants.js';
import { IndexTable } from './index-table.js';
import { HandshakeQueue } from './load.js';
import type { HandshakeStep } from './handshakes.js';
import type { Peer } from './peer.js';
import { TimerQueue } from './timer-queue.js';
import { DROP_REASONS, type Clock, type DeviceEvents, type DeviceIo, type DeviceStats, type DropReason, type Endpoint } from './types.js';

/** Everything a device holds. @internal */
export class DeviceState {
  readonly events = new Emitter<DeviceEvents>();
  readonly stats: DeviceStats = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as DeviceStats;
  readonly allowedIps = new AllowedIps<Peer>();
  readonly peers = new Map<string, Peer>();
  readonly timers = new TimerQueue<Peer>();
  readonly handshakes = new HandshakeQueue();
  /** Handshake work past its MAC checks, in queue order, waiting for asynchronous batches of Noise steps (handshakes.ts). */
  readonly hsSteps: HandshakeStep[] = [];
  readonly indices: IndexTable<Peer>;
  readonly cookieChecker: CookieChecker;
  readonly rateLimiter: RateLimiter;
  /** Monotonic ms (the clock's `now`, bound once for the helpers that take a function). */
  readonly now: () => number;
  /**
   * The injected clock as the device's modules read it: inside an outermost
   * {@link Device.batch} (its flush included) `now()` is read once and then
   * repeated, so a batch of packets costs one clock read, not several per
   * packet; every decision of the batch sees the same instant.
   */
  readonly clock: Clock;
  /** True from the start of an outermost batch until its flush has run. */
  timeFrozen = false;
  /** The instant of the current batch, NaN until first read. */
  frozenNow = Number.NaN;
  /** Frees a dropped keypair's receiver index (bound once: no closure per call). */
  readonly releaseKeypair: (kp: Keypair) => void;
  /** Scratch space for padding a plaintext before sealing. */
  readonly pad = new Uint8Array(MAX_DATAGRAM_SIZE);
  mtu = DEFAULT_MTU;
  local: LocalIdentity | null = null;
  closed = false;

  // ─── batch mode (Device.batch): crypto of a whole batch in one provider call ───
  /** Nesting depth of Device.batch; > 0 defers sealing, opening and sending to {@link flushBatch}. */
  batchDepth = 0;
  /** Seals recorded by the send path, run at the flush. */
  readonly seals = new AeadBatch(true);
  /** Datagrams to hand to `io.sendDatagram` at the flush, in order (transport ones sealed first). */
  readonly outData: Uint8Array[] = [];
  readonly outTo: Endpoint[] = [];
  /** Opens recorded by the receive path (stage 1), with each datagram's keypair and source. */
  readonly opens = new AeadBatch(false);
  readonly rxKeypair: Keypair[] = [];
  readonly rxFrom: Endpoint[] = [];
  /** Where outgoing transport datagrams are carved from (a fresh block when full). */
  arena = new Uint8Array(0);
  arenaUsed = 0;
  /** DeviceOptions.reuseDatagrams: each outermost batch starts carving at the start of the block again. */
  reuseDatagrams = false;

  constructor(
    readonly io: DeviceIo,
    clock: Clock,
    readonly p: CryptoProvider,
    readonly random: () => number,
  ) {
    this.now = () => clock.now();
    this.clock = {
      now: () => {
        if (!this.timeFrozen) return clock.now();
        if (Number.isNaN(this.frozenNow)) this.frozenNow = clock.now();
        return this.frozenNow;
      },
      wallNow: () => clock.wallNow(),
    };
    this.indices = new IndexTable<Peer>(() => {
      const b = p.randomBytes(4);
      return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
    });
    this.cookieChecker = new CookieChecker(p, this.now);
    this.rateLimiter = new RateLimiter(this.now);
    const indices = this.indices;
    this.releaseKeypair = (kp) => indices.delete(kp.localIndex);
  }
}

/** Count a dropped input. */
export function drop(d: DeviceState, reason: DropReason): void {
  d.stats[reason]++;
}

/**
 * `b` itself when it spans its whole buffer, else a copy: what the device
 * keeps beyond a batch (staged packets, queued handshake messages) must not
 * pin the I/O shell's batch buffer it is a view of.
 */
export function ownBytes(b: Uint8Array): Uint8Array {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : b.slice();
}
