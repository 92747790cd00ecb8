/**
 * IP addresses, prefixes and the few IP header fields the data path reads.
 * @module
 */

/** A parsed IP address. */
export interface IpAddress {
  /** Address family. */
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

/** An IP prefix with host bits cleared. */
export interface Prefix {
  /** Address family. */
  family: 4 | 6;
  /** 4 or 16 bytes, network order, host bits zero. */
  bytes: Uint8Array;
  /** Prefix length (0–32 or 0–128). */
  bits: number;
}

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

function parseV4(s: string): Uint8Array | null {
  const m = V4.exec(s);
  if (m === null) return null;
  return Uint8Array.of(Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]));
}

function parseV6(s: string): Uint8Array | null {
  if (s.length < 2 || s.length > 45 || s.includes('%')) return null;
  let tail4: Uint8Array | null = null;
  let text = s;
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) >= 0) {
    tail4 = parseV4(s.slice(lastColon + 1));
    if (tail4 === null) return null;
    text = s.slice(0, lastColon + 1) + '0:0';
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const parseGroups = (h: string): number[] | null => {
    if (h === '') return [];
    const out: number[] = [];
    for (const g of h.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = parseGroups(halves[0]!);
  const tail = halves.length === 2 ? parseGroups(halves[1]!) : [];
  if (head === null || tail === null) return null;
  let groups: number[];
  if (halves.length === 2) {
    const fill = 8 - head.length - tail.length;
    if (fill < 1) return null;
    groups = [...head, ...new Array<number>(fill).fill(0), ...tail];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return null;
  const b = new Uint8Array(16);
  groups.forEach((g, i) => {
    b[2 * i] = g >> 8;
    b[2 * i + 1] = g & 0xff;
  });
  if (tail4 !== null) b.set(tail4, 12);
  return b;
}

/** Parse an IPv4 or IPv6 address (no zone ids). Throws an Error naming the input. */
export function parseIp(text: string): IpAddress {
  const v4 = parseV4(text);
  if (v4 !== null) return { family: 4, bytes: v4 };
  const v6 = parseV6(text);
  if (v6 !== null) return { family: 6, bytes: v6 };
  throw new Error(`"${text.length > 64 ? text.slice(0, 64) + '…' : text}" is not a valid IP address`);
}

/** Format 4 or 16 bytes as text (IPv6 in RFC 5952 canonical form). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((bytes[i]! << 8) | bytes[i + 1]!);
  // Longest run of two or more zero groups (first one on ties) becomes "::".
  let bestStart = -1;
  let bestLen = 1;
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

/** Clear the host bits of `bytes` beyond `bits` (returns a copy). */
export function maskBytes(bytes: Uint8Array, bits: number): Uint8Array {
  const out = bytes.slice();
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    out[i]! &= keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
  }
  return out;
}

/**
 * Parse `addr/len` (or a bare address: /32 or /128). Host bits are cleared,
 * as the kernel does. Throws an Error naming the input.
 */
export function parsePrefix(text: string): Prefix {
  const slash = text.indexOf('/');
  const addr = parseIp(slash < 0 ? text : text.slice(0, slash));
  const max = addr.family === 4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const l = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(l) || Number(l) > max) {
      throw new Error(`"${text}": prefix length must be a number from 0 to ${max}`);
    }
    bits = Number(l);
  }
  return { family: addr.family, bytes: maskBytes(addr.bytes, bits), bits };
}

/** `addr/len` text of a prefix. */
export function formatPrefix(p: Prefix): string {
  return `${formatIp(p.bytes)}/${p.bits}`;
}

/** True if `outer` contains `inner` (equal prefixes contain each other). */
export function prefixContains(outer: Prefix, inner: Prefix): boolean {
  if (outer.family !== inner.family || outer.bits > inner.bits) return false;
  const m = maskBytes(inner.bytes, outer.bits);
  for (let i = 0; i < m.length; i++) if (m[i] !== outer.bytes[i]) return false;
  return true;
}

/** True if the two prefixes share any address. */
export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  return prefixContains(a, b) || prefixContains(b, a);
}

/** True if two prefixes are identical. */
export function prefixEquals(a: Prefix, b: Prefix): boolean {
  return a.family === b.family && a.bits === b.bits && prefixContains(a, b);
}

/**
 * Validate the IP header of a decrypted packet and return its real length
 * (strips WireGuard's zero padding), or -1 if it is not a valid IPv4/IPv6
 * header that fits in the buffer.
 */
export function innerPacketLength(pkt: Uint8Array): number {
  if (pkt.length < 1) return -1;
  const v = pkt[0]! >> 4;
  if (v === 4) {
    if (pkt.length < 20 || (pkt[0]! & 0x0f) < 5) return -1;
    const total = (pkt[2]! << 8) | pkt[3]!;
    if (total < 20 || total > pkt.length || total < (pkt[0]! & 0x0f) * 4) return -1;
    return total;
  }
  if (v === 6) {
    if (pkt.length < 40) return -1;
    const total = 40 + ((pkt[4]! << 8) | pkt[5]!);
    if (total > pkt.length) return -1;
    return total;
  }
  return -1;
}
