/**
 * The hub's in-process relay: a packet that arrives from peer X for an
 * address owned by peer Y is re-encrypted to Y inside the engine — no
 * ip_forward, no iptables — if the policy allows that pair of kinds.
 *
 * With several hubs (`./mesh.ts`), the other hubs are peers of kind `hub`
 * that hold the addresses whose home they are. The policy is always applied
 * to the kinds of the packet's origin and final destination, never to the
 * hub in between: for a hub peer, the kind is that of the owner of the
 * packet's source (or destination) address, looked up through
 * {@link AddressKinds}. Transit is one hop: a packet from a hub is never
 * relayed to another hub.
 * @module
 */

import type { Device } from '../device/device.js';

/** Kinds of hub peers. Agents (self-registered devices) count as devices. */
export type PeerKind = 'device' | 'client' | 'agent';

/** Kinds of live WireGuard peers of a hub: its fleet peers and the other hubs. */
export type RelayPeerKind = PeerKind | 'hub';

/** The kind of the fleet peer owning a packet's source or destination address (any hub's peers). */
export interface AddressKinds {
  /** Kind of the owner of the packet's source address, if known. */
  sourceKind(packet: Uint8Array): PeerKind | undefined;
  /** Kind of the owner of the packet's destination address, if known. */
  destinationKind(packet: Uint8Array): PeerKind | undefined;
}

/** Relay policy. */
export interface RelayPolicy {
  /** Allow device ↔ device traffic (off by default). */
  allowDeviceToDevice: boolean;
}

/** Per-peer relay counters. */
export interface RelayCounters {
  /** Packets from this peer relayed to another peer. */
  relayed: number;
  /** Packets from this peer refused by the policy. */
  refused: number;
}

/** Whether traffic from a peer of kind `from` to one of kind `to` may be relayed. */
export function relayAllowed(from: PeerKind, to: PeerKind, policy: RelayPolicy): boolean {
  const fromDevice = from !== 'client';
  const toDevice = to !== 'client';
  if (fromDevice !== toDevice) return true; // client ↔ device
  if (fromDevice && toDevice) return policy.allowDeviceToDevice;
  return false; // client ↔ client
}

/**
 * Decides, for every packet the device decrypted, whether it goes to another
 * peer (relay), is refused, or goes to the hub's own interface.
 */
export class Relay {
  readonly #kinds = new Map<string, RelayPeerKind>();
  readonly #counters = new Map<string, RelayCounters>();
  #addressKinds: AddressKinds | null = null;

  /** @param onRefused called for every refused packet (the hub logs it, rate limited) */
  constructor(
    private readonly device: Device,
    public policy: RelayPolicy,
    private readonly onRefused?: (fromId: string, toId: string) => void,
  ) {}

  /** Where the kinds behind `hub` peers come from (set by the mesh). */
  setAddressKinds(k: AddressKinds | null): void {
    this.#addressKinds = k;
  }

  /** Record (or forget, with null) the kind of the peer with base64 key `id`. */
  setKind(id: string, kind: RelayPeerKind | null): void {
    if (kind === null) {
      this.#kinds.delete(id);
      this.#counters.delete(id);
    } else {
      this.#kinds.set(id, kind);
    }
  }

  /** Counters of a peer. */
  counters(id: string): RelayCounters {
    return this.#counters.get(id) ?? { relayed: 0, refused: 0 };
  }

  #bump(id: string, field: keyof RelayCounters): void {
    let c = this.#counters.get(id);
    if (c === undefined) this.#counters.set(id, (c = { relayed: 0, refused: 0 }));
    c[field]++;
  }

  /**
   * Handle a decrypted packet from peer `fromId`. Returns true if the relay
   * consumed it (relayed or refused), false if it belongs to the hub's own
   * interface.
   */
  handle(packet: Uint8Array, fromId: string): boolean {
    const to = this.device.allowedIps.lookupPacketDst(packet);
    if (to === undefined) return false; // the hub's own address, or nobody's: the hub's interface decides
    if (to.id === fromId) {
      this.#bump(fromId, 'refused');
      this.onRefused?.(fromId, to.id);
      return true;
    }
    const fromPeer = this.#kinds.get(fromId);
    const toPeer = this.#kinds.get(to.id);
    // Hub ↔ hub: the policy looks through the hub to the origin and the final destination.
    const fromKind = fromPeer === 'hub' ? this.#addressKinds?.sourceKind(packet) : fromPeer;
    const toKind = toPeer === 'hub' ? (fromPeer === 'hub' ? undefined : this.#addressKinds?.destinationKind(packet)) : toPeer;
    if (fromKind === undefined || toKind === undefined || !relayAllowed(fromKind, toKind, this.policy)) {
      this.#bump(fromId, 'refused');
      this.onRefused?.(fromId, to.id);
      return true;
    }
    this.device.sendPacketTo(to, packet);
    this.#bump(fromId, 'relayed');
    return true;
  }
}
