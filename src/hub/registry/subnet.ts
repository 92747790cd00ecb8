/**
 * Address arithmetic of the mesh: the IPv4 subnet (addresses as 32-bit
 * numbers, the form the store indexes), the optional IPv6 prefix whose host
 * numbers mirror the IPv4 ones, and the checks of admin-chosen addresses.
 * Built on the {@link Prefix} of `src/routing/ip.ts`.
 * @module
 */

import { addressFromBigInt, addressToBigInt, formatIp, formatPrefix, parseIp, prefixAddress, prefixRange, type Prefix } from '../../routing/ip.js';
import { RegistryError } from './types.js';
import { parseExactPrefix } from './validate.js';

/** The IPv4 subnet of a registry. */
export interface Net4 {
  /** The subnet. */
  prefix: Prefix;
  /** Canonical CIDR text. */
  text: string;
  /** Network address (number). */
  network: number;
  /** Broadcast address (number). */
  broadcast: number;
  /** The hub's address: the first host (number). */
  hub: number;
  /** Host bits. */
  hostBits: number;
}

/** The IPv6 prefix of a registry. */
export interface Net6 {
  /** The prefix. */
  prefix: Prefix;
  /** Canonical CIDR text. */
  text: string;
}

/** Parse and check the IPv4 subnet (/8–/30, host bits zero). @throws RegistryError `INVALID_IP` */
export function parseSubnet4(text: string): Net4 {
  const prefix = parseExactPrefix(text, 'subnet');
  if (prefix.family !== 4) throw new RegistryError('INVALID_IP', `subnet ${text} is not IPv4; pass an IPv4 subnet such as 10.100.0.0/24 (and the IPv6 prefix separately)`);
  if (prefix.bits < 8 || prefix.bits > 30) {
    throw new RegistryError('INVALID_IP', `subnet ${text}: the prefix length must be from /8 to /30 (the hub needs the first host address and peers need at least one more)`);
  }
  const { first, last } = prefixRange(prefix);
  const network = Number(first);
  return { prefix, text: formatPrefix(prefix), network, broadcast: Number(last), hub: network + 1, hostBits: 32 - prefix.bits };
}

/** Parse and check the IPv6 prefix against the IPv4 subnet it mirrors. @throws RegistryError `INVALID_IP` */
export function parseSubnet6(text: string, v4: Net4): Net6 {
  const prefix = parseExactPrefix(text, 'IPv6 prefix');
  if (prefix.family !== 6) throw new RegistryError('INVALID_IP', `IPv6 prefix ${text} is not IPv6; pass a prefix such as fd00:100::/64`);
  if (128 - prefix.bits < v4.hostBits) {
    throw new RegistryError(
      'INVALID_IP',
      `IPv6 prefix ${text} is too small for subnet ${v4.text}: IPv6 addresses mirror the IPv4 host numbers, so it needs at least ${v4.hostBits} host bits (/${128 - v4.hostBits} or shorter)`,
    );
  }
  return { prefix, text: formatPrefix(prefix) };
}

/** IPv4 text of the address number `n`. */
export function v4Text(n: number): string {
  return formatIp(addressFromBigInt(BigInt(n), 4));
}

/** The IPv6 address mirroring IPv4 address number `n`, or null without IPv6. */
export function ipv6For(v4: Net4, v6: Net6 | null, n: number): string | null {
  return v6 ? formatIp(prefixAddress(v6.prefix, BigInt(n - v4.network)).bytes) : null;
}

/**
 * Parse and check an admin-chosen IPv4 address (`A.B.C.D` or `A.B.C.D/32`):
 * inside the subnet, not the network, broadcast or hub address.
 * @throws RegistryError `INVALID_IP`, `ADDRESS_TAKEN` (the hub's address)
 */
export function checkHostAddress(v4: Net4, text: unknown): number {
  if (typeof text !== 'string') throw new RegistryError('INVALID_IP', 'address: expected an IPv4 address such as 10.100.0.5');
  let s = text.trim();
  if (s.endsWith('/32')) s = s.slice(0, -3);
  let addr;
  try {
    addr = parseIp(s);
  } catch (e) {
    throw new RegistryError('INVALID_IP', `address: ${(e as Error).message}`);
  }
  if (addr.family !== 4) throw new RegistryError('INVALID_IP', `address ${s}: give the IPv4 address; the IPv6 address is derived from it`);
  const n = Number(addressToBigInt(addr.bytes));
  if (n < v4.network || n > v4.broadcast) {
    throw new RegistryError('INVALID_IP', `address ${s} is outside the hub subnet ${v4.text}; choose an address inside it or omit it to allocate one`);
  }
  if (n === v4.network || n === v4.broadcast) {
    throw new RegistryError('INVALID_IP', `address ${s} is the ${n === v4.network ? 'network' : 'broadcast'} address of ${v4.text}; choose a host address`);
  }
  if (n === v4.hub) throw new RegistryError('ADDRESS_TAKEN', `address ${s} is the hub's own address; choose another one or omit it to allocate one`, 'hub');
  return n;
}
