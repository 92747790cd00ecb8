/**
 * Endpoint resolution, the one rule for wg-quick files, syncconf, SIGHUP
 * reloads and agents: an IP literal is kept (canonical text, IPv6 `%scope`
 * kept); a host name is resolved as `wg` does — the first address
 * getaddrinfo returns (in the system's order, RFC 6724 / gai.conf) that is
 * IPv4 or IPv6.
 * @module
 */

import { lookup } from 'node:dns/promises';

import { formatIp, parseIp } from '../routing/ip.js';

/** A resolved endpoint. */
export interface ResolvedEndpoint {
  /** IP literal (IPv6 without brackets, possibly with `%scope`). */
  host: string;
  /** UDP port. */
  port: number;
  /** Address family of `host`. */
  family: 4 | 6;
}

/** The DNS lookup used by {@link resolveEndpoint}: every answer, in getaddrinfo's order. Injectable for tests. */
export type LookupAll = (host: string) => Promise<Array<{ address: string; family: number }>>;

// `verbatim`: getaddrinfo's order, whatever --dns-result-order says (wg does not reorder either).
const systemLookup: LookupAll = (host) => lookup(host, { all: true, verbatim: true });

function literal(text: string): { text: string; family: 4 | 6 } | undefined {
  try {
    const ip = parseIp(text);
    return { text: formatIp(ip.bytes), family: ip.family };
  } catch {
    return undefined;
  }
}

/**
 * Resolve an endpoint host (IP literal or host name); see the module
 * documentation for the rule.
 * @throws Error naming the host when it cannot be resolved.
 */
export async function resolveEndpoint(host: string, port: number, lookupAll: LookupAll = systemLookup): Promise<ResolvedEndpoint> {
  const pct = host.indexOf('%');
  const lit = literal(pct >= 0 ? host.slice(0, pct) : host);
  if (lit !== undefined) return { host: lit.text + (pct >= 0 ? host.slice(pct) : ''), port, family: lit.family };
  let addrs: Array<{ address: string; family: number }>;
  try {
    addrs = await lookupAll(host);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    const why = code === 'ENOTFOUND' ? 'name not found' : code === 'EAI_AGAIN' ? 'temporary DNS failure' : String(code);
    throw new Error(`could not resolve endpoint host "${host}": ${why} (check the name and the network, or use an IP address)`);
  }
  for (const a of addrs) {
    const ip = literal(a.address);
    if (ip !== undefined) return { host: ip.text, port, family: ip.family };
  }
  throw new Error(`could not resolve endpoint host "${host}": no IPv4 or IPv6 address (use an IP address)`);
}
