/**
 * IP addresses, prefixes and the few IP header fields the data path reads.
 *
 * Text parsing/formatting (control plane) may allocate; the header helpers
 * at the end ({@link ipVersion}, {@link packetDestination},
 * {@link packetSource}, {@link innerPacketLength}) read a packet buffer in
 * place and allocate nothing.
 * @module
 */

/** A parsed IP address. */
export interface IpAddress {
  /** Address family. */
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

/**
 * An IP prefix (CIDR block), the one prefix type of the code base (routing,
 * UAPI, configuration files, hub, agent). Host bits are zero unless the
 * prefix was parsed with `'keep'` (an interface address such as
 * `10.0.0.1/24`); {@link maskPrefix} clears them.
 */
export interface Prefix {
  /** Address family. */
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
  /** Prefix length (0–32 or 0–128). */
  bits: number;
}

/** What {@link parsePrefix} does with host bits: clear them (as the kernel does), keep them, or refuse them. */
export type HostBits = 'clear' | 'keep' | 'reject';

/** Length of an IPv4 header without options. */
export const IPV4_HEADER_LEN = 20;
/** Length of the fixed IPv6 header. */
export const IPV6_HEADER_LEN = 40;
/** Offset of the source address in an IPv4 header. */
export const IPV4_SRC_OFFSET = 12;
/** Offset of the destination address in an IPv4 header. */
export const IPV4_DST_OFFSET = 16;
/** Offset of the source address in an IPv6 header. */
export const IPV6_SRC_OFFSET = 8;
/** Offset of the destination address in an IPv6 header. */
export const IPV6_DST_OFFSET = 24;

// ─── text ────────────────────────────────────────────────────────────────────

/** Strict dotted quad: four decimal numbers 0–255, no leading zeros, no spaces. */
function parseV4(s: string): Uint8Array | null {
  const out = new Uint8Array(4);
  let part = 0;
  let i = 0;
  const n = s.length;
  while (true) {
    const start = i;
    let v = 0;
    while (i < n && i - start < 4) {
      const c = s.charCodeAt(i);
      if (c < 0x30 || c > 0x39) break;
      v = v * 10 + (c - 0x30);
      i++;
    }
    const len = i - start;
    if (len === 0 || len > 3 || v > 255 || (len > 1 && s.charCodeAt(start) === 0x30)) return null;
    out[part++] = v;
    if (part === 4) return i === n ? out : null;
    if (i >= n || s.charCodeAt(i) !== 0x2e /* . */) return null;
    i++;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/** RFC 4291 §2.2 text: eight groups, at most one "::", optional trailing dotted quad. */
function parseV6(s: string): Uint8Array | null {
  const n = s.length;
  if (n < 2 || n > 45) return null;
  const out = new Uint8Array(16);
  let groups = 0; // 16-bit groups written so far
  let gap = -1; // group index where "::" stands
  let i = 0;
  if (s.charCodeAt(0) === 0x3a /* : */) {
    if (s.charCodeAt(1) !== 0x3a) return null;
    gap = 0;
    i = 2;
    if (i === n) return out;
  }
  while (true) {
    const start = i;
    let v = 0;
    while (i < n && i - start < 5) {
      const h = hexValue(s.charCodeAt(i));
      if (h < 0) break;
      v = (v << 4) | h;
      i++;
    }
    if (i < n && s.charCodeAt(i) === 0x2e /* . */) {
      // Embedded IPv4: must be the last 32 bits.
      if (groups > 6) return null;
      const v4 = parseV4(s.slice(start));
      if (v4 === null) return null;
      out.set(v4, groups * 2);
      groups += 2;
      break;
    }
    const len = i - start;
    if (len === 0 || len > 4 || groups >= 8) return null;
    out[groups * 2] = v >> 8;
    out[groups * 2 + 1] = v & 0xff;
    groups++;
    if (i === n) break;
    if (s.charCodeAt(i) !== 0x3a) return null;
    i++;
    if (i < n && s.charCodeAt(i) === 0x3a) {
      if (gap >= 0) return null;
      gap = groups;
      i++;
      if (i === n) break;
    } else if (i === n) {
      return null; // trailing single colon
    }
  }
  if (gap < 0) return groups === 8 ? out : null;
  if (groups > 7) return null; // "::" must stand for at least one group
  // Move the groups after the gap to the end.
  const tailBytes = (groups - gap) * 2;
  const from = gap * 2;
  out.copyWithin(16 - tailBytes, from, from + tailBytes);
  out.fill(0, from, 16 - tailBytes);
  return out;
}

function quote(text: string): string {
  return JSON.stringify(text.length > 64 ? text.slice(0, 64) + '…' : text);
}

/**
 * Parse an IPv4 (strict dotted quad: no leading zeros, no shorthand) or
 * IPv6 address (RFC 4291 text: "::", any hex case, embedded IPv4 such as
 * `::ffff:1.2.3.4`). Zone ids (`fe80::1%eth0`) are rejected.
 * @throws Error naming the input if it is not a valid address.
 */
export function parseIp(text: string): IpAddress {
  const v4 = parseV4(text);
  if (v4 !== null) return { family: 4, bytes: v4 };
  if (text.includes('%')) throw new Error(`${quote(text)} is not a valid IP address (zone ids are not supported)`);
  const v6 = parseV6(text);
  if (v6 !== null) return { family: 6, bytes: v6 };
  throw new Error(`${quote(text)} is not a valid IP address`);
}

/**
 * Format a 4- or 16-byte address as text. IPv6 uses the RFC 5952
 * canonical form that `inet_ntop` prints: lower-case hex without leading
 * zeros, the longest run (first on ties) of two or more zero groups
 * replaced by "::", and IPv4-mapped addresses as `::ffff:a.b.c.d`.
 * @param bytes a 4-byte (IPv4) or 16-byte (IPv6) address
 * @throws RangeError for any other length
 */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) throw new RangeError(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((bytes[i]! << 8) | bytes[i + 1]!);
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  let bestStart = -1;
  let bestLen = 1; // a single zero group is never shortened (RFC 5952 §4.2.2)
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

/** A copy of `bytes` with every bit from position `bits` on cleared. */
function maskBytes(bytes: Uint8Array, bits: number): Uint8Array {
  const out = bytes.slice();
  for (let i = 0; i < out.length; i++) {
    const keep = bits - i * 8;
    if (keep >= 8) continue;
    out[i] = keep <= 0 ? 0 : out[i]! & (0xff << (8 - keep));
  }
  return out;
}

/**
 * Parse `addr/len`, or a bare address meaning /32 or /128. Host bits are
 * cleared by default (`10.1.2.3/8` → `10.0.0.0/8`, as the kernel does),
 * kept with `'keep'`, refused with `'reject'`.
 * @throws Error naming the input if the address or length is invalid (or, with `'reject'`, has host bits set).
 */
export function parsePrefix(text: string, hostBits: HostBits = 'clear'): Prefix {
  const slash = text.indexOf('/');
  let addr: IpAddress;
  try {
    addr = parseIp(slash < 0 ? text : text.slice(0, slash));
  } catch (e) {
    if (slash < 0) throw e;
    throw new Error(`${quote(text)} is not a valid IP prefix: ${(e as Error).message}`);
  }
  const max = addr.family === 4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const l = text.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(l) || Number(l) > max) {
      throw new Error(`${quote(text)} is not a valid IP prefix: the length must be a number from 0 to ${max}`);
    }
    bits = Number(l);
  }
  const p: Prefix = { family: addr.family, bytes: addr.bytes, bits };
  if (hostBits === 'keep') return p;
  const masked = maskPrefix(p);
  if (hostBits === 'reject' && compareAddresses(masked.bytes, addr.bytes) !== 0) {
    throw new Error(`${quote(text)} has host bits set (did you mean ${formatPrefix(masked)}?)`);
  }
  return masked;
}

/** The same prefix with its host bits cleared (`10.1.2.3/8` → `10.0.0.0/8`). */
export function maskPrefix(p: Prefix): Prefix {
  return { family: p.family, bytes: maskBytes(p.bytes, p.bits), bits: p.bits };
}

/** `addr/len` text of a prefix (address as {@link formatIp} prints it). */
export function formatPrefix(p: Prefix): string {
  return `${formatIp(p.bytes)}/${p.bits}`;
}

/** True if the first `bits` bits of `a` and `b` are equal. */
function leadingBitsEqual(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  const full = bits >> 3;
  for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false;
  const rem = bits & 7;
  if (rem === 0) return true;
  return ((a[full]! ^ b[full]!) & (0xff << (8 - rem)) & 0xff) === 0;
}

/**
 * True if `outer` contains `inner` (same family, `outer` no longer than
 * `inner`, and equal on `outer`'s bits). Equal prefixes contain each other.
 */
export function prefixContains(outer: Prefix, inner: Prefix): boolean {
  return outer.family === inner.family && outer.bits <= inner.bits && leadingBitsEqual(outer.bytes, inner.bytes, outer.bits);
}

/** True if the two prefixes share any address (one contains the other). */
export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  return prefixContains(a, b) || prefixContains(b, a);
}

/** True if `addr` lies in `p` (same family, equal on `p`'s bits). */
export function prefixContainsAddress(p: Prefix, addr: IpAddress): boolean {
  return p.family === addr.family && leadingBitsEqual(p.bytes, addr.bytes, p.bits);
}

/** Order of two addresses of the same length, as numbers: negative, 0 or positive. */
export function compareAddresses(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return a.length - b.length;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

/** Order of prefixes: IPv4 before IPv6, then by address, then shorter first. */
export function comparePrefixes(a: Prefix, b: Prefix): number {
  return a.family - b.family || compareAddresses(a.bytes, b.bytes) || a.bits - b.bits;
}

// ─── address arithmetic (control plane: address allocation) ────────────────

/** An address as an unsigned number. */
export function addressToBigInt(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const x of bytes) v = (v << 8n) | BigInt(x);
  return v;
}

/**
 * The address of family `family` whose number is `value`.
 * @throws RangeError if `value` is negative or does not fit the family
 */
export function addressFromBigInt(value: bigint, family: 4 | 6): Uint8Array {
  const out = new Uint8Array(family === 4 ? 4 : 16);
  if (value < 0n || value >> BigInt(out.length * 8) !== 0n) throw new RangeError(`${value} is not an IPv${family} address number`);
  for (let i = out.length - 1; i >= 0; i--, value >>= 8n) out[i] = Number(value & 0xffn);
  return out;
}

/** First (network) and last (broadcast) address of a prefix, as numbers (host bits of `p` ignored). */
export function prefixRange(p: Prefix): { first: bigint; last: bigint } {
  const first = addressToBigInt(maskBytes(p.bytes, p.bits));
  return { first, last: first + (1n << BigInt(p.bytes.length * 8 - p.bits)) - 1n };
}

/**
 * Address number `n` of prefix `p` (0 is the network address).
 * @throws RangeError if `n` lies outside the prefix
 */
export function prefixAddress(p: Prefix, n: bigint): IpAddress {
  const { first, last } = prefixRange(p);
  if (n < 0n || first + n > last) throw new RangeError(`address #${n} is outside ${formatPrefix(maskPrefix(p))}`);
  return { family: p.family, bytes: addressFromBigInt(first + n, p.family) };
}

// ─── packet headers (data path: no allocation) ──────────────────────────────

/**
 * IP version of a packet whose fixed header fits in the buffer: 4 (version
 * nibble 4 and at least 20 bytes), 6 (nibble 6 and at least 40 bytes), or
 * 0 for anything else. Reads only the buffer; allocates nothing.
 */
export function ipVersion(pkt: Uint8Array): 0 | 4 | 6 {
  if (pkt.length === 0) return 0;
  const v = pkt[0]! >> 4;
  if (v === 4) return pkt.length >= IPV4_HEADER_LEN ? 4 : 0;
  if (v === 6) return pkt.length >= IPV6_HEADER_LEN ? 6 : 0;
  return 0;
}

/**
 * Byte offset of the destination address in `pkt` (16 for IPv4, 24 for
 * IPv6; its family is {@link ipVersion}), or -1 if the packet has no
 * complete IPv4/IPv6 header.
 */
export function packetDestination(pkt: Uint8Array): number {
  const v = ipVersion(pkt);
  return v === 4 ? IPV4_DST_OFFSET : v === 6 ? IPV6_DST_OFFSET : -1;
}

/**
 * Byte offset of the source address in `pkt` (12 for IPv4, 8 for IPv6;
 * its family is {@link ipVersion}), or -1 if the packet has no complete
 * IPv4/IPv6 header.
 */
export function packetSource(pkt: Uint8Array): number {
  const v = ipVersion(pkt);
  return v === 4 ? IPV4_SRC_OFFSET : v === 6 ? IPV6_SRC_OFFSET : -1;
}

/**
 * Validate the IP header of a decrypted packet and return its real length,
 * so WireGuard's zero padding can be stripped; -1 if it is not a plausible
 * IPv4 header (IHL ≥ 5, 20 ≤ total length, IHL·4 ≤ total length ≤ buffer)
 * or IPv6 header (40 + payload length ≤ buffer). Allocates nothing.
 */
export function innerPacketLength(pkt: Uint8Array): number {
  const v = ipVersion(pkt);
  if (v === 4) {
    const ihl = pkt[0]! & 0x0f;
    const total = (pkt[2]! << 8) | pkt[3]!;
    if (ihl < 5 || total < IPV4_HEADER_LEN || total < ihl * 4 || total > pkt.length) return -1;
    return total;
  }
  if (v === 6) {
    const total = IPV6_HEADER_LEN + ((pkt[4]! << 8) | pkt[5]!);
    return total > pkt.length ? -1 : total;
  }
  return -1;
}
