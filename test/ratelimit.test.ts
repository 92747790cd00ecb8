/**
 * The per-source handshake rate limiter (src/noise/ratelimit.ts) on an
 * injected clock: a burst of 5, then 20 per second; IPv4 per address,
 * IPv6 per /64; idle buckets are collected.
 */
import { describe, expect, it } from 'vitest';
import { BURST, RATE_PER_SECOND, RateLimiter } from '../src/noise/ratelimit.js';
import { parseIp } from '../src/routing/ip.js';

const ip = (s: string) => parseIp(s).bytes;

describe('RateLimiter', () => {
  it('allows a burst, then one handshake per 1/20 s', () => {
    let t = 1_000;
    const rl = new RateLimiter(() => t);
    const a = ip('192.0.2.1');
    for (let i = 0; i < BURST; i++) expect(rl.allow(a)).toBe(true);
    expect(rl.allow(a)).toBe(false);
    t += 1000 / RATE_PER_SECOND - 1;
    expect(rl.allow(a)).toBe(false);
    t += 1;
    expect(rl.allow(a)).toBe(true);
    expect(rl.allow(a)).toBe(false);
    // Tokens refill up to the burst, not beyond.
    t += 10_000;
    for (let i = 0; i < BURST; i++) expect(rl.allow(a)).toBe(true);
    expect(rl.allow(a)).toBe(false);
  });

  it('keys IPv4 by address and IPv6 by /64', () => {
    const t = 1_000;
    const rl = new RateLimiter(() => t);
    for (let i = 0; i < BURST; i++) rl.allow(ip('192.0.2.1'));
    expect(rl.allow(ip('192.0.2.1'))).toBe(false);
    expect(rl.allow(ip('192.0.2.2'))).toBe(true);
    for (let i = 0; i < BURST; i++) rl.allow(ip('2001:db8:1:2::1'));
    expect(rl.allow(ip('2001:db8:1:2:ffff::9'))).toBe(false); // same /64
    expect(rl.allow(ip('2001:db8:1:3::1'))).toBe(true);
    expect(RateLimiter.keyOf(ip('2001:db8:1:2::1'))).toBe(RateLimiter.keyOf(ip('2001:db8:1:2:ffff::9')));
    expect(RateLimiter.keyOf(ip('192.0.2.1'))).toBe('c0000201');
  });

  it('forgets sources idle for more than a second', () => {
    let t = 1_000;
    const rl = new RateLimiter(() => t);
    rl.allow(ip('192.0.2.1'));
    rl.allow(ip('192.0.2.2'));
    expect(rl.size).toBe(2);
    t += 1_001;
    rl.allow(ip('192.0.2.3')); // triggers collection
    expect(rl.size).toBe(1);
  });
});
