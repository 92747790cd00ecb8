/**
 * Validation of everything a registry call accepts (pure): names, kinds,
 * sources, keys, free text, labels, prefixes and routes. Runs before any
 * store access, so a bad request consumes nothing.
 * @module
 */

import { isLowOrderKey, isZeroKey, KeyFormatError, keyFromBase64, keyToBase64 } from '../../crypto/keys.js';
import { formatPrefix, parsePrefix, prefixesOverlap, type Prefix } from '../../routing/ip.js';
import { PEER_KINDS, PEER_SOURCES, RegistryError, type PeerKind, type PeerSource } from './types.js';

const NAME_RE = /^[A-Za-z0-9._-]{1,63}$/;
const MAX_TEXT = 256;

/** True if `name` is a valid peer name (1–63 characters from `[A-Za-z0-9._-]`). */
export function isValidPeerName(name: unknown): name is string {
  return typeof name === 'string' && NAME_RE.test(name);
}

/** @throws RegistryError `INVALID_NAME` */
export function checkName(name: unknown, what = 'name'): string {
  if (!isValidPeerName(name)) {
    const shown = typeof name === 'string' ? JSON.stringify(name.length > 70 ? name.slice(0, 70) + '…' : name) : String(name);
    throw new RegistryError('INVALID_NAME', `${what} ${shown} is not valid: use 1–63 characters from A–Z, a–z, 0–9, ".", "_" and "-"`);
  }
  return name;
}

/** @throws RegistryError `INVALID_VALUE` */
export function checkKind(kind: unknown): PeerKind {
  if (!PEER_KINDS.includes(kind as PeerKind)) {
    throw new RegistryError('INVALID_VALUE', `peer kind ${JSON.stringify(kind)} is not valid: use one of ${PEER_KINDS.join(', ')}`);
  }
  return kind as PeerKind;
}

/** @throws RegistryError `INVALID_VALUE` */
export function checkSource(source: unknown): PeerSource {
  if (!PEER_SOURCES.includes(source as PeerSource)) {
    throw new RegistryError('INVALID_VALUE', `peer source ${JSON.stringify(source)} is not valid: use one of ${PEER_SOURCES.join(', ')}`);
  }
  return source as PeerSource;
}

/**
 * Validate a peer public key and return its canonical base64 form. Rejects
 * anything that is not 44 base64 characters encoding 32 bytes, the all-zero
 * key and low-order points (a Diffie–Hellman with them yields zero).
 * @throws RegistryError `INVALID_KEY`
 */
export function validatePublicKey(text: unknown, what = 'public key'): string {
  if (typeof text !== 'string') throw new RegistryError('INVALID_KEY', `${what}: missing (expected a base64 key as printed by "wg pubkey")`);
  let key: Uint8Array;
  try {
    key = keyFromBase64(text, what);
  } catch (e) {
    if (e instanceof KeyFormatError) throw new RegistryError('INVALID_KEY', e.message);
    throw e;
  }
  if (isZeroKey(key)) {
    throw new RegistryError('INVALID_KEY', `${what}: the all-zero key is not a valid public key; use the output of "wg pubkey"`);
  }
  if (isLowOrderKey(key)) {
    throw new RegistryError('INVALID_KEY', `${what}: ${text.trim()} is a low-order point, not a usable public key; use the output of "wg pubkey"`);
  }
  return keyToBase64(key);
}

/** Free text (comments, label values): control characters become spaces, trimmed, at most 256 characters; empty → null. */
export function cleanText(text: unknown, what: string): string | null {
  if (text === undefined || text === null) return null;
  if (typeof text !== 'string') throw new RegistryError('INVALID_VALUE', `${what} must be text`);
  // eslint-disable-next-line no-control-regex
  const s = text.replace(/[\u0000-\u001f\u007f]/g, ' ').trim();
  if (s.length > MAX_TEXT) throw new RegistryError('INVALID_VALUE', `${what} is longer than ${MAX_TEXT} characters`);
  return s === '' ? null : s;
}

/** Labels: names like peer names, values free text; sorted by name. */
export function checkLabels(labels: unknown): Record<string, string> {
  if (labels === undefined || labels === null) return {};
  if (typeof labels !== 'object' || Array.isArray(labels)) throw new RegistryError('INVALID_VALUE', 'labels must be an object of name → text');
  const out: Record<string, string> = {};
  for (const k of Object.keys(labels).sort()) {
    checkName(k, 'label name');
    out[k] = cleanText((labels as Record<string, unknown>)[k], `label ${k}`) ?? '';
  }
  return out;
}

/** `enabled` flags must be booleans. @throws RegistryError `INVALID_VALUE` */
export function checkEnabled(v: unknown, what = 'enabled'): boolean | undefined {
  if (v !== undefined && typeof v !== 'boolean') throw new RegistryError('INVALID_VALUE', `${what} must be true or false`);
  return v;
}

/** A number of seconds, 0 or more (quarantine). @throws RegistryError `INVALID_VALUE` */
export function checkSeconds(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new RegistryError('INVALID_VALUE', `${what} of ${String(v)} seconds is not valid: give a number of seconds, 0 or more`);
  }
  return v;
}

/** Parse a CIDR and insist that its host bits are zero. @throws RegistryError `INVALID_IP` */
export function parseExactPrefix(text: unknown, what: string): Prefix {
  if (typeof text !== 'string') throw new RegistryError('INVALID_IP', `${what}: expected CIDR text such as 192.168.10.0/24`);
  const s = text.trim();
  try {
    return parsePrefix(s, 'reject');
  } catch (e) {
    throw new RegistryError('INVALID_IP', `${what}: ${(e as Error).message}`);
  }
}

/** Validated, canonical routes of one peer (no two of them overlap). */
export function checkRoutes(routes: unknown): Prefix[] {
  if (routes === undefined || routes === null) return [];
  if (!Array.isArray(routes)) throw new RegistryError('INVALID_IP', 'routes must be a list of CIDR prefixes');
  const out: Prefix[] = [];
  for (const r of routes) {
    const p = parseExactPrefix(r, 'route');
    for (const q of out) {
      if (prefixesOverlap(p, q)) {
        throw new RegistryError('OVERLAP', `routes ${formatPrefix(q)} and ${formatPrefix(p)} of the same peer overlap; list each block once`);
      }
    }
    out.push(p);
  }
  return out;
}
