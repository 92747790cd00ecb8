/**
 * Enrollment tokens for agent registration (pure helpers; the tokens table
 * lives in the registry, see {@link Registry.createToken}).
 *
 * A token is `ID.SECRET`: `ID` is 12 lowercase hex characters (public: it
 * names the token in `hub token list|revoke` and in logs), `SECRET` is 32
 * random bytes in base64url (43 characters, 256 bits). Only SHA-256(SECRET)
 * is stored; a presented token is hashed and compared with the stored hash
 * in constant time. The secret is never logged and never stored.
 * @module
 */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A token split into its public id and its secret. */
export interface ParsedToken {
  /** Public identifier (12 lowercase hex characters). */
  id: string;
  /** The secret part (43 base64url characters). */
  secret: string;
}

const TOKEN_RE = /^([0-9a-f]{12})\.([A-Za-z0-9_-]{43})$/;

/** Generate a new token; returns its text form and parts. */
export function generateToken(): ParsedToken & { token: string } {
  const id = randomBytes(6).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { id, secret, token: `${id}.${secret}` };
}

/** Split a token into id and secret, or null when it is not in the `ID.SECRET` format. */
export function parseToken(text: unknown): ParsedToken | null {
  if (typeof text !== 'string') return null;
  const m = TOKEN_RE.exec(text.trim());
  return m === null ? null : { id: m[1]!, secret: m[2]! };
}

/** SHA-256 of a token secret (what the registry stores). */
export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** Constant-time comparison of two secret hashes (false when the lengths differ). */
export function hashesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/**
 * Parse a duration such as `90s`, `30m`, `24h`, `7d`, `1h30m` or a bare
 * number of seconds into seconds. `0` means "never expires".
 * @throws Error saying what is wrong
 */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (/^\d+$/.test(s)) return Number(s);
  const re = /(\d+)([smhd])/gy;
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  const unit: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * unit[m[2]!]!;
    pos = re.lastIndex;
  }
  if (s === '' || pos !== s.length) {
    throw new Error(`duration "${text}" is not valid: use a number of seconds or units like 90s, 30m, 24h, 7d, 1h30m (0 = never expires)`);
  }
  return total;
}

/** A new agent credential: 32 random bytes, base64url (the registry stores its {@link hashSecret}). */
export function generateCredential(): string {
  return randomBytes(32).toString('base64url');
}
