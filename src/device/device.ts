/**
 * The sans-IO WireGuard device: datagrams, interface packets and time go in;
 * datagrams to send and packets to deliver come out through {@link DeviceIo}.
 * It owns peers, sessions, timers, cookies, the handshake queue and
 * cryptokey routing, and does no I/O of its own, so it runs identically
 * under a real TUN/UDP shell, inside an agent, or in a test with a fake clock.
 *
 * This module is the configuration API; the protocol is in the modules
 * beside it, laid out as wireguard-go's device/: send.ts, receive.ts,
 * timers.ts, sessions.ts (with session/keypairs.ts), load.ts.
 * @module
 */

import { getCrypto } from '../crypto/index.js';
import type { CryptoProvider } from '../crypto/provider.js';
import { bytesEqual, isZeroKey, keyToBase64 } from '../crypto/keys.js';
import { makeIdentity } from '../noise/handshake.js';
import { AllowedIpsOverlapError, type AllowedIps } from '../routing/allowed-ips.js';
import type { Prefix } from '../routing/ip.js';
import type { Emitter } from '../util/emitter.js';
import { DEFAULT_MTU } from './constants.js';
import { Peer } from './peer.js';
import { abandonHandshakes, workHandshakes } from './handshakes.js';
import { flushReceives, receiveDatagram } from './receive.js';
import { flushSends, sendKeepalive, sendPacket, sendPacketTo } from './send.js';
import { expireCurrentKeypairs, removePeer, zeroKeyMaterial } from './sessions.js';
import { DeviceState } from './state.js';
import { tick } from './timers.js';
import { systemClock, type Clock, type DeviceEvents, type DeviceIo, type DeviceStats, type Endpoint } from './types.js';

export { paddedLength } from './send.js';

/** Options of a {@link Device}. */
export interface DeviceOptions {
  /** Output sink. */
  io: DeviceIo;
  /** Time source; defaults to the system clock. */
  clock?: Clock;
  /** Crypto provider; defaults to {@link getCrypto}. */
  crypto?: CryptoProvider;
  /** Interface MTU (bounds transport padding); default 1420. */
  mtu?: number;
  /** Uniform random number in [0, 1) for timer jitter; default Math.random. */
  random?: () => number;
  /**
   * True when the sink is done with every datagram once the outermost
   * {@link Device.batch} that produced it has returned (it sends or copies
   * them by then, as the I/O shell does): each outermost batch then carves
   * its transport datagrams from the start of the same block again instead
   * of from fresh memory. Default false: datagrams are never reused.
   */
  reuseDatagrams?: boolean;
}

/**
 * Changes to a peer, with the semantics of the UAPI `set` operation: absent
 * fields are left unchanged.
 */
export interface PeerUpdate {
  /** New preshared key; null or all-zero removes it. */
  presharedKey?: Uint8Array | null;
  /**
   * New endpoint; null forgets it. Setting the endpoint that is already
   * configured again is a no-op, so re-applying an unchanged configuration
   * never undoes roaming.
   */
  endpoint?: Endpoint | null;
  /** Persistent keepalive interval in seconds (0 = off). */
  persistentKeepalive?: number;
  /** Remove the peer's allowed IPs before adding `allowedIps`. */
  replaceAllowedIps?: boolean;
  /**
   * Prefixes to add. A prefix held by another peer moves to this one
   * (WireGuard semantics) unless {@link PeerUpdate.checkOverlap} is set.
   */
  allowedIps?: readonly Prefix[];
  /**
   * Refuse (throw {@link AllowedIpsOverlapError}, change nothing) if a prefix
   * equals, contains or is inside one held by another peer.
   */
  checkOverlap?: boolean;
}

/** Read-only view of a peer for reporting (`wg show`). */
export interface PeerInfo {
  /** Base64 public key. */
  publicKey: string;
  /** Whether a preshared key is set. */
  hasPresharedKey: boolean;
  /** Current endpoint. */
  endpoint: Endpoint | null;
  /** Persistent keepalive interval in seconds (0 = off). */
  persistentKeepalive: number;
  /** Allowed IPs in insertion order. */
  allowedIps: Prefix[];
  /** Wall-clock ms of the last handshake (0 = never). */
  lastHandshake: number;
  /** UDP payload bytes received from the peer. */
  rxBytes: number;
  /** UDP payload bytes sent to the peer. */
  txBytes: number;
}

/** A WireGuard device without I/O. */
export class Device {
  /** Firewall mark for outgoing datagrams (stored for the shell and UAPI; 0 = none). */
  fwmark = 0;

  readonly #s: DeviceState;

  /** Create a device with no private key and no peers. */
  constructor(opts: DeviceOptions) {
    this.#s = new DeviceState(opts.io, opts.clock ?? systemClock, opts.crypto ?? getCrypto(), opts.random ?? Math.random);
    this.#s.mtu = opts.mtu ?? DEFAULT_MTU;
    this.#s.reuseDatagrams = opts.reuseDatagrams ?? false;
  }

  // ─── configuration ────────────────────────────────────────────────────────

  /** Events for embedding agents. */
  get events(): Emitter<DeviceEvents> {
    return this.#s.events;
  }

  /** Drop counters by reason. */
  get stats(): DeviceStats {
    return this.#s.stats;
  }

  /** Cryptokey routing table. */
  get allowedIps(): AllowedIps<Peer> {
    return this.#s.allowedIps;
  }

  /** The crypto provider in use. */
  get crypto(): CryptoProvider {
    return this.#s.p;
  }

  /** The interface MTU used to bound padding. */
  get mtu(): number {
    return this.#s.mtu;
  }

  set mtu(v: number) {
    this.#s.mtu = v;
  }

  /** Our static private key, or null. */
  get privateKey(): Uint8Array | null {
    return this.#s.local?.privateKey ?? null;
  }

  /** Our static public key, or null. */
  get publicKey(): Uint8Array | null {
    return this.#s.local?.publicKey ?? null;
  }

  /**
   * Set or clear (null / all-zero) the private key. A peer whose public key
   * equals our new public key is removed; every session is expired so that
   * the next packet starts a handshake with the new identity.
   */
  setPrivateKey(key: Uint8Array | null): void {
    const s = this.#s;
    if (key !== null && isZeroKey(key)) key = null;
    const cur = s.local;
    if (cur === null && key === null) return;
    if (cur !== null && key !== null && bytesEqual(cur.privateKey, key)) return;
    s.local = key === null ? null : makeIdentity(s.p, key.slice());
    const pub = s.local?.publicKey ?? null;
    s.cookieChecker.init(pub);
    if (pub !== null) {
      const self = s.peers.get(keyToBase64(pub));
      if (self !== undefined) removePeer(s, self);
    }
    for (const peer of s.peers.values()) {
      peer.handshake.precompute(s.p, s.local);
      expireCurrentKeypairs(s, peer);
    }
  }

  /** All peers, in insertion order. */
  peers(): IterableIterator<Peer> {
    return this.#s.peers.values();
  }

  /** Number of peers. */
  get peerCount(): number {
    return this.#s.peers.size;
  }

  /** A peer by public key (bytes or base64). */
  getPeer(publicKey: Uint8Array | string): Peer | undefined {
    return this.#s.peers.get(typeof publicKey === 'string' ? publicKey : keyToBase64(publicKey));
  }

  /**
   * Create or update a peer (UAPI semantics). With `updateOnly`, a peer that
   * does not exist is not created and undefined is returned. A public key
   * equal to our own is ignored (returns undefined), as wireguard-go does.
   */
  setPeer(publicKey: Uint8Array, update: PeerUpdate = {}, updateOnly = false): Peer | undefined {
    const s = this.#s;
    if (publicKey.length !== 32) throw new RangeError('public key must be 32 bytes');
    const id = keyToBase64(publicKey);
    let peer = s.peers.get(id);
    if (peer === undefined) {
      if (updateOnly) return undefined;
      if (s.local !== null && bytesEqual(s.local.publicKey, publicKey)) return undefined;
    }
    if (update.checkOverlap && update.allowedIps) {
      for (const prefix of update.allowedIps) {
        const c = s.allowedIps.findOverlap(prefix, peer);
        if (c !== undefined) throw new AllowedIpsOverlapError(prefix, c.prefix, c.owner, `peer ${c.owner.id}`);
      }
    }
    if (peer === undefined) {
      peer = new Peer(s.p, s.now, publicKey.slice());
      peer.handshake.precompute(s.p, s.local);
      const indices = s.indices;
      peer.handshake.onReleaseIndex = (i) => indices.delete(i);
      s.peers.set(id, peer);
    }
    if (update.presharedKey !== undefined) {
      peer.handshake.presharedKey = update.presharedKey === null ? new Uint8Array(32) : update.presharedKey.slice();
    }
    if (update.endpoint !== undefined) {
      // Re-applying the endpoint that is already configured (syncconf, setconf of an unchanged file)
      // must not undo roaming: only a different endpoint replaces the learned one.
      const cfg = peer.configuredEndpoint;
      const same = cfg !== null && update.endpoint !== null && cfg.host === update.endpoint.host && cfg.port === update.endpoint.port;
      if (!same) {
        peer.endpoint = update.endpoint;
        peer.configuredEndpoint = update.endpoint;
      }
    }
    if (update.replaceAllowedIps) s.allowedIps.removeOwner(peer);
    if (update.allowedIps) for (const prefix of update.allowedIps) s.allowedIps.insert(prefix, peer);
    if (update.persistentKeepalive !== undefined) {
      const old = peer.persistentKeepalive;
      peer.persistentKeepalive = update.persistentKeepalive;
      // Like wireguard-go: turning persistent keepalive on sends one right away.
      if (old === 0 && update.persistentKeepalive > 0 && s.local !== null && !s.closed) sendKeepalive(s, peer);
    }
    return peer;
  }

  /**
   * Start a handshake with a peer now (as a keepalive would), e.g. after a
   * restart, when the peer still holds a session this process has forgotten.
   * Returns false when the peer is unknown or has no endpoint.
   */
  initiate(publicKey: Uint8Array | string): boolean {
    const s = this.#s;
    const peer = this.getPeer(publicKey);
    if (peer === undefined || peer.endpoint === null || s.local === null || s.closed) return false;
    sendKeepalive(s, peer);
    return true;
  }

  /** Remove a peer (no-op if absent). Returns whether it existed. */
  removePeer(publicKey: Uint8Array | string): boolean {
    const peer = this.getPeer(publicKey);
    if (peer === undefined) return false;
    removePeer(this.#s, peer);
    return true;
  }

  /** Remove every peer. */
  removeAllPeers(): void {
    for (const peer of [...this.#s.peers.values()]) removePeer(this.#s, peer);
  }

  /** Snapshot of a peer for `wg show`-style reporting. */
  peerInfo(peer: Peer): PeerInfo {
    return {
      publicKey: peer.id,
      hasPresharedKey: !isZeroKey(peer.handshake.presharedKey),
      endpoint: peer.endpoint,
      persistentKeepalive: peer.persistentKeepalive,
      allowedIps: this.#s.allowedIps.prefixesOf(peer),
      lastHandshake: peer.lastHandshakeWall,
      rxBytes: peer.rxBytes,
      txBytes: peer.txBytes,
    };
  }

  /**
   * Erase all keys, stop all timers and drop queued handshake messages. Final:
   * the device ignores packets, datagrams and ticks afterwards.
   */
  close(): void {
    const s = this.#s;
    s.closed = true;
    s.handshakes.clear();
    abandonHandshakes(s);
    // What a batch still holds is dropped with the keys (its key snapshots are zeroed).
    s.seals.clear();
    s.opens.clear();
    s.outData.length = 0;
    s.outTo.length = 0;
    s.rxKeypair.length = 0;
    s.rxFrom.length = 0;
    for (const peer of s.peers.values()) zeroKeyMaterial(s, peer, false);
    s.local?.privateKey.fill(0);
  }

  // ─── time ─────────────────────────────────────────────────────────────────

  /** Monotonic ms of the earliest pending timer (Infinity when none). */
  nextDeadline(): number {
    return this.#s.timers.nextDeadline();
  }

  /** Run every timer that is due. Call at (or after) {@link Device.nextDeadline}. */
  tick(): void {
    tick(this.#s);
  }

  // ─── packets and datagrams ────────────────────────────────────────────────

  /**
   * An IP packet read from the interface. The device takes ownership of
   * `packet` (it may be staged until a session exists).
   */
  sendPacket(packet: Uint8Array): void {
    if (this.#s.closed) return;
    sendPacket(this.#s, packet);
  }

  /** Send an IP packet to a given peer, bypassing routing (relays, tests). */
  sendPacketTo(peer: Peer, packet: Uint8Array): void {
    if (this.#s.closed || peer.removed) return;
    sendPacketTo(this.#s, peer, packet);
  }

  /**
   * A UDP datagram received from `from`. Transport data is handled at once;
   * a handshake message (initiation, response, cookie reply) joins the
   * bounded handshake queue (dropped, and counted, when it is full) until
   * {@link Device.workHandshakes}. Never throws.
   */
  receiveDatagram(data: Uint8Array, from: Endpoint): void {
    if (this.#s.closed) return;
    receiveDatagram(this.#s, data, from);
  }

  /**
   * Process up to `max` queued handshake messages (all by default) and
   * return how many were taken from the queue. A shell calls it from its own
   * turn of the event loop while {@link Device.pendingHandshakes} is
   * non-zero, so that handshakes (expensive) never delay the data packets of
   * a batch. With {@link CryptoProvider.initiationStepsAsync} the work after the MAC
   * checks finishes later, in queue order ({@link Device.handshakesInFlight}).
   */
  workHandshakes(max = Infinity): number {
    if (this.#s.closed) return 0;
    return workHandshakes(this.#s, max);
  }

  /**
   * Run `fn` (which feeds the device: packets, datagrams, ticks) as one
   * batch and {@link Device.flush} when the outermost batch ends. Inside a
   * batch the crypto of the data path is deferred: each outgoing transport
   * packet gets its counter and header at once but is sealed, and each
   * incoming one is opened, together with the rest of the batch in one
   * provider call ({@link CryptoProvider.aeadBatch}; the native provider
   * spreads a large batch over threads). Datagrams reach
   * {@link DeviceIo.sendDatagram} and packets {@link DeviceIo.deliverPacket}
   * at the flush, in the order they were produced; protocol decisions
   * (replay window, sessions, timers, roaming) are the same as outside a
   * batch. Inside a batch the device owns the datagrams given to
   * {@link Device.receiveDatagram}: they are decrypted in place. The
   * monotonic clock is read once per outermost batch: all of its packets
   * (and its flush) see that instant.
   */
  batch<T>(fn: () => T): T {
    const s = this.#s;
    if (s.batchDepth++ === 0) {
      s.timeFrozen = true;
      s.frozenNow = Number.NaN;
      if (s.reuseDatagrams) s.arenaUsed = 0;
    }
    try {
      return fn();
    } finally {
      if (--s.batchDepth === 0) {
        try {
          this.flush();
        } finally {
          s.timeFrozen = false;
        }
      }
    }
  }

  /**
   * Finish the work a batch deferred now: open and accept the received
   * transport datagrams, seal the outgoing ones, and hand everything to the
   * sink. {@link Device.batch} calls it; a no-op when nothing is pending.
   */
  flush(): void {
    const s = this.#s;
    if (s.closed) return;
    flushReceives(s);
    flushSends(s);
  }

  /** Handshake messages waiting for {@link Device.workHandshakes}. */
  get pendingHandshakes(): number {
    return this.#s.handshakes.length;
  }

  /**
   * Handshake steps taken from the queue but not finished: waiting for an
   * asynchronous batch ({@link CryptoProvider.initiationStepsAsync}) or behind
   * one. They complete on their own (through {@link DeviceIo.resume}); the
   * shell bounds how many it lets {@link Device.workHandshakes} start.
   */
  get handshakesInFlight(): number {
    return this.#s.hsSteps.length;
  }

  /**
   * True while the device demands cookies from initiators: its handshake
   * queue holds an eighth of its capacity, or did less than a second ago.
   */
  get underLoad(): boolean {
    return this.#s.handshakes.underLoad(this.#s.clock.now());
  }
}
