/**
 * The agent's liveness probe of its hub: an ICMP echo request from the
 * agent's mesh address to the hub's, sent into the tunnel. WireGuard itself
 * never answers a keepalive, so an idle tunnel says nothing about the hub;
 * an echo reply (answered by the hub's kernel) does.
 * @module
 */

import { parseIp } from '../routing/ip.js';

/** Internet checksum (RFC 1071) of `b[from, to)`. */
function checksum(b: Uint8Array, from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i += 2) sum += (b[i]! << 8) | (i + 1 < to ? b[i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * An IPv4 ICMP echo request `src` → `dst` with identifier `id` and sequence
 * number `seq` and an 8-byte payload.
 */
export function icmpEchoRequest(src: string, dst: string, id: number, seq: number): Uint8Array {
  const s = parseIp(src);
  const d = parseIp(dst);
  if (s.family !== 4 || d.family !== 4) throw new Error(`ICMP probe: IPv4 addresses expected, got ${src} → ${dst}`);
  const p = new Uint8Array(20 + 8 + 8);
  const v = new DataView(p.buffer);
  p[0] = 0x45; // IPv4, 20-byte header
  v.setUint16(2, p.length);
  v.setUint16(4, seq & 0xffff); // identification
  p[8] = 64; // TTL
  p[9] = 1; // ICMP
  p.set(s.bytes, 12);
  p.set(d.bytes, 16);
  v.setUint16(10, checksum(p, 0, 20));
  p[20] = 8; // echo request
  v.setUint16(24, id & 0xffff);
  v.setUint16(26, seq & 0xffff);
  p.set([0x74, 0x73, 0x67, 0x75, 0x61, 0x72, 0x64, 0x21], 28); // "tsguard!"
  v.setUint16(22, checksum(p, 20, p.length));
  return p;
}
