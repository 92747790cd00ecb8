/**
 * Parser of the hub's clients peers file (the `factory-clients.conf` format
 * of the system tsguard replaces):
 *
 * ```
 * # engineers' laptops
 * <public_key> <assigned_ip> [comment...]
 * xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg= 10.100.0.10 alice laptop
 * HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw= 10.100.0.11   # bob
 * ```
 *
 * - `#` starts a comment, on a line of its own or after the fields. Blank
 *   lines are ignored.
 * - The address is an IPv4 address (an optional `/32` suffix is accepted);
 *   the IPv6 address, if any, is derived by the registry.
 * - The comment is the words after the address; when there are none, the
 *   text of a trailing `# comment` is used instead.
 * - A bad line (bad key, bad address, missing field, a key or address
 *   already used by an earlier line) is reported with its line number and
 *   skipped; the other lines are unaffected.
 *
 * **Names.** The registry needs a name per peer. A client is named after the
 * first word of its comment when that word is a valid peer name
 * (`[A-Za-z0-9._-]{1,63}`) used as first comment word by no other line of
 * the file; otherwise `client-<first 8 characters of the key>` with `+` and
 * `/` replaced by `-` and `_` (lengthened, 8 characters at a time, in the
 * unlikely case that this collides with another name in the file). The name
 * stays the same as long as the key and the comment's first word do.
 * @module
 */

import { parseIp, formatIp } from '../routing/ip.js';
import { RegistryError } from './registry/types.js';
import { isValidPeerName, validatePublicKey } from './registry/validate.js';

/** One valid line of a clients file. */
export interface ClientsFileEntry {
  /** 1-based line number. */
  line: number;
  /** Derived peer name (see the module documentation). */
  name: string;
  /** Public key, canonical base64. */
  publicKey: string;
  /** IPv4 address, canonical text. */
  ip: string;
  /** Comment, when the line has one. */
  comment?: string;
}

/** One rejected line of a clients file. */
export interface ClientsFileError {
  /** 1-based line number. */
  line: number;
  /** What is wrong and how to fix it (names the file and line). */
  message: string;
}

/** Result of {@link parseClientsFile}. */
export interface ClientsFileParse {
  /** Valid lines in file order. */
  entries: ClientsFileEntry[];
  /** Rejected lines in file order. */
  errors: ClientsFileError[];
}

/** The fallback name of a client: `client-` and the start of its key, made name-safe. */
export function clientNameFromKey(publicKey: string, chars = 8): string {
  return `client-${publicKey.slice(0, chars).replace(/\+/g, '-').replace(/\//g, '_').replace(/=/g, '')}`;
}

/**
 * Parse the text of a clients file. `file` names it in error messages.
 * Never throws for bad content: every bad line is in `errors`.
 */
export function parseClientsFile(text: string, file: string): ClientsFileParse {
  type Raw = { line: number; publicKey: string; ip: string; comment?: string };
  const raws: Raw[] = [];
  const errors: ClientsFileError[] = [];
  const keyLine = new Map<string, number>();
  const ipLine = new Map<string, number>();
  const lines = text.split(/\r?\n/);
  const fail = (line: number, msg: string) => errors.push({ line, message: `${file}:${line}: ${msg}` });

  for (let i = 0; i < lines.length; i++) {
    const no = i + 1;
    let body = lines[i]!;
    if (no === 1 && body.charCodeAt(0) === 0xfeff) body = body.slice(1); // BOM
    let trailing = '';
    const hash = body.indexOf('#');
    if (hash >= 0) {
      trailing = body.slice(hash + 1).trim();
      body = body.slice(0, hash);
    }
    const fields = body.trim().split(/\s+/).filter((f) => f !== '');
    if (fields.length === 0) continue;
    if (fields.length < 2) {
      fail(no, `expected "<public_key> <assigned_ip> [comment]", found only one field; add the client's IPv4 address after its key`);
      continue;
    }
    let publicKey: string;
    try {
      publicKey = validatePublicKey(fields[0], 'public key');
    } catch (e) {
      fail(no, e instanceof RegistryError ? e.message : String(e));
      continue;
    }
    let ipText = fields[1]!;
    if (ipText.endsWith('/32')) ipText = ipText.slice(0, -3);
    let ip: string;
    try {
      const a = parseIp(ipText);
      if (a.family !== 4) {
        fail(no, `address ${ipText}: give the client's IPv4 address; the IPv6 address is derived from it`);
        continue;
      }
      ip = formatIp(a.bytes);
    } catch (e) {
      fail(no, `address: ${(e as Error).message}; expected "<public_key> <assigned_ip> [comment]"`);
      continue;
    }
    const k = keyLine.get(publicKey);
    if (k !== undefined) {
      fail(no, `public key ${publicKey} is already used on line ${k}; each client needs its own key (line skipped)`);
      continue;
    }
    const l = ipLine.get(ip);
    if (l !== undefined) {
      fail(no, `address ${ip} is already assigned on line ${l}; give each client its own address (line skipped)`);
      continue;
    }
    keyLine.set(publicKey, no);
    ipLine.set(ip, no);
    const words = fields.slice(2).join(' ');
    const comment = words !== '' ? words : trailing !== '' ? trailing : undefined;
    raws.push({ line: no, publicKey, ip, ...(comment !== undefined ? { comment } : {}) });
  }

  // Names: the comment's first word when valid and unique in the file, else derived from the key.
  const firstWord = (r: Raw) => r.comment?.split(/\s+/)[0] ?? '';
  const wordCount = new Map<string, number>();
  for (const r of raws) {
    const w = firstWord(r);
    if (isValidPeerName(w)) wordCount.set(w, (wordCount.get(w) ?? 0) + 1);
  }
  const taken = new Set<string>();
  const names: (string | null)[] = raws.map((r) => {
    const w = firstWord(r);
    if (isValidPeerName(w) && wordCount.get(w) === 1) {
      taken.add(w);
      return w;
    }
    return null;
  });
  const entries: ClientsFileEntry[] = raws.map((r, i) => {
    let name = names[i]!;
    if (name === null) {
      for (let chars = 8; ; chars += 8) {
        name = clientNameFromKey(r.publicKey, chars);
        if (!taken.has(name) || chars >= 43) break;
      }
      taken.add(name);
    }
    return { line: r.line, name, publicKey: r.publicKey, ip: r.ip, ...(r.comment !== undefined ? { comment: r.comment } : {}) };
  });
  return { entries, errors };
}
