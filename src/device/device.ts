/**
 * The sans-IO WireGuard device: datagrams, interface packets and time go in;
 * datagrams to send and packets to deliver come out through {@link DeviceIo}.
 * It owns peers, sessions, timers, cookies and cryptokey routing, and does no
 * I/O of its own, so it runs identically under a real TUN/UDP shell, inside
 * an agent, or in a test with a fake clock.
 *
 * Behaviour follows the Linux module and wireguard-go (timers.c / timers.go,
 * send.go, receive.go); comments name the corresponding event.
 * @module
 */

import { getCrypto } from '../crypto/index.js';
import type { CryptoProvider } from '../crypto/provider.js';
import { bytesEqual, isZeroKey, keyToBase64 } from '../crypto/keys.js';
import { tai64nNow } from '../crypto/tai64n.js';
import { CookieChecker, CookieGenerator } from '../noise/cookie.js';
import {
  DEFAULT_MTU,
  INITIATION_SIZE,
  KEEPALIVE_TIMEOUT,
  MAX_DATAGRAM_SIZE,
  MAX_STAGED_PACKETS,
  MAX_TIMER_HANDSHAKES,
  MIN_TRANSPORT_SIZE,
  MSG_COOKIE_REPLY,
  MSG_INITIATION,
  MSG_RESPONSE,
  MSG_TRANSPORT,
  COOKIE_REPLY_SIZE,
  PADDING_MULTIPLE,
  REJECT_AFTER_TIME,
  REKEY_AFTER_MESSAGES_HI,
  REKEY_AFTER_TIME,
  REKEY_TIMEOUT,
  REKEY_TIMEOUT_JITTER_MAX,
  RESPONSE_SIZE,
  TRANSPORT_HEADER_SIZE,
} from '../noise/constants.js';
import {
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  deriveSession,
  makeIdentity,
  senderOf,
  type LocalIdentity,
} from '../noise/handshake.js';
import { readU32, writeU32 } from '../noise/messages.js';
import { RateLimiter } from '../noise/ratelimit.js';
import { AllowedIps, AllowedIpsOverlapError } from '../routing/allowed-ips.js';
import { innerPacketLength, parseIp, type Prefix } from '../routing/ip.js';
import { Keypair } from '../session/keypair.js';
import { Emitter } from '../util/emitter.js';
import { IndexTable } from './index-table.js';
import { Peer, Timer } from './peer.js';
import { TimerQueue } from './timer-queue.js';
import {
  DROP_REASONS,
  systemClock,
  type Clock,
  type DeviceEvents,
  type DeviceIo,
  type DeviceStats,
  type DropReason,
  type Endpoint,
} from './types.js';

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
   * Handshake messages per second above which the device considers itself
   * under load and demands cookies (mac2), whatever their cost. Default 20000.
   * Independently, the device is under load while handshake processing took
   * more than 90% of the last second (it is saturated and falling behind, as
   * wireguard-go's queue-length test detects).
   */
  underLoadThreshold?: number;
  /**
   * An outside measure of load that replaces the device's own estimate
   * (`underLoadThreshold` and the busy-time test): the device demands cookies
   * exactly while this returns true. {@link Runtime} passes the length test
   * of its handshake queue, as wireguard-go does.
   */
  underLoad?: () => boolean;
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
  /** Events for embedding agents. */
  readonly events = new Emitter<DeviceEvents>();
  /** Drop counters by reason. */
  readonly stats: DeviceStats = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as DeviceStats;
  /** Cryptokey routing table. */
  readonly allowedIps = new AllowedIps<Peer>();
  /** UDP listen port (stored for the shell; 0 = random). */
  listenPort = 0;
  /** Firewall mark for outgoing datagrams (stored for the shell; 0 = none). */
  fwmark = 0;

  readonly #io: DeviceIo;
  readonly #clock: Clock;
  readonly #p: CryptoProvider;
  readonly #random: () => number;
  readonly #now: () => number;
  #mtu: number;
  #local: LocalIdentity | null = null;
  readonly #peers = new Map<string, Peer>();
  readonly #indices: IndexTable<Peer>;
  readonly #timers = new TimerQueue<Peer>();
  readonly #cookieChecker: CookieChecker;
  readonly #rateLimiter: RateLimiter;
  readonly #underLoadThreshold: number;
  readonly #underLoadFn: (() => boolean) | null;
  #hsWindowStart = -Infinity;
  #hsWindowCount = 0;
  #hsWindowBusy = 0;
  #underLoadUntil = -Infinity;
  #pad = new Uint8Array(MAX_DATAGRAM_SIZE);
  #closed = false;

  /** Create a device with no private key and no peers. */
  constructor(opts: DeviceOptions) {
    this.#io = opts.io;
    this.#clock = opts.clock ?? systemClock;
    this.#p = opts.crypto ?? getCrypto();
    this.#random = opts.random ?? Math.random;
    this.#mtu = opts.mtu ?? DEFAULT_MTU;
    this.#underLoadThreshold = opts.underLoadThreshold ?? 20_000;
    this.#underLoadFn = opts.underLoad ?? null;
    const clock = this.#clock;
    this.#now = () => clock.now();
    const p = this.#p;
    this.#indices = new IndexTable<Peer>(() => {
      const b = p.randomBytes(4);
      return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
    });
    this.#cookieChecker = new CookieChecker(p, this.#now);
    this.#rateLimiter = new RateLimiter(this.#now);
  }

  // ─── configuration ────────────────────────────────────────────────────────

  /** The crypto provider in use. */
  get crypto(): CryptoProvider {
    return this.#p;
  }

  /** The interface MTU used to bound padding. */
  get mtu(): number {
    return this.#mtu;
  }

  set mtu(v: number) {
    this.#mtu = v;
  }

  /** Our static private key, or null. */
  get privateKey(): Uint8Array | null {
    return this.#local?.privateKey ?? null;
  }

  /** Our static public key, or null. */
  get publicKey(): Uint8Array | null {
    return this.#local?.publicKey ?? null;
  }

  /**
   * Set or clear (null / all-zero) the private key. A peer whose public key
   * equals our new public key is removed; every session is expired so that
   * the next packet starts a handshake with the new identity.
   */
  setPrivateKey(key: Uint8Array | null): void {
    if (key !== null && isZeroKey(key)) key = null;
    const cur = this.#local;
    if (cur === null && key === null) return;
    if (cur !== null && key !== null && bytesEqual(cur.privateKey, key)) return;
    this.#local = key === null ? null : makeIdentity(this.#p, key.slice());
    const pub = this.#local?.publicKey ?? null;
    this.#cookieChecker.init(pub);
    if (pub !== null) {
      const self = this.#peers.get(keyToBase64(pub));
      if (self !== undefined) this.#removePeer(self);
    }
    const now = this.#now();
    for (const peer of this.#peers.values()) {
      peer.handshake.precompute(this.#p, this.#local);
      this.#expireCurrentKeypairs(peer, now);
    }
  }

  /** All peers, in insertion order. */
  peers(): IterableIterator<Peer> {
    return this.#peers.values();
  }

  /** Number of peers. */
  get peerCount(): number {
    return this.#peers.size;
  }

  /** A peer by public key (bytes or base64). */
  getPeer(publicKey: Uint8Array | string): Peer | undefined {
    return this.#peers.get(typeof publicKey === 'string' ? publicKey : keyToBase64(publicKey));
  }

  /**
   * Create or update a peer (UAPI semantics). With `updateOnly`, a peer that
   * does not exist is not created and undefined is returned. A public key
   * equal to our own is ignored (returns undefined), as wireguard-go does.
   */
  setPeer(publicKey: Uint8Array, update: PeerUpdate = {}, updateOnly = false): Peer | undefined {
    if (publicKey.length !== 32) throw new RangeError('public key must be 32 bytes');
    const id = keyToBase64(publicKey);
    let peer = this.#peers.get(id);
    if (peer === undefined) {
      if (updateOnly) return undefined;
      if (this.#local !== null && bytesEqual(this.#local.publicKey, publicKey)) return undefined;
    }
    if (update.checkOverlap && update.allowedIps) {
      for (const prefix of update.allowedIps) {
        const c = this.allowedIps.findOverlap(prefix, peer);
        if (c !== undefined) throw new AllowedIpsOverlapError(prefix, c.prefix, c.owner, `peer ${c.owner.id}`);
      }
    }
    if (peer === undefined) {
      peer = new Peer(this.#p, this.#now, publicKey.slice());
      peer.handshake.precompute(this.#p, this.#local);
      peer.handshake.onReleaseIndex = (i) => this.#indices.delete(i);
      this.#peers.set(id, peer);
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
    if (update.replaceAllowedIps) this.allowedIps.removeOwner(peer);
    if (update.allowedIps) for (const prefix of update.allowedIps) this.allowedIps.insert(prefix, peer);
    if (update.persistentKeepalive !== undefined) {
      const old = peer.persistentKeepalive;
      peer.persistentKeepalive = update.persistentKeepalive;
      // Like wireguard-go: turning persistent keepalive on sends one right away.
      if (old === 0 && update.persistentKeepalive > 0 && this.#local !== null) this.#sendKeepalive(peer);
    }
    return peer;
  }

  /**
   * Start a handshake with a peer now (as a keepalive would), e.g. after a
   * restart, when the peer still holds a session this process has forgotten.
   * Returns false when the peer is unknown or has no endpoint.
   */
  initiate(publicKey: Uint8Array | string): boolean {
    const peer = this.getPeer(publicKey);
    if (peer === undefined || peer.endpoint === null || this.#local === null || this.#closed) return false;
    this.#sendKeepalive(peer);
    return true;
  }

  /** Add one allowed IP to an existing peer, refusing overlaps (throws AllowedIpsOverlapError). */
  addAllowedIpChecked(publicKey: Uint8Array | string, prefix: Prefix): void {
    const peer = this.getPeer(publicKey);
    if (peer === undefined) throw new Error(`no such peer: ${typeof publicKey === 'string' ? publicKey : keyToBase64(publicKey)}`);
    this.allowedIps.insertChecked(prefix, peer);
  }

  /** Remove a peer (no-op if absent). Returns whether it existed. */
  removePeer(publicKey: Uint8Array | string): boolean {
    const peer = this.getPeer(publicKey);
    if (peer === undefined) return false;
    this.#removePeer(peer);
    return true;
  }

  /** Remove every peer. */
  removeAllPeers(): void {
    for (const peer of [...this.#peers.values()]) this.#removePeer(peer);
  }

  /** Snapshot of a peer for `wg show`-style reporting. */
  peerInfo(peer: Peer): PeerInfo {
    return {
      publicKey: peer.id,
      hasPresharedKey: !isZeroKey(peer.handshake.presharedKey),
      endpoint: peer.endpoint,
      persistentKeepalive: peer.persistentKeepalive,
      allowedIps: this.allowedIps.prefixesOf(peer),
      lastHandshake: peer.lastHandshakeWall,
      rxBytes: peer.rxBytes,
      txBytes: peer.txBytes,
    };
  }

  /** Erase all keys and stop all timers. The device stays usable (peers remain configured). */
  close(): void {
    this.#closed = true;
    for (const peer of this.#peers.values()) this.#zeroKeyMaterial(peer, false);
    this.#local?.privateKey.fill(0);
  }

  // ─── time ─────────────────────────────────────────────────────────────────

  /** Monotonic ms of the earliest pending timer (Infinity when none). */
  nextDeadline(): number {
    return this.#timers.nextDeadline();
  }

  /** Run every timer that is due. Call at (or after) {@link Device.nextDeadline}. */
  tick(): void {
    if (this.#closed) return;
    this.#timers.run(this.#now(), (peer, slot) => {
      try {
        this.#fireTimer(peer, slot);
      } catch {
        // A bug in one timer must not stop the device.
      }
    });
  }

  // ─── outbound: packets from the interface ─────────────────────────────────

  /**
   * An IP packet read from the interface. The device takes ownership of
   * `packet` (it may be queued until a session exists).
   */
  sendPacket(packet: Uint8Array): void {
    if (this.#closed) return;
    const peer = this.allowedIps.lookupPacketDst(packet);
    if (peer === undefined) {
      this.#drop(innerPacketLength(packet) < 0 ? 'badOutboundPacket' : 'noRoute');
      return;
    }
    this.sendPacketTo(peer, packet);
  }

  /** Send an IP packet to a given peer, bypassing routing (relays, tests). */
  sendPacketTo(peer: Peer, packet: Uint8Array): void {
    if (this.#closed || peer.removed) return;
    const kp = peer.current;
    if (peer.staged.length === 0 && kp !== null && this.#usableForSending(kp)) {
      this.#encryptAndSend(peer, kp, packet);
      this.#afterDataSent(peer, kp, packet.length === 0);
      return;
    }
    if (peer.staged.length >= MAX_STAGED_PACKETS) {
      peer.staged.shift();
      peer.txDropped++;
      this.#drop('stagedOverflow');
    }
    peer.staged.push(packet);
    this.#sendStaged(peer);
  }

  // ─── inbound: datagrams from the network ──────────────────────────────────

  /** A UDP datagram received from `from`. Never throws. */
  receiveDatagram(data: Uint8Array, from: Endpoint): void {
    if (this.#closed) return;
    try {
      this.#receive(data, from);
    } catch {
      this.#drop('malformed');
    }
  }

  #receive(data: Uint8Array, from: Endpoint): void {
    const len = data.length;
    if (len < 4 || len > MAX_DATAGRAM_SIZE) return this.#drop('malformed');
    const type = readU32(data, 0);
    switch (type) {
      case MSG_TRANSPORT:
        if (len < MIN_TRANSPORT_SIZE) return this.#drop('malformed');
        return this.#receiveTransport(data, from);
      case MSG_INITIATION:
      case MSG_RESPONSE: {
        if (len !== (type === MSG_INITIATION ? INITIATION_SIZE : RESPONSE_SIZE)) return this.#drop('malformed');
        const t0 = this.#now();
        try {
          return this.#receiveHandshake(data, from, type === MSG_INITIATION);
        } finally {
          this.#hsWindowBusy += this.#now() - t0;
        }
      }
      case MSG_COOKIE_REPLY:
        if (len !== COOKIE_REPLY_SIZE) return this.#drop('malformed');
        return this.#receiveCookieReply(data);
      default:
        return this.#drop('unknownType');
    }
  }

  #receiveHandshake(data: Uint8Array, from: Endpoint, isInitiation: boolean): void {
    const underLoad = this.#countHandshakeAndCheckLoad();
    const local = this.#local;
    if (local === null) return this.#drop('noPrivateKey');
    if (!this.#cookieChecker.checkMac1(data)) return this.#drop('badMac1');
    if (underLoad) {
      const ip = parseIp(from.host).bytes;
      const src = sourceBytes(ip, from.port);
      if (!this.#cookieChecker.checkMac2(data, src)) {
        const reply = this.#cookieChecker.createReply(data, senderOf(data), src);
        if (reply !== null) this.#io.sendDatagram(reply, from);
        return this.#drop('cookieReplySent');
      }
      if (!this.#rateLimiter.allow(ip)) return this.#drop('rateLimited');
    }
    const now = this.#now();
    if (isInitiation) {
      const r = consumeInitiation(this.#p, local, data, now, (key) => this.#peers.get(keyToBase64(key))?.handshake);
      if ('refused' in r) {
        return this.#drop(r.refused === 'replay' || r.refused === 'flood' ? 'handshakeReplay' : 'handshakeFailed');
      }
      const peer = this.#peers.get(keyToBase64(r.handshake.remoteStatic))!;
      this.#onAuthenticatedTraversal(peer);
      this.#onAuthenticatedReceived(peer);
      this.#setEndpoint(peer, from);
      peer.rxBytes += data.length;
      this.#sendResponse(peer);
      return;
    }
    const hs = consumeResponse(this.#p, local, data, (index) => {
      const e = this.#indices.get(index);
      return e !== undefined && e.keypair === null ? e.peer.handshake : undefined;
    });
    if (hs === null) return this.#drop('unexpectedResponse');
    const peer = this.#peers.get(keyToBase64(hs.remoteStatic))!;
    this.#onAuthenticatedTraversal(peer);
    this.#onAuthenticatedReceived(peer);
    this.#setEndpoint(peer, from);
    peer.rxBytes += data.length;
    if (!this.#beginSession(peer)) return;
    this.#onHandshakeComplete(peer, true);
    this.#sendKeepalive(peer);
  }

  #receiveCookieReply(data: Uint8Array): void {
    const e = this.#indices.get(CookieGenerator.receiverOf(data));
    if (e === undefined) return this.#drop('unknownIndex');
    if (!e.peer.cookies.consumeReply(data)) return this.#drop('badCookieReply');
  }

  #receiveTransport(data: Uint8Array, from: Endpoint): void {
    const e = this.#indices.get(readU32(data, 4));
    if (e === undefined || e.keypair === null) return this.#drop('unknownIndex');
    const kp = e.keypair;
    const peer = e.peer;
    if (this.#now() - kp.created >= REJECT_AFTER_TIME) return this.#drop('expiredKey');
    const lo = readU32(data, 8);
    const hi = readU32(data, 12);
    const plain = this.#p.open(kp.receive, lo, hi, data.subarray(TRANSPORT_HEADER_SIZE));
    if (plain === null) return this.#drop('decryptFailed');
    if (!kp.replay.accept(lo, hi)) return this.#drop('replayed');

    if (peer.next === kp) {
      // The responder's first packet on a new session confirms it.
      peer.previous && this.#deleteKeypair(peer.previous);
      peer.previous = peer.current;
      peer.current = kp;
      peer.next = null;
      this.#onHandshakeComplete(peer, false);
      this.#sendStaged(peer);
    }
    this.#keepKeyFreshReceiving(peer, kp);
    this.#onAuthenticatedTraversal(peer);
    this.#onAuthenticatedReceived(peer);
    this.#setEndpoint(peer, from);
    peer.rxBytes += data.length;

    if (plain.length === 0) return; // keepalive
    const ipLen = innerPacketLength(plain);
    if (ipLen < 0) {
      peer.rxDropped++;
      return this.#drop('badInnerPacket');
    }
    const packet = ipLen === plain.length ? plain : plain.subarray(0, ipLen);
    if (this.allowedIps.lookupPacketSrc(packet) !== peer) {
      peer.rxDropped++;
      return this.#drop('sourceNotAllowed');
    }
    this.#onDataReceived(peer);
    this.#io.deliverPacket(packet, peer.id);
  }

  // ─── sending ──────────────────────────────────────────────────────────────

  #usableForSending(kp: Keypair): boolean {
    return !kp.exhausted && this.#now() - kp.created < REJECT_AFTER_TIME;
  }

  /** wireguard-go SendStagedPackets. */
  #sendStaged(peer: Peer): void {
    if (peer.staged.length === 0) return;
    const kp = peer.current;
    if (kp === null || !this.#usableForSending(kp)) {
      this.#sendInitiation(peer, false);
      return;
    }
    let sentData = false;
    let sentAny = false;
    while (peer.staged.length > 0) {
      if (kp.exhausted) {
        this.#sendInitiation(peer, false);
        break;
      }
      const packet = peer.staged.shift()!;
      this.#encryptAndSend(peer, kp, packet);
      sentAny = true;
      if (packet.length !== 0) sentData = true;
    }
    if (sentAny) this.#afterDataSent(peer, kp, !sentData);
  }

  #encryptAndSend(peer: Peer, kp: Keypair, packet: Uint8Array): void {
    const plen = packet.length;
    const padded = paddedLength(plen, this.#mtu);
    const out = new Uint8Array(TRANSPORT_HEADER_SIZE + padded + 16);
    out[0] = MSG_TRANSPORT;
    writeU32(out, 4, kp.remoteIndex);
    writeU32(out, 8, kp.sendLo);
    writeU32(out, 12, kp.sendHi);
    let plain = packet;
    if (padded !== plen) {
      plain = this.#pad.subarray(0, padded);
      plain.set(packet);
      plain.fill(0, plen);
    }
    this.#p.sealInto(kp.send, kp.sendLo, kp.sendHi, plain, out, TRANSPORT_HEADER_SIZE);
    kp.advance();
    this.#sendTo(peer, out);
  }

  #afterDataSent(peer: Peer, kp: Keypair, keepaliveOnly: boolean): void {
    this.#onAuthenticatedTraversal(peer);
    this.#onAuthenticatedSent(peer);
    if (!keepaliveOnly) this.#onDataSent(peer);
    // keepKeyFreshSending
    if (kp.isInitiator && (kp.sendHi >= REKEY_AFTER_MESSAGES_HI || this.#now() - kp.created >= REKEY_AFTER_TIME)) {
      this.#sendInitiation(peer, false);
    }
  }

  #keepKeyFreshReceiving(peer: Peer, kp: Keypair): void {
    if (peer.sentLastMinuteHandshake) return;
    if (kp.isInitiator && this.#now() - kp.created >= REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT) {
      peer.sentLastMinuteHandshake = true;
      this.#sendInitiation(peer, false);
    }
  }

  #sendTo(peer: Peer, data: Uint8Array): void {
    const ep = peer.endpoint;
    if (ep === null) {
      peer.txDropped++;
      this.#drop('noEndpoint');
      return;
    }
    peer.txBytes += data.length;
    this.#io.sendDatagram(data, ep);
  }

  #sendKeepalive(peer: Peer): void {
    if (peer.staged.length === 0) peer.staged.push(new Uint8Array(0));
    this.#sendStaged(peer);
  }

  #sendInitiation(peer: Peer, isRetry: boolean): void {
    if (!isRetry) peer.handshakeAttempts = 0;
    const now = this.#now();
    if (now - peer.lastSentHandshake < REKEY_TIMEOUT) return;
    const local = this.#local;
    if (local === null) return;
    peer.lastSentHandshake = now;
    const hs = peer.handshake;
    hs.clear();
    const index = this.#indices.allocate(peer);
    const msg = createInitiation(this.#p, local, hs, index, tai64nNow(this.#clock.wallNow()));
    if (msg === null) {
      this.#indices.delete(index);
      return;
    }
    peer.cookies.addMacs(msg);
    this.#onAuthenticatedTraversal(peer);
    this.#onAuthenticatedSent(peer);
    this.#sendTo(peer, msg);
    // timersHandshakeInitiated
    this.#timers.mod(peer, Timer.RetransmitHandshake, now + REKEY_TIMEOUT + this.#jitter());
  }

  #sendResponse(peer: Peer): void {
    peer.lastSentHandshake = this.#now();
    const index = this.#indices.allocate(peer);
    const msg = createResponse(this.#p, peer.handshake, index);
    if (msg === null) {
      this.#indices.delete(index);
      return;
    }
    peer.cookies.addMacs(msg);
    if (!this.#beginSession(peer)) return;
    this.#onAuthenticatedTraversal(peer);
    this.#onAuthenticatedSent(peer);
    this.#sendTo(peer, msg);
  }

  // ─── sessions ─────────────────────────────────────────────────────────────

  /** wireguard-go BeginSymmetricSession + timersSessionDerived. */
  #beginSession(peer: Peer): boolean {
    const keys = deriveSession(this.#p, peer.handshake);
    if (keys === null) return false;
    const kp = new Keypair(keys.send, keys.receive, keys.isInitiator, this.#now(), keys.localIndex, keys.remoteIndex);
    this.#indices.bindKeypair(kp.localIndex, peer, kp);
    if (kp.isInitiator) {
      if (peer.next !== null) {
        const next = peer.next;
        peer.next = null;
        if (peer.previous) this.#deleteKeypair(peer.previous);
        peer.previous = next;
        if (peer.current) this.#deleteKeypair(peer.current);
      } else {
        if (peer.previous) this.#deleteKeypair(peer.previous);
        peer.previous = peer.current;
      }
      peer.current = kp;
    } else {
      if (peer.next) this.#deleteKeypair(peer.next);
      peer.next = kp;
      if (peer.previous) this.#deleteKeypair(peer.previous);
      peer.previous = null;
    }
    // timersSessionDerived
    this.#timers.mod(peer, Timer.ZeroKeyMaterial, this.#now() + REJECT_AFTER_TIME * 3);
    return true;
  }

  #deleteKeypair(kp: Keypair): void {
    this.#indices.delete(kp.localIndex);
    kp.zero();
  }

  #expireCurrentKeypairs(peer: Peer, now: number): void {
    peer.handshake.clear();
    peer.lastSentHandshake = now - REKEY_TIMEOUT - 1000;
    peer.current?.expireSending();
    peer.next?.expireSending();
  }

  #zeroKeyMaterial(peer: Peer, emit: boolean): void {
    const had = peer.current !== null || peer.previous !== null || peer.next !== null;
    for (const kp of [peer.current, peer.previous, peer.next]) if (kp) this.#deleteKeypair(kp);
    peer.current = peer.previous = peer.next = null;
    peer.handshake.clear();
    for (let s = 0; s < peer.timerAt.length; s++) this.#timers.del(peer, s);
    if (emit && had) this.events.emit('sessionExpired', { publicKey: peer.id });
  }

  #removePeer(peer: Peer): void {
    this.#zeroKeyMaterial(peer, false);
    peer.removed = true;
    peer.staged.length = 0;
    this.allowedIps.removeOwner(peer);
    this.#peers.delete(peer.id);
  }

  #setEndpoint(peer: Peer, from: Endpoint): void {
    const cur = peer.endpoint;
    if (cur !== null && cur.port === from.port && cur.host === from.host) return;
    peer.endpoint = { host: from.host, port: from.port };
    if (cur !== null && this.events.has('endpointChanged')) {
      this.events.emit('endpointChanged', { publicKey: peer.id, endpoint: peer.endpoint });
    }
  }

  // ─── timers (kernel timers.c / wireguard-go timers.go) ────────────────────

  #jitter(): number {
    return Math.floor(this.#random() * REKEY_TIMEOUT_JITTER_MAX);
  }

  #fireTimer(peer: Peer, slot: number): void {
    if (peer.removed) return;
    switch (slot) {
      case Timer.RetransmitHandshake:
        if (peer.handshakeAttempts > MAX_TIMER_HANDSHAKES) {
          this.#timers.del(peer, Timer.SendKeepalive);
          peer.txDropped += peer.staged.length;
          peer.staged.length = 0;
          if (!this.#timers.pending(peer, Timer.ZeroKeyMaterial)) {
            this.#timers.mod(peer, Timer.ZeroKeyMaterial, this.#now() + REJECT_AFTER_TIME * 3);
          }
          this.events.emit('handshakeTimeout', { publicKey: peer.id });
        } else {
          peer.handshakeAttempts++;
          this.#sendInitiation(peer, true);
        }
        break;
      case Timer.SendKeepalive:
        this.#sendKeepalive(peer);
        if (peer.needAnotherKeepalive) {
          peer.needAnotherKeepalive = false;
          this.#timers.mod(peer, Timer.SendKeepalive, this.#now() + KEEPALIVE_TIMEOUT);
        }
        break;
      case Timer.NewHandshake:
        this.#sendInitiation(peer, false);
        break;
      case Timer.ZeroKeyMaterial:
        this.#zeroKeyMaterial(peer, true);
        break;
      case Timer.PersistentKeepalive:
        if (peer.persistentKeepalive > 0) this.#sendKeepalive(peer);
        break;
    }
  }

  /** timersDataSent */
  #onDataSent(peer: Peer): void {
    if (!this.#timers.pending(peer, Timer.NewHandshake)) {
      this.#timers.mod(peer, Timer.NewHandshake, this.#now() + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + this.#jitter());
    }
  }

  /** timersDataReceived */
  #onDataReceived(peer: Peer): void {
    if (!this.#timers.pending(peer, Timer.SendKeepalive)) {
      this.#timers.mod(peer, Timer.SendKeepalive, this.#now() + KEEPALIVE_TIMEOUT);
    } else {
      peer.needAnotherKeepalive = true;
    }
  }

  /** timersAnyAuthenticatedPacketSent */
  #onAuthenticatedSent(peer: Peer): void {
    this.#timers.del(peer, Timer.SendKeepalive);
  }

  /** timersAnyAuthenticatedPacketReceived */
  #onAuthenticatedReceived(peer: Peer): void {
    this.#timers.del(peer, Timer.NewHandshake);
  }

  /** timersAnyAuthenticatedPacketTraversal */
  #onAuthenticatedTraversal(peer: Peer): void {
    if (peer.persistentKeepalive > 0) {
      this.#timers.mod(peer, Timer.PersistentKeepalive, this.#now() + peer.persistentKeepalive * 1000);
    }
  }

  /** timersHandshakeComplete */
  #onHandshakeComplete(peer: Peer, isInitiator: boolean): void {
    this.#timers.del(peer, Timer.RetransmitHandshake);
    peer.handshakeAttempts = 0;
    peer.sentLastMinuteHandshake = false;
    peer.lastHandshakeWall = this.#clock.wallNow();
    this.events.emit('handshake', { publicKey: peer.id, endpoint: peer.endpoint, isInitiator });
  }

  // ─── load ─────────────────────────────────────────────────────────────────

  #countHandshakeAndCheckLoad(): boolean {
    if (this.#underLoadFn !== null) return this.#underLoadFn();
    const now = this.#now();
    if (now - this.#hsWindowStart >= UNDER_LOAD_WINDOW) {
      this.#hsWindowStart = now;
      this.#hsWindowCount = 0;
      this.#hsWindowBusy = 0;
    }
    if (++this.#hsWindowCount > this.#underLoadThreshold || this.#hsWindowBusy > UNDER_LOAD_BUSY) {
      this.#underLoadUntil = now + UNDER_LOAD_WINDOW;
    }
    return now < this.#underLoadUntil;
  }

  /** True while the device demands cookies from initiators. */
  get underLoad(): boolean {
    if (this.#underLoadFn !== null) return this.#underLoadFn();
    return this.#now() < this.#underLoadUntil;
  }

  #drop(reason: DropReason): void {
    this.stats[reason]++;
  }
}

/** Length of the window over which handshake load is measured, and how long "under load" lasts. */
const UNDER_LOAD_WINDOW = 1000;
/** Handshake processing time per window beyond which the device is under load (it is saturated). */
const UNDER_LOAD_BUSY = UNDER_LOAD_WINDOW * 0.9;

/** Padded plaintext length (wireguard-go calculatePaddingSize). */
export function paddedLength(len: number, mtu: number): number {
  if (mtu === 0) return (len + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1);
  let last = len;
  if (last > mtu) last %= mtu;
  let padded = (last + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1);
  if (padded > mtu) padded = mtu;
  return len + (padded - last);
}

/** Cookie input for a source: IP bytes then the port, big-endian. */
export function sourceBytes(ip: Uint8Array, port: number): Uint8Array {
  const b = new Uint8Array(ip.length + 2);
  b.set(ip);
  b[ip.length] = port >>> 8;
  b[ip.length + 1] = port & 0xff;
  return b;
}

