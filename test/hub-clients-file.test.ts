/**
 * The clients peers file parser (factory-clients.conf format).
 */
import { describe, expect, it } from 'vitest';
import { getCrypto } from '../src/crypto/index.js';
import { keyToBase64 } from '../src/crypto/keys.js';
import { clientNameFromKey, parseClientsFile } from '../src/hub/clients-file.js';

function newKey(): string {
  const c = getCrypto();
  return keyToBase64(c.publicKey(c.generatePrivateKey()));
}

describe('parseClientsFile', () => {
  it('parses keys, addresses, comments and skips blank and comment lines', () => {
    const [a, b, c] = [newKey(), newKey(), newKey()];
    const text = [
      '# engineers',
      '',
      `${a} 10.100.0.10 alice laptop`,
      `  ${b}\t10.100.0.11   # bob`,
      `${c} 10.100.0.12/32`,
      '   # indented comment',
    ].join('\r\n');
    const r = parseClientsFile(text, 'clients.conf');
    expect(r.errors).toEqual([]);
    expect(r.entries).toEqual([
      { line: 3, name: 'alice', publicKey: a, ip: '10.100.0.10', comment: 'alice laptop' },
      { line: 4, name: 'bob', publicKey: b, ip: '10.100.0.11', comment: 'bob' },
      { line: 5, name: clientNameFromKey(c), publicKey: c, ip: '10.100.0.12' },
    ]);
  });

  it('reports each bad line with its number and keeps the others', () => {
    const [a, b, c, d] = [newKey(), newKey(), newKey(), newKey()];
    const text = [
      `${a} 10.100.0.10 ok`, // 1
      `not-a-key 10.100.0.11`, // 2
      `${b} 10.100.0.300`, // 3
      `${c}`, // 4
      `${'A'.repeat(43)}= 10.100.0.13`, // 5: all-zero key
      `${a} 10.100.0.14 dup key`, // 6
      `${d} 10.100.0.10 dup ip`, // 7
      `${b} fd00::5`, // 8: IPv6
      `${c} 10.100.0.15 fine`, // 9
    ].join('\n');
    const r = parseClientsFile(text, '/etc/clients.conf');
    expect(r.entries.map((e) => [e.line, e.name])).toEqual([
      [1, 'ok'],
      [9, 'fine'],
    ]);
    expect(r.errors.map((e) => e.line)).toEqual([2, 3, 4, 5, 6, 7, 8]);
    for (const e of r.errors) expect(e.message.startsWith(`/etc/clients.conf:${e.line}: `)).toBe(true);
    expect(r.errors[4]!.message).toMatch(/already used on line 1/);
    expect(r.errors[5]!.message).toMatch(/already assigned on line 1/);
    expect(r.errors[2]!.message).toMatch(/<public_key> <assigned_ip>/);
  });

  it('names: unique valid first word of the comment, else derived from the key, always unique', () => {
    const keys = Array.from({ length: 5 }, newKey);
    const text = [
      `${keys[0]} 10.0.0.2 shared one`,
      `${keys[1]} 10.0.0.3 shared two`,
      `${keys[2]} 10.0.0.4 ünïcode name`,
      `${keys[3]} 10.0.0.5 carol`,
      `${keys[4]} 10.0.0.6 ${clientNameFromKey(keys[0]!)}`,
    ].join('\n');
    const r = parseClientsFile(text, 'f');
    const names = r.entries.map((e) => e.name);
    expect(names[3]).toBe('carol');
    expect(names[2]).toBe(clientNameFromKey(keys[2]!));
    expect(names[1]).toBe(clientNameFromKey(keys[1]!));
    expect(names[4]).toBe(clientNameFromKey(keys[0]!));
    expect(names[0]).toBe(clientNameFromKey(keys[0]!, 16)); // lengthened to stay unique
    expect(new Set(names).size).toBe(5);
    for (const n of names) expect(n).toMatch(/^[A-Za-z0-9._-]{1,63}$/);
    // Stable: the same file gives the same names.
    expect(parseClientsFile(text, 'f').entries.map((e) => e.name)).toEqual(names);
  });

  it('sanitises + and / in derived names', () => {
    expect(clientNameFromKey('ab+/cd+/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx=')).toBe('client-ab-_cd-_');
  });
});
