/**
 * Cryptokey routing: a longest-prefix-match table from IP prefixes to
 * owners (peers), one binary trie per address family. Lookups read the
 * address straight out of a packet header and allocate nothing.
 * @module
 */

import { formatPrefix, prefixEquals, type Prefix } from './ip.js';

interface Node<T> {
  zero: Node<T> | null;
  one: Node<T> | null;
  owner: T | undefined;
  prefix: Prefix | null;
}

function newNode<T>(): Node<T> {
  return { zero: null, one: null, owner: undefined, prefix: null };
}

function bitAt(bytes: Uint8Array, offset: number, i: number): number {
  return (bytes[offset + (i >> 3)]! >> (7 - (i & 7))) & 1;
}

/** Thrown by {@link AllowedIps.insertChecked} when a prefix overlaps another owner's. */
export class AllowedIpsOverlapError<T = unknown> extends Error {
  override name = 'AllowedIpsOverlapError';
  /**
   * @param prefix the prefix being added
   * @param conflicting the prefix it overlaps
   * @param owner the owner of `conflicting`
   * @param ownerName how to name that owner in the message
   */
  constructor(
    readonly prefix: Prefix,
    readonly conflicting: Prefix,
    readonly owner: T,
    ownerName: string,
  ) {
    super(`${formatPrefix(prefix)} overlaps ${formatPrefix(conflicting)}, which belongs to ${ownerName}`);
  }
}

/** Longest-prefix-match table with WireGuard's "one prefix, one owner" semantics. */
export class AllowedIps<T extends object> {
  #v4: Node<T> = newNode();
  #v6: Node<T> = newNode();
  #byOwner = new Map<T, Prefix[]>();
  #size = 0;

  /** @param nameOf how owners are named in error messages */
  constructor(private readonly nameOf: (owner: T) => string = (o) => String((o as { id?: string }).id ?? 'another peer')) {}

  /** Number of prefixes in the table. */
  get size(): number {
    return this.#size;
  }

  #root(family: 4 | 6): Node<T> {
    return family === 4 ? this.#v4 : this.#v6;
  }

  /**
   * Add `prefix` for `owner`. If another owner holds exactly this prefix it
   * is moved (kernel and wireguard-go semantics).
   */
  insert(prefix: Prefix, owner: T): void {
    let node = this.#root(prefix.family);
    for (let i = 0; i < prefix.bits; i++) {
      if (bitAt(prefix.bytes, 0, i) === 0) node = node.zero ??= newNode();
      else node = node.one ??= newNode();
    }
    const prev = node.owner;
    if (prev === owner) return;
    if (prev !== undefined) this.#unlist(prev, prefix);
    else this.#size++;
    node.owner = owner;
    node.prefix = { family: prefix.family, bytes: prefix.bytes.slice(), bits: prefix.bits };
    let list = this.#byOwner.get(owner);
    if (list === undefined) this.#byOwner.set(owner, (list = []));
    list.push(node.prefix);
  }

  /**
   * The first entry of another owner that equals, contains or lies inside
   * `prefix`, or undefined. `exceptOwner`'s own entries never conflict.
   */
  findOverlap(prefix: Prefix, exceptOwner?: T): { prefix: Prefix; owner: T } | undefined {
    let node: Node<T> | null = this.#root(prefix.family);
    for (let i = 0; node !== null; i++) {
      if (node.owner !== undefined && node.owner !== exceptOwner) return { prefix: node.prefix!, owner: node.owner };
      if (i === prefix.bits) break;
      node = bitAt(prefix.bytes, 0, i) === 0 ? node.zero : node.one;
    }
    if (node === null) return undefined;
    const stack: Node<T>[] = [];
    if (node.zero) stack.push(node.zero);
    if (node.one) stack.push(node.one);
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (n.owner !== undefined && n.owner !== exceptOwner) return { prefix: n.prefix!, owner: n.owner };
      if (n.zero) stack.push(n.zero);
      if (n.one) stack.push(n.one);
    }
    return undefined;
  }

  /**
   * Add `prefix` for `owner`, refusing with {@link AllowedIpsOverlapError}
   * (and changing nothing) if it overlaps a prefix of another owner.
   */
  insertChecked(prefix: Prefix, owner: T): void {
    const c = this.findOverlap(prefix, owner);
    if (c !== undefined) throw new AllowedIpsOverlapError(prefix, c.prefix, c.owner, this.nameOf(c.owner));
    this.insert(prefix, owner);
  }

  /** Remove exactly `prefix` (only if held by `owner`, when given). Returns whether it was removed. */
  remove(prefix: Prefix, owner?: T): boolean {
    const path: Node<T>[] = [];
    let node: Node<T> | null = this.#root(prefix.family);
    for (let i = 0; i < prefix.bits && node !== null; i++) {
      path.push(node);
      node = bitAt(prefix.bytes, 0, i) === 0 ? node.zero : node.one;
    }
    if (node === null || node.owner === undefined || (owner !== undefined && node.owner !== owner)) return false;
    this.#unlist(node.owner, prefix);
    node.owner = undefined;
    node.prefix = null;
    this.#size--;
    // Prune empty leaves upwards.
    for (let i = path.length - 1; i >= 0 && node.owner === undefined && node.zero === null && node.one === null; i--) {
      const parent: Node<T> = path[i]!;
      if (parent.zero === node) parent.zero = null;
      else parent.one = null;
      node = parent;
    }
    return true;
  }

  /** Remove every prefix of `owner`. */
  removeOwner(owner: T): void {
    const list = this.#byOwner.get(owner);
    if (list === undefined) return;
    for (const p of [...list]) this.remove(p, owner);
    this.#byOwner.delete(owner);
  }

  /** Prefixes of `owner` in insertion order (the order `wg show` prints). */
  prefixesOf(owner: T): Prefix[] {
    return [...(this.#byOwner.get(owner) ?? [])];
  }

  /** Every (prefix, owner) pair, grouped by owner. */
  *entries(): IterableIterator<[Prefix, T]> {
    for (const [owner, list] of this.#byOwner) for (const p of list) yield [p, owner];
  }

  /** Remove everything. */
  clear(): void {
    this.#v4 = newNode();
    this.#v6 = newNode();
    this.#byOwner.clear();
    this.#size = 0;
  }

  /** Longest-prefix match of the address at `bytes[offset…]` (4 or 16 bytes by family). */
  lookup(family: 4 | 6, bytes: Uint8Array, offset = 0): T | undefined {
    const bits = family === 4 ? 32 : 128;
    let node: Node<T> | null = family === 4 ? this.#v4 : this.#v6;
    let best: T | undefined = node.owner;
    for (let i = 0; i < bits; i++) {
      node = bitAt(bytes, offset, i) === 0 ? node.zero : node.one;
      if (node === null) return best;
      if (node.owner !== undefined) best = node.owner;
    }
    return best;
  }

  /** Owner for the destination address of an IPv4/IPv6 packet (undefined if none or malformed). */
  lookupPacketDst(pkt: Uint8Array): T | undefined {
    const v = pkt.length > 0 ? pkt[0]! >> 4 : 0;
    if (v === 4 && pkt.length >= 20) return this.lookup(4, pkt, 16);
    if (v === 6 && pkt.length >= 40) return this.lookup(6, pkt, 24);
    return undefined;
  }

  /** Owner for the source address of an IPv4/IPv6 packet (undefined if none or malformed). */
  lookupPacketSrc(pkt: Uint8Array): T | undefined {
    const v = pkt.length > 0 ? pkt[0]! >> 4 : 0;
    if (v === 4 && pkt.length >= 20) return this.lookup(4, pkt, 12);
    if (v === 6 && pkt.length >= 40) return this.lookup(6, pkt, 8);
    return undefined;
  }

  #unlist(owner: T, prefix: Prefix): void {
    const list = this.#byOwner.get(owner);
    if (list === undefined) return;
    const i = list.findIndex((p) => prefixEquals(p, prefix));
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.#byOwner.delete(owner);
  }
}
