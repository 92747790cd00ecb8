import { describe, expect, it } from 'vitest';
import { formatIp, formatPrefix, innerPacketLength, parseIp, parsePrefix, prefixesOverlap } from '../src/routing/ip.js';
import { ipv4Packet, ipv6Packet } from './helpers/sim.js';

describe('IP parsing', () => {
  it('parses and canonicalises (RFC 5952)', () => {
    const cases: [string, string][] = [
      ['1.2.3.4', '1.2.3.4'],
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['::', '::'],
      ['::1', '::1'],
      ['fe80::', 'fe80::'],
      ['2001:db8::0:1', '2001:db8::1'],
      ['2001:DB8:1:2:3:4:5:6', '2001:db8:1:2:3:4:5:6'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['::ffff:192.0.2.1', '::ffff:c000:201'],
    ];
    for (const [input, out] of cases) expect(formatIp(parseIp(input).bytes)).toBe(out);
  });

  it('rejects garbage with the input in the message', () => {
    for (const bad of ['', '1.2.3', '1.2.3.256', '01.2.3.4', '1:2:3:4:5:6:7:8:9', ':::', '1::2::3', 'fe80::1%eth0', 'example.com', '12345::']) {
      expect(() => parseIp(bad)).toThrow(/not a valid IP address/);
    }
  });

  it('prefixes mask host bits and check their length', () => {
    expect(formatPrefix(parsePrefix('10.1.2.3/8'))).toBe('10.0.0.0/8');
    expect(formatPrefix(parsePrefix('fd00::1'))).toBe('fd00::1/128');
    expect(formatPrefix(parsePrefix('0.0.0.0/0'))).toBe('0.0.0.0/0');
    expect(() => parsePrefix('10.0.0.0/33')).toThrow(/0 to 32/);
    expect(() => parsePrefix('::/129')).toThrow(/0 to 128/);
    expect(prefixesOverlap(parsePrefix('10.0.0.0/8'), parsePrefix('10.2.0.0/16'))).toBe(true);
    expect(prefixesOverlap(parsePrefix('10.0.0.0/16'), parsePrefix('10.1.0.0/16'))).toBe(false);
  });

  it('finds the real length of padded inner packets and rejects bad headers', () => {
    const p4 = ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(5));
    const padded = new Uint8Array(48);
    padded.set(p4);
    expect(innerPacketLength(padded)).toBe(p4.length);
    const p6 = ipv6Packet(parseIp('fd00::1').bytes, parseIp('fd00::2').bytes, new Uint8Array(3));
    const padded6 = new Uint8Array(64);
    padded6.set(p6);
    expect(innerPacketLength(padded6)).toBe(p6.length);
    expect(innerPacketLength(p4.subarray(0, p4.length - 1))).toBe(-1);
    expect(innerPacketLength(new Uint8Array([0x45, 0, 0, 10]))).toBe(-1);
    expect(innerPacketLength(new Uint8Array(40).fill(0x50))).toBe(-1);
  });
});
