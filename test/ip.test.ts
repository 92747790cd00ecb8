/**
 * IP text parsing/formatting (RFC 4291 / RFC 5952), prefixes, and the
 * packet-header helpers of the data path.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addressFromBigInt,
  addressToBigInt,
  compareAddresses,
  comparePrefixes,
  formatIp,
  formatPrefix,
  innerPacketLength,
  ipVersion,
  packetDestination,
  packetSource,
  parseIp,
  maskPrefix,
  parsePrefix,
  prefixAddress,
  prefixContains,
  prefixContainsAddress,
  prefixesOverlap,
  prefixRange,
} from '../src/routing/ip.js';

const canon = (s: string) => formatIp(parseIp(s).bytes);

describe('parseIp / formatIp', () => {
  it('parses IPv4 strictly', () => {
    expect(parseIp('1.2.3.4')).toEqual({ family: 4, bytes: Uint8Array.of(1, 2, 3, 4) });
    expect(parseIp('255.255.255.255').bytes).toEqual(Uint8Array.of(255, 255, 255, 255));
    expect(parseIp('0.0.0.0').bytes).toEqual(new Uint8Array(4));
    expect(canon('10.0.0.1')).toBe('10.0.0.1');
  });

  it('canonicalises IPv6 as RFC 5952 / inet_ntop', () => {
    const cases: [string, string][] = [
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['2001:db8::0:1', '2001:db8::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // tie: first run
      ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'], // longest run
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // one zero group is not shortened
      ['2001:DB8:A:B:C:D:E:F', '2001:db8:a:b:c:d:e:f'], // lower case
      ['0:0:0:0:0:0:0:0', '::'],
      ['::', '::'],
      ['::1', '::1'],
      ['1::', '1::'],
      ['fe80::', 'fe80::'],
      ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'], // "::" for one group is accepted on input
      ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
      ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
      ['::ffff:192.0.2.1', '::ffff:192.0.2.1'], // IPv4-mapped in mixed notation
      ['::ffff:c000:0201', '::ffff:192.0.2.1'],
      ['::1.2.3.4', '::102:304'], // IPv4-compatible (deprecated): plain hex
      ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
      ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
      ['0000:0000:0000:0000:0000:ffff:255.255.255.255', '::ffff:255.255.255.255'], // 45 chars
    ];
    for (const [input, out] of cases) expect([input, canon(input)]).toEqual([input, out]);
    expect(parseIp('::1').family).toBe(6);
    expect(parseIp('::ffff:1.2.3.4').family).toBe(6);
  });

  it('rejects garbage with the input in the message', () => {
    const bad = [
      '', ' 1.2.3.4', '1.2.3.4 ', '1.2.3', '1.2.3.4.5', '1.2.3.256', '01.2.3.4', '1.2.3.04', '1..2.3', '0x1.2.3.4', '1.2.3.-4',
      '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', ':::', '1::2::3', '12345::', ':1::', '1::2:', ':1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:',
      '::g', '1:2:3:4:5:6:7::8', '::1.2.3', '::1.2.3.4:5', '1:2:3:4:5:6:7:1.2.3.4', '::ffff:01.2.3.4', 'example.com', '[::1]', '1.2.3.4/32',
    ];
    for (const s of bad) {
      expect(() => parseIp(s), s).toThrow(/is not a valid IP address/);
      expect(() => parseIp(s), s).toThrow(JSON.stringify(s));
    }
    expect(() => parseIp('fe80::1%eth0')).toThrow(/"fe80::1%eth0" is not a valid IP address \(zone ids are not supported\)/);
  });

  it('formats 4- and 16-byte addresses only', () => {
    expect(() => formatIp(new Uint8Array(5))).toThrow(RangeError);
  });

  it('round-trips random addresses and matches the WHATWG URL serialiser', () => {
    // Bias towards zero groups so runs of zeros and ties are common.
    const group = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
    fc.assert(
      fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (gs) => {
        const b = new Uint8Array(16);
        gs.forEach((g, i) => {
          b[2 * i] = g >> 8;
          b[2 * i + 1] = g & 0xff;
        });
        const text = formatIp(b);
        expect(parseIp(text).bytes).toEqual(b);
        const mapped = gs.slice(0, 5).every((g) => g === 0) && gs[5] === 0xffff;
        if (!mapped) expect(text).toBe(new URL(`http://[${text}]/`).hostname.slice(1, -1));
        // Uncompressed input parses to the same bytes.
        expect(parseIp(gs.map((g) => g.toString(16).padStart(4, '0')).join(':')).bytes).toEqual(b);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), (b) => {
        expect(parseIp(formatIp(b)).bytes).toEqual(b);
      }),
    );
  });
});

describe('prefixes', () => {
  it('parses, masks host bits and formats', () => {
    expect(formatPrefix(parsePrefix('10.1.2.3/8'))).toBe('10.0.0.0/8');
    expect(formatPrefix(parsePrefix('10.1.2.3/31'))).toBe('10.1.2.2/31');
    expect(formatPrefix(parsePrefix('10.1.2.3'))).toBe('10.1.2.3/32');
    expect(formatPrefix(parsePrefix('0.0.0.0/0'))).toBe('0.0.0.0/0');
    expect(formatPrefix(parsePrefix('1.2.3.4/0'))).toBe('0.0.0.0/0');
    expect(formatPrefix(parsePrefix('fd00::1'))).toBe('fd00::1/128');
    expect(formatPrefix(parsePrefix('fd00:1234:5678::1/20'))).toBe('fd00:1000::/20');
    expect(formatPrefix(parsePrefix('::/0'))).toBe('::/0');
    expect(formatPrefix(parsePrefix('2001:db8::ffff/127'))).toBe('2001:db8::fffe/127');
    expect(parsePrefix('10.1.2.3/8')).toEqual({ family: 4, bytes: Uint8Array.of(10, 0, 0, 0), bits: 8 });
    expect(maskPrefix({ family: 6, bytes: new Uint8Array(16).fill(0xff), bits: 9 }).bytes.slice(0, 3)).toEqual(Uint8Array.of(0xff, 0x80, 0));
  });

  it('rejects bad lengths and addresses, naming the input', () => {
    expect(() => parsePrefix('10.0.0.0/33')).toThrow(/"10.0.0.0\/33".*0 to 32/);
    expect(() => parsePrefix('::/129')).toThrow(/0 to 128/);
    for (const s of ['10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/8/8', '10.0.0.0/ 8', '10.0.0.0/8 ', '10.0.0.0/0x8', '10.0.0.0/1000']) {
      expect(() => parsePrefix(s), s).toThrow(JSON.stringify(s));
    }
    expect(() => parsePrefix('10.0.0/8')).toThrow(/"10.0.0\/8" is not a valid IP prefix: "10.0.0" is not a valid IP address/);
    expect(() => parsePrefix('nonsense')).toThrow(/"nonsense" is not a valid IP address/);
  });

  it('containment, overlap and equality', () => {
    const p = parsePrefix;
    expect(prefixContains(p('10.0.0.0/8'), p('10.2.0.0/16'))).toBe(true);
    expect(prefixContains(p('10.2.0.0/16'), p('10.0.0.0/8'))).toBe(false);
    expect(prefixContains(p('10.0.0.0/8'), p('10.0.0.0/8'))).toBe(true);
    expect(prefixContains(p('0.0.0.0/0'), p('255.1.2.3/32'))).toBe(true);
    expect(prefixContains(p('::/0'), p('1.2.3.4/32'))).toBe(false); // families never mix
    expect(prefixContains(p('10.0.0.128/25'), p('10.0.0.127/32'))).toBe(false);
    expect(prefixContains(p('fd00::/15'), p('fd01::/16'))).toBe(true);
    expect(prefixContains(p('fd00::/16'), p('fd01::/16'))).toBe(false);
    expect(prefixesOverlap(p('10.0.0.0/8'), p('10.2.0.0/16'))).toBe(true);
    expect(prefixesOverlap(p('10.2.0.0/16'), p('10.0.0.0/8'))).toBe(true);
    expect(prefixesOverlap(p('10.0.0.0/16'), p('10.1.0.0/16'))).toBe(false);
    expect(comparePrefixes(p('10.0.0.0/8'), p('10.9.9.9/8'))).toBe(0);
    expect(comparePrefixes(p('10.0.0.0/8'), p('10.0.0.0/9'))).toBeLessThan(0);
    expect(comparePrefixes(maskPrefix({ family: 4, bytes: Uint8Array.of(10, 1, 0, 0), bits: 8 }), p('10.0.0.0/8'))).toBe(0);
  });
});

describe('host bits and address arithmetic', () => {
  it('keeps, clears or refuses host bits', () => {
    expect(formatPrefix(parsePrefix('10.0.0.1/24', 'keep'))).toBe('10.0.0.1/24');
    expect(formatPrefix(maskPrefix(parsePrefix('10.0.0.1/24', 'keep')))).toBe('10.0.0.0/24');
    expect(formatPrefix(parsePrefix('10.0.0.1/24', 'clear'))).toBe('10.0.0.0/24');
    expect(formatPrefix(parsePrefix('10.0.0.0/24', 'reject'))).toBe('10.0.0.0/24');
    expect(formatPrefix(parsePrefix('fd00::/64', 'reject'))).toBe('fd00::/64');
    expect(() => parsePrefix('10.0.0.1/24', 'reject')).toThrow('"10.0.0.1/24" has host bits set (did you mean 10.0.0.0/24?)');
    expect(() => parsePrefix('fd00::1/64', 'reject')).toThrow(/did you mean fd00::\/64\?/);
  });

  it('network and broadcast, nth address, containment of an address', () => {
    const p = parsePrefix('10.1.2.0/24');
    expect(prefixRange(p)).toEqual({ first: 0x0a010200n, last: 0x0a0102ffn });
    expect(prefixRange(parsePrefix('10.1.2.77/24', 'keep'))).toEqual({ first: 0x0a010200n, last: 0x0a0102ffn });
    expect(prefixRange(parsePrefix('0.0.0.0/0'))).toEqual({ first: 0n, last: 0xffffffffn });
    expect(prefixRange(parsePrefix('fd00::/120'))).toEqual({ first: 0xfd00n << 112n, last: (0xfd00n << 112n) + 255n });
    expect(formatIp(prefixAddress(p, 1n).bytes)).toBe('10.1.2.1');
    expect(formatIp(prefixAddress(p, 255n).bytes)).toBe('10.1.2.255');
    expect(formatIp(prefixAddress(parsePrefix('fd00:100::/64'), 0x1234n).bytes)).toBe('fd00:100::1234');
    expect(() => prefixAddress(p, 256n)).toThrow(/address #256 is outside 10.1.2.0\/24/);
    expect(() => prefixAddress(p, -1n)).toThrow(RangeError);
    expect(prefixContainsAddress(p, parseIp('10.1.2.200'))).toBe(true);
    expect(prefixContainsAddress(p, parseIp('10.1.3.0'))).toBe(false);
    expect(prefixContainsAddress(parsePrefix('::/0'), parseIp('10.1.2.3'))).toBe(false);
  });

  it('numbers round trip; ordering', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
        expect(addressFromBigInt(addressToBigInt(b), 6)).toEqual(b);
        expect(addressFromBigInt(addressToBigInt(b.subarray(0, 4)), 4)).toEqual(b.slice(0, 4));
      }),
    );
    expect(() => addressFromBigInt(1n << 32n, 4)).toThrow(RangeError);
    expect(() => addressFromBigInt(-1n, 6)).toThrow(RangeError);
    expect(compareAddresses(parseIp('10.0.0.2').bytes, parseIp('10.0.0.10').bytes)).toBeLessThan(0);
    expect(compareAddresses(parseIp('10.0.1.0').bytes, parseIp('10.0.0.255').bytes)).toBeGreaterThan(0);
    expect(compareAddresses(parseIp('::1').bytes, parseIp('::1').bytes)).toBe(0);
    const sorted = ['fd00::/8', '10.0.0.0/16', '10.0.0.0/8', '9.0.0.0/8'].map((t) => parsePrefix(t)).sort(comparePrefixes).map(formatPrefix);
    expect(sorted).toEqual(['9.0.0.0/8', '10.0.0.0/8', '10.0.0.0/16', 'fd00::/8']);
  });
});

// ─── packets built by hand ──────────────────────────────────────────────────

function checksum(b: Uint8Array, from: number, to: number): number {
  let s = 0;
  for (let i = from; i < to; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** IPv4/UDP packet with `optionWords` words of IP options (NOPs). */
function ipv4(src: string, dst: string, payload: number, optionWords = 0): Uint8Array {
  const ihl = 5 + optionWords;
  const total = ihl * 4 + 8 + payload;
  const p = new Uint8Array(total);
  p[0] = 0x40 | ihl;
  p[2] = total >> 8;
  p[3] = total & 0xff;
  p[8] = 64; // TTL
  p[9] = 17; // UDP
  p.set(parseIp(src).bytes, 12);
  p.set(parseIp(dst).bytes, 16);
  p.fill(1, 20, ihl * 4); // NOP options
  const c = checksum(p, 0, ihl * 4);
  p[10] = c >> 8;
  p[11] = c & 0xff;
  const u = ihl * 4;
  p[u] = 0x30; // ports 12345 → 53
  p[u + 1] = 0x39;
  p[u + 3] = 53;
  p[u + 4] = (8 + payload) >> 8;
  p[u + 5] = (8 + payload) & 0xff;
  for (let i = 0; i < payload; i++) p[u + 8 + i] = (i * 7 + 3) & 0xff;
  return p;
}

function ipv6(src: string, dst: string, payload: number): Uint8Array {
  const plen = 8 + payload;
  const p = new Uint8Array(40 + plen);
  p[0] = 0x60;
  p[1] = 0x0a; // some traffic class / flow label bits
  p[4] = plen >> 8;
  p[5] = plen & 0xff;
  p[6] = 17;
  p[7] = 64;
  p.set(parseIp(src).bytes, 8);
  p.set(parseIp(dst).bytes, 24);
  p[44] = plen >> 8;
  p[45] = plen & 0xff;
  for (let i = 0; i < payload; i++) p[48 + i] = (i * 5 + 1) & 0xff;
  return p;
}

/** WireGuard pads plaintext to a multiple of 16 with zeros. */
function pad16(p: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(p.length / 16) * 16 || 16);
  out.set(p);
  return out;
}

describe('packet headers', () => {
  it('finds version and address offsets of IPv4 and IPv6 packets', () => {
    const p4 = ipv4('192.0.2.1', '198.51.100.7', 13);
    expect(checksum(p4, 0, 20)).toBe(0); // a valid header
    expect(ipVersion(p4)).toBe(4);
    expect(formatIp(p4.subarray(packetSource(p4), packetSource(p4) + 4))).toBe('192.0.2.1');
    expect(formatIp(p4.subarray(packetDestination(p4), packetDestination(p4) + 4))).toBe('198.51.100.7');
    const p6 = ipv6('2001:db8::1', 'fd00:1::2', 3);
    expect(ipVersion(p6)).toBe(6);
    expect(formatIp(p6.subarray(packetSource(p6), packetSource(p6) + 16))).toBe('2001:db8::1');
    expect(formatIp(p6.subarray(packetDestination(p6), packetDestination(p6) + 16))).toBe('fd00:1::2');
    for (const bad of [new Uint8Array(0), p4.subarray(0, 19), p6.subarray(0, 39), Uint8Array.of(0x50, 0, 0, 20), new Uint8Array(60)]) {
      expect(ipVersion(bad)).toBe(0);
      expect(packetDestination(bad)).toBe(-1);
      expect(packetSource(bad)).toBe(-1);
    }
  });

  it('strips WireGuard padding', () => {
    for (const n of [0, 1, 5, 12, 13, 100, 1400]) {
      for (const p of [ipv4('10.0.0.1', '10.0.0.2', n), ipv4('10.0.0.1', '10.0.0.2', n, 2), ipv6('fd00::1', 'fd00::2', n)]) {
        const padded = pad16(p);
        expect(innerPacketLength(padded)).toBe(p.length);
        expect(innerPacketLength(p)).toBe(p.length);
      }
    }
  });

  it('rejects invalid headers', () => {
    const p4 = ipv4('10.0.0.1', '10.0.0.2', 5);
    expect(innerPacketLength(p4.subarray(0, p4.length - 1))).toBe(-1); // total length > buffer
    expect(innerPacketLength(new Uint8Array(0))).toBe(-1);
    expect(innerPacketLength(Uint8Array.of(0x45, 0, 0, 10))).toBe(-1); // short buffer
    const ihl4 = p4.slice();
    ihl4[0] = 0x44; // IHL < 5
    expect(innerPacketLength(ihl4)).toBe(-1);
    const tiny = p4.slice();
    tiny[2] = 0;
    tiny[3] = 19; // total length < 20
    expect(innerPacketLength(tiny)).toBe(-1);
    const opts = pad16(ipv4('10.0.0.1', '10.0.0.2', 0, 3)); // IHL 8 = 32 bytes
    opts[2] = 0;
    opts[3] = 28; // total length < IHL·4
    expect(innerPacketLength(opts)).toBe(-1);
    const p6 = ipv6('fd00::1', 'fd00::2', 3);
    expect(innerPacketLength(p6.subarray(0, p6.length - 1))).toBe(-1); // payload length too big
    expect(innerPacketLength(p6.subarray(0, 39))).toBe(-1);
    const empty6 = p6.slice(0, 40);
    empty6[4] = 0;
    empty6[5] = 0;
    expect(innerPacketLength(empty6)).toBe(40); // a bare IPv6 header is valid
    expect(innerPacketLength(new Uint8Array(48).fill(0x50))).toBe(-1); // version 5
    expect(innerPacketLength(new Uint8Array(48))).toBe(-1); // all-zero padding only
  });
});
