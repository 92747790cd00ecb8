/**
 * Cryptokey routing: a longest-prefix-match table from IP prefixes to
 * owners (peers).
 *
 * One path-compressed binary trie per address family. Every node carries
 * its prefix as four 32-bit key words plus the matching masks, so a lookup
 * is a short walk of mask-and-compare steps on numbers read straight out
 * of the packet: no allocation, no BigInt, no strings. Interior "glue"
 * nodes (no owner) exist only where two branches split, so the trie has
 * fewer than 2·n nodes for n prefixes whatever their length.
 *
 * Each owner's prefixes are also kept on a doubly-linked list in insertion
 * order, which makes {@link AllowedIps.removeOwner} proportional to that
 * owner's prefixes and gives {@link AllowedIps.prefixesOf} a stable order.
 * @module
 */

import { formatPrefix, packetDestination, packetSource, parseIp, type Prefix } from './ip.js';

/**
 * Trie node. Fields are declared hot-first (V8 lays them out in this
 * order), so an IPv4 lookup step touches the first few words only.
 */
class Node<T> {
  /** Mask (int32) of word 0 with the first `bits` bits set. */
  m0: number;
  /** Key word 0 (int32), bits beyond `bits` zero. */
  k0: number;
  /** int32 mask of the branching bit (position `bits`) within word `nextWord`. */
  nextMask: number;
  c0: Node<T> | null = null;
  c1: Node<T> | null = null;
  /** Owner, or undefined for a glue node. */
  owner: T | undefined = undefined;
  /** Index (0–3) of the word holding the branching bit. */
  nextWord: number;
  /** Words 1–3 of mask and key (IPv6 only; zero for IPv4). */
  m1: number;
  k1: number;
  m2: number;
  k2: number;
  m3: number;
  k3: number;
  /** Prefix length. */
  bits: number;
  parent: Node<T> | null = null;
  /** Address family (the node's prefix is rebuilt from the key words on demand: no per-node copy). */
  readonly family: 4 | 6;
  /** Neighbours on the owner's list. */
  prevOfOwner: Node<T> | null = null;
  nextOfOwner: Node<T> | null = null;

  constructor(key: Int32Array, bits: number, family: 4 | 6) {
    this.family = family;
    this.m0 = maskWord(bits, 0);
    this.k0 = key[0]! & this.m0;
    this.nextMask = 1 << (31 - (bits & 31));
    this.nextWord = Math.min(3, bits >> 5);
    this.m1 = maskWord(bits, 1);
    this.k1 = key[1]! & this.m1;
    this.m2 = maskWord(bits, 2);
    this.k2 = key[2]! & this.m2;
    this.m3 = maskWord(bits, 3);
    this.k3 = key[3]! & this.m3;
    this.bits = bits;
  }
}

/** int32 mask of the bits of word `w` (0–3) that lie within the first `bits` bits. */
function maskWord(bits: number, w: number): number {
  const n = bits - w * 32;
  if (n <= 0) return 0;
  if (n >= 32) return -1;
  return -1 << (32 - n);
}

function nodeWord<T>(n: Node<T>, w: number): number {
  return w === 0 ? n.k0 : w === 1 ? n.k1 : w === 2 ? n.k2 : n.k3;
}

function nodeBit<T>(n: Node<T>, i: number): number {
  return (nodeWord(n, i >> 5) >>> (31 - (i & 31))) & 1;
}

function keyBit(key: Int32Array, i: number): number {
  return (key[i >> 5]! >>> (31 - (i & 31))) & 1;
}

/** Number of leading bits (at most `limit`) on which node `n`'s key and `key` agree. */
function commonBits<T>(n: Node<T>, key: Int32Array, limit: number): number {
  for (let w = 0; w * 32 < limit; w++) {
    const x = nodeWord(n, w) ^ key[w]!;
    if (x !== 0) return Math.min(limit, w * 32 + Math.clz32(x));
  }
  return limit;
}

function readWord(b: Uint8Array, o: number): number {
  return (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
}

/** Longest-prefix walk of an IPv4 trie for the address word a0. */
function walk4<T>(node: Node<T> | null, a0: number): T | undefined {
  let best: T | undefined;
  while (node !== null && (a0 & node.m0) === node.k0) {
    if (node.owner !== undefined) best = node.owner;
    node = (a0 & node.nextMask) === 0 ? node.c0 : node.c1;
  }
  return best;
}

/** Longest-prefix walk of an IPv6 trie for the address words a0..a3. */
function walk<T>(node: Node<T> | null, a0: number, a1: number, a2: number, a3: number): T | undefined {
  let best: T | undefined;
  while (node !== null) {
    if ((a0 & node.m0) !== node.k0 || (a1 & node.m1) !== node.k1 || (a2 & node.m2) !== node.k2 || (a3 & node.m3) !== node.k3) {
      break; // nothing below a node that does not match can match either
    }
    if (node.owner !== undefined) best = node.owner;
    const w = node.nextWord;
    const aw = w === 0 ? a0 : w === 1 ? a1 : w === 2 ? a2 : a3;
    node = (aw & node.nextMask) === 0 ? node.c0 : node.c1;
  }
  return best;
}

/** A fresh copy of the prefix of an owned node, from its key words. */
function prefixOf<T>(n: Node<T>): Prefix {
  const bytes = new Uint8Array(n.family === 4 ? 4 : 16);
  const words = [n.k0, n.k1, n.k2, n.k3];
  for (let i = 0; i < bytes.length; i++) bytes[i] = words[i >> 2]! >>> (24 - 8 * (i & 3));
  return { family: n.family, bytes, bits: n.bits };
}

interface OwnerList<T> {
  head: Node<T> | null;
  tail: Node<T> | null;
  count: number;
}

/**
 * Thrown by {@link AllowedIps.insertChecked} (and by callers that check
 * with {@link AllowedIps.findOverlap}) when a prefix equals, contains or
 * lies inside a prefix of another owner.
 */
export class AllowedIpsOverlapError<T = unknown> extends Error {
  override name = 'AllowedIpsOverlapError';
  /** The conflicting prefix already in the table. */
  readonly prefix: Prefix;
  /** The owner of {@link AllowedIpsOverlapError.prefix}. */
  readonly owner: T;
  /** The prefix that was refused. */
  readonly attempted: Prefix;

  /**
   * @param attempted the prefix being added
   * @param conflicting the prefix in the table it overlaps
   * @param owner the owner of `conflicting`
   * @param ownerName how to name that owner in the message
   */
  constructor(attempted: Prefix, conflicting: Prefix, owner: T, ownerName: string) {
    super(`${formatPrefix(attempted)} overlaps ${formatPrefix(conflicting)}, which belongs to ${ownerName}`);
    this.attempted = attempted;
    this.prefix = conflicting;
    this.owner = owner;
  }

  /** Same as {@link AllowedIpsOverlapError.prefix} (kept for older callers). */
  get conflicting(): Prefix {
    return this.prefix;
  }
}

/** An entry of an {@link AllowedIps} table. */
export interface AllowedIpsEntry<T> {
  /** The prefix (a copy; host bits cleared). */
  prefix: Prefix;
  /** Its owner. */
  owner: T;
}

/**
 * Longest-prefix-match table with WireGuard's "one prefix, one owner"
 * semantics. Owners are compared by identity.
 *
 * Lookups ({@link AllowedIps.lookup}, {@link AllowedIps.lookupPacketDst},
 * {@link AllowedIps.lookupPacketSrc}) allocate nothing. Mutations cost
 * O(address bits) plus one small allocation per new node.
 */
export class AllowedIps<T extends object> {
  #root4: Node<T> | null = null;
  #root6: Node<T> | null = null;
  #owners = new Map<T, OwnerList<T>>();
  #size = 0;
  #nodes = 0;
  /** Scratch key words for mutations (lookups use locals). */
  readonly #key = new Int32Array(4);

  /**
   * @param nameOf how owners are named in {@link AllowedIpsOverlapError}
   *   messages; defaults to the owner's `id` property
   */
  constructor(private readonly nameOf: (owner: T) => string = defaultName) {}

  /** Number of prefixes in the table. */
  get size(): number {
    return this.#size;
  }

  /**
   * Number of trie nodes, including interior glue nodes (diagnostics). At
   * most 2·{@link AllowedIps.size}: glue exists only where two branches split.
   */
  get nodeCount(): number {
    return this.#nodes;
  }

  /** Validate `p` and load its masked key into the scratch words. */
  #load(p: Prefix): void {
    const len = p.family === 4 ? 4 : p.family === 6 ? 16 : -1;
    if (len < 0 || p.bytes.length !== len || !Number.isInteger(p.bits) || p.bits < 0 || p.bits > len * 8) {
      throw new RangeError(`invalid prefix: family ${String(p.family)}, ${p.bytes.length} bytes, /${String(p.bits)}`);
    }
    const k = this.#key;
    k.fill(0);
    for (let w = 0; w * 4 < len; w++) k[w] = readWord(p.bytes, w * 4) & maskWord(p.bits, w);
  }

  #root(family: 4 | 6): Node<T> | null {
    return family === 4 ? this.#root4 : this.#root6;
  }

  /** Put `neu` where `old` hangs (under `parent`, or as the root). */
  #replace(parent: Node<T> | null, old: Node<T>, neu: Node<T> | null): void {
    if (neu !== null) neu.parent = parent;
    if (parent === null) {
      if (this.#root4 === old) this.#root4 = neu;
      else this.#root6 = neu;
    } else if (parent.c0 === old) {
      parent.c0 = neu;
    } else {
      parent.c1 = neu;
    }
  }

  /** Find the node holding exactly the loaded key with `bits`, or null. */
  #findExact(family: 4 | 6, bits: number): Node<T> | null {
    const key = this.#key;
    let node = this.#root(family);
    while (node !== null && node.bits < bits) node = keyBit(key, node.bits) === 0 ? node.c0 : node.c1;
    if (node === null || node.bits !== bits || commonBits(node, key, bits) !== bits) return null;
    return node;
  }

  /**
   * Add `prefix` for `owner` (host bits are ignored). If another owner
   * holds exactly this prefix it is moved to `owner` — the kernel's and
   * wireguard-go's semantics. Re-adding a prefix `owner` already holds
   * changes nothing (it keeps its place in {@link AllowedIps.prefixesOf}).
   * @throws RangeError if `prefix` is malformed
   */
  insert(prefix: Prefix, owner: T): void {
    this.#load(prefix);
    const key = this.#key;
    const bits = prefix.bits;
    let parent: Node<T> | null = null;
    let node = this.#root(prefix.family);
    for (;;) {
      if (node === null) {
        const leaf = new Node<T>(key, bits, prefix.family);
        this.#nodes++;
        if (parent === null) {
          if (prefix.family === 4) this.#root4 = leaf;
          else this.#root6 = leaf;
        } else {
          leaf.parent = parent;
          if (keyBit(key, parent.bits) === 0) parent.c0 = leaf;
          else parent.c1 = leaf;
        }
        this.#setOwner(leaf, owner);
        return;
      }
      const cpl = commonBits(node, key, Math.min(node.bits, bits));
      if (cpl === node.bits) {
        if (node.bits === bits) {
          this.#setOwner(node, owner);
          return;
        }
        parent = node;
        node = keyBit(key, node.bits) === 0 ? node.c0 : node.c1;
        continue;
      }
      if (cpl === bits) {
        // The new prefix strictly contains `node`: it goes in between.
        const n = new Node<T>(key, bits, prefix.family);
        this.#nodes++;
        this.#replace(parent, node, n);
        this.#attach(n, nodeBit(node, bits), node);
        this.#setOwner(n, owner);
        return;
      }
      // They diverge at bit `cpl`: a glue node splits the two.
      const glue = new Node<T>(key, cpl, prefix.family);
      const leaf = new Node<T>(key, bits, prefix.family);
      this.#nodes += 2;
      this.#replace(parent, node, glue);
      this.#attach(glue, nodeBit(node, cpl), node);
      this.#attach(glue, keyBit(key, cpl), leaf);
      this.#setOwner(leaf, owner);
      return;
    }
  }

  #attach(parent: Node<T>, dir: number, child: Node<T>): void {
    child.parent = parent;
    if (dir === 0) parent.c0 = child;
    else parent.c1 = child;
  }

  #setOwner(node: Node<T>, owner: T): void {
    const prev = node.owner;
    if (prev === owner) return;
    if (prev !== undefined) {
      this.#unlist(node, prev);
    } else {
      this.#size++;
    }
    node.owner = owner;
    let list = this.#owners.get(owner);
    if (list === undefined) this.#owners.set(owner, (list = { head: null, tail: null, count: 0 }));
    node.prevOfOwner = list.tail;
    node.nextOfOwner = null;
    if (list.tail !== null) list.tail.nextOfOwner = node;
    else list.head = node;
    list.tail = node;
    list.count++;
  }

  #unlist(node: Node<T>, owner: T): void {
    const list = this.#owners.get(owner)!;
    if (node.prevOfOwner !== null) node.prevOfOwner.nextOfOwner = node.nextOfOwner;
    else list.head = node.nextOfOwner;
    if (node.nextOfOwner !== null) node.nextOfOwner.prevOfOwner = node.prevOfOwner;
    else list.tail = node.prevOfOwner;
    node.prevOfOwner = node.nextOfOwner = null;
    if (--list.count === 0) this.#owners.delete(owner);
  }

  /** Remove glue that became useless after `node` lost its owner. */
  #prune(node: Node<T>): void {
    if (node.owner !== undefined || (node.c0 !== null && node.c1 !== null)) return;
    const child = node.c0 ?? node.c1;
    const parent = node.parent;
    this.#replace(parent, node, child);
    this.#nodes--;
    node.parent = node.c0 = node.c1 = null;
    // A glue parent left with a single child is now useless too.
    if (child === null && parent !== null) this.#prune(parent);
  }

  /**
   * Owner of exactly `prefix` (host bits ignored), or undefined. Unlike
   * {@link AllowedIps.lookup} this does not match shorter prefixes.
   */
  get(prefix: Prefix): T | undefined {
    this.#load(prefix);
    return this.#findExact(prefix.family, prefix.bits)?.owner;
  }

  /**
   * Some entry of an owner other than `exceptOwner` that equals, contains
   * or lies inside `prefix`, or undefined. Containing entries are reported
   * first (shortest first), then entries inside `prefix`.
   */
  findOverlap(prefix: Prefix, exceptOwner?: T): AllowedIpsEntry<T> | undefined {
    this.#load(prefix);
    const key = this.#key;
    const bits = prefix.bits;
    let node = this.#root(prefix.family);
    while (node !== null) {
      if (node.bits > bits) {
        // Everything under `node` lies inside `prefix` iff `node` does.
        return commonBits(node, key, bits) === bits ? firstIn(node, exceptOwner) : undefined;
      }
      if (commonBits(node, key, node.bits) !== node.bits) return undefined; // disjoint subtree
      if (node.owner !== undefined && node.owner !== exceptOwner) return { prefix: prefixOf(node), owner: node.owner };
      if (node.bits === bits) {
        return (node.c0 && firstIn(node.c0, exceptOwner)) ?? (node.c1 && firstIn(node.c1, exceptOwner)) ?? undefined;
      }
      node = keyBit(key, node.bits) === 0 ? node.c0 : node.c1;
    }
    return undefined;
  }

  /**
   * Add `prefix` for `owner`, refusing with {@link AllowedIpsOverlapError}
   * (and changing nothing) if it equals, contains or lies inside a prefix
   * of a different owner. The owner's own prefixes never conflict.
   * @throws AllowedIpsOverlapError naming the conflicting prefix and owner
   */
  insertChecked(prefix: Prefix, owner: T): void {
    const c = this.findOverlap(prefix, owner);
    if (c !== undefined) throw new AllowedIpsOverlapError<T>(prefix, c.prefix, c.owner, this.nameOf(c.owner));
    this.insert(prefix, owner);
  }

  /**
   * Remove exactly `prefix` (host bits ignored); when `owner` is given,
   * only if `owner` holds it. Returns whether something was removed.
   */
  remove(prefix: Prefix, owner?: T): boolean {
    this.#load(prefix);
    const node = this.#findExact(prefix.family, prefix.bits);
    if (node === null || node.owner === undefined || (owner !== undefined && node.owner !== owner)) return false;
    this.#unlist(node, node.owner);
    node.owner = undefined;
    this.#size--;
    this.#prune(node);
    return true;
  }

  /** Remove every prefix of `owner` (cost proportional to its prefixes). Returns how many. */
  removeOwner(owner: T): number {
    const list = this.#owners.get(owner);
    if (list === undefined) return 0;
    this.#owners.delete(owner);
    let n = 0;
    for (let node = list.head; node !== null; ) {
      const next = node.nextOfOwner;
      node.prevOfOwner = node.nextOfOwner = null;
      node.owner = undefined;
      this.#prune(node);
      node = next;
      n++;
    }
    this.#size -= n;
    return n;
  }

  /**
   * Copies of `owner`'s prefixes in the order they were added (a prefix
   * moved from another owner counts as added when it moved). This is the
   * order `wg show allowed-ips` prints.
   */
  prefixesOf(owner: T): Prefix[] {
    const out: Prefix[] = [];
    for (let n = this.#owners.get(owner)?.head ?? null; n !== null; n = n.nextOfOwner) out.push(prefixOf(n));
    return out;
  }

  /** Number of prefixes held by `owner`. */
  countOf(owner: T): number {
    return this.#owners.get(owner)?.count ?? 0;
  }

  /**
   * Every (prefix, owner) pair: grouped by owner, owners in the order they
   * got their first current prefix, each owner's prefixes as in
   * {@link AllowedIps.prefixesOf}. Do not modify the table while iterating.
   */
  *entries(): IterableIterator<[Prefix, T]> {
    for (const [owner, list] of this.#owners) {
      for (let n = list.head; n !== null; n = n.nextOfOwner) yield [prefixOf(n), owner];
    }
  }

  /** Remove everything. */
  clear(): void {
    this.#nodes = 0;
    this.#root4 = null;
    this.#root6 = null;
    this.#owners.clear();
    this.#size = 0;
  }

  /**
   * Longest-prefix match of the address at `bytes[offset…]` (4 bytes for
   * family 4, 16 for family 6). Undefined if nothing matches or the
   * buffer is too short. Allocates nothing.
   */
  lookup(family: 4 | 6, bytes: Uint8Array, offset = 0): T | undefined {
    if (family === 4) {
      if (offset < 0 || offset + 4 > bytes.length) return undefined;
      return walk4(this.#root4, readWord(bytes, offset));
    }
    if (offset < 0 || offset + 16 > bytes.length) return undefined;
    return walk(
      this.#root6,
      readWord(bytes, offset),
      readWord(bytes, offset + 4),
      readWord(bytes, offset + 8),
      readWord(bytes, offset + 12),
    );
  }

  /** Owner for the destination address of an IPv4/IPv6 packet; undefined if none or the header is short/invalid. Allocates nothing. */
  lookupPacketDst(pkt: Uint8Array): T | undefined {
    const o = packetDestination(pkt);
    return o < 0 ? undefined : this.lookup(familyOf(pkt), pkt, o);
  }

  /** Owner for the source address of an IPv4/IPv6 packet; undefined if none or the header is short/invalid. Allocates nothing. */
  lookupPacketSrc(pkt: Uint8Array): T | undefined {
    const o = packetSource(pkt);
    return o < 0 ? undefined : this.lookup(familyOf(pkt), pkt, o);
  }

  /**
   * Convenience (control plane): longest-prefix match of an address given
   * as text.
   * @throws Error if `text` is not an IP address
   */
  lookupIp(text: string): T | undefined {
    const ip = parseIp(text);
    return this.lookup(ip.family, ip.bytes);
  }
}

/** Family of a packet whose header {@link packetDestination}/{@link packetSource} accepted (its version nibble). */
function familyOf(pkt: Uint8Array): 4 | 6 {
  return (pkt[0]! >> 4) as 4 | 6;
}

function defaultName(o: object): string {
  const id = (o as { id?: unknown }).id;
  return id === undefined ? 'another peer' : String(id);
}

/** First owned node (owner ≠ `except`) in the subtree at `root`, depth first. */
function firstIn<T>(root: Node<T>, except: T | undefined): AllowedIpsEntry<T> | undefined {
  const stack: Node<T>[] = [root];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (n.owner !== undefined && n.owner !== except) return { prefix: prefixOf(n), owner: n.owner };
    if (n.c1 !== null) stack.push(n.c1);
    if (n.c0 !== null) stack.push(n.c0);
  }
  return undefined;
}
