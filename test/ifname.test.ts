/** The one interface-name check (src/os/ifname.ts): Linux's rule, and wg-quick's stricter character set. */
import { describe, expect, it } from 'vitest';
import { ifnameProblem, isValidIfname } from '../src/os/ifname.js';

describe('interface names', () => {
  it('accepts what Linux accepts', () => {
    for (const n of ['wg0', 'a', 'x'.repeat(15), 'tun.1', 'wg=+_-', 'é'.repeat(7)]) expect(ifnameProblem(n)).toBeNull();
  });

  it('refuses empty, too long, "." and "..", "/", ":" and whitespace, saying why', () => {
    expect(ifnameProblem('')).toBe('interface name is empty');
    expect(ifnameProblem('x'.repeat(16))).toMatch(/longer than 15 bytes/);
    expect(ifnameProblem('é'.repeat(8))).toMatch(/longer than 15 bytes/); // 16 bytes in UTF-8
    for (const n of ['.', '..', 'a/b', 'a:b', 'a b', 'a\tb', 'a\nb']) expect(ifnameProblem(n)).toMatch(/character Linux does not allow/);
  });

  it('wg-quick rule: only a-z A-Z 0-9 _ = + . -', () => {
    expect(isValidIfname('wg0', { wgQuick: true })).toBe(true);
    expect(isValidIfname('x'.repeat(15), { wgQuick: true })).toBe(true);
    expect(ifnameProblem('wg@0', { wgQuick: true })).toMatch(/wg-quick does not allow/);
    expect(ifnameProblem('é', { wgQuick: true })).toMatch(/wg-quick does not allow/);
    expect(isValidIfname('wg@0')).toBe(true); // Linux allows it
    expect(isValidIfname('..', { wgQuick: true })).toBe(false);
    expect(isValidIfname('x'.repeat(16), { wgQuick: true })).toBe(false);
  });
});
