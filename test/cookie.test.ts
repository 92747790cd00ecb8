/**
 * DoS cookies (src/noise/cookie.ts) on an injected clock: mac1, mac2 and
 * the cookie reply round trip, cookies bound to the source, and the
 * responder's secret and the initiator's cookie expiring after 120 s.
 */
import { describe, expect, it } from 'vitest';
import { getCrypto } from '../src/crypto/index.js';
import { COOKIE_REFRESH_TIME, INITIATION_SIZE, MSG_INITIATION } from '../src/noise/constants.js';
import { CookieChecker, CookieGenerator } from '../src/noise/cookie.js';
import { mac2Of, writeU32 } from '../src/noise/messages.js';

const p = getCrypto();

function setup() {
  const clock = { t: 10_000 };
  const now = () => clock.t;
  const responderPub = p.publicKey(p.generatePrivateKey());
  const checker = new CookieChecker(p, now);
  checker.init(responderPub);
  const gen = new CookieGenerator(p, now, responderPub);
  const message = (sender: number) => {
    const m = p.randomBytes(INITIATION_SIZE);
    m.set([MSG_INITIATION, 0, 0, 0]);
    writeU32(m, 4, sender);
    gen.addMacs(m);
    return m;
  };
  return { clock, checker, gen, message };
}

const SRC = Uint8Array.from([192, 0, 2, 1, 0xca, 0x6c]);
const OTHER_SRC = Uint8Array.from([192, 0, 2, 2, 0xca, 0x6c]);

describe('cookies', () => {
  it('checks mac1 against the responder key and refuses a tampered message or another key', () => {
    const { checker, message } = setup();
    const m = message(1);
    expect(checker.checkMac1(m)).toBe(true);
    const bad = m.slice();
    bad[20]! ^= 1;
    expect(checker.checkMac1(bad)).toBe(false);
    const other = new CookieChecker(p, () => 0);
    other.init(p.publicKey(p.generatePrivateKey()));
    expect(other.checkMac1(m)).toBe(false);
    other.init(null);
    expect(other.checkMac1(m)).toBe(false);
  });

  it('round trip: a cookie reply makes the initiator add a mac2 the responder accepts, for that source only', () => {
    const { checker, gen, message } = setup();
    const first = message(42);
    expect(mac2Of(first).every((b) => b === 0)).toBe(true); // no cookie yet
    expect(checker.checkMac2(first, SRC)).toBe(false);
    const reply = checker.createReply(first, 42, SRC)!;
    expect(reply).toHaveLength(64);
    expect(CookieGenerator.receiverOf(reply)).toBe(42);
    const tampered = reply.slice();
    tampered[50]! ^= 1;
    expect(gen.consumeReply(tampered)).toBe(false);
    expect(gen.consumeReply(reply)).toBe(true);
    expect(gen.consumeReply(reply)).toBe(false); // answers only the last message sent
    const second = message(43);
    expect(checker.checkMac1(second)).toBe(true);
    expect(checker.checkMac2(second, SRC)).toBe(true);
    expect(checker.checkMac2(second, OTHER_SRC)).toBe(false);
  });

  it('rotates the responder secret after 120 s: old cookies stop being accepted', () => {
    const { clock, checker, gen, message } = setup();
    const first = message(1);
    expect(gen.consumeReply(checker.createReply(first, 1, SRC)!)).toBe(true);
    clock.t += COOKIE_REFRESH_TIME - 1000;
    const withCookie = message(2);
    expect(checker.checkMac2(withCookie, SRC)).toBe(true);
    clock.t += 1001; // the secret is now older than 120 s
    expect(checker.checkMac2(withCookie, SRC)).toBe(false);
    // The next reply draws a new secret; a mac2 made with the old cookie does not verify against it.
    const fresh = checker.createReply(withCookie, 2, SRC)!;
    expect(checker.checkMac2(withCookie, SRC)).toBe(false);
    expect(gen.consumeReply(fresh)).toBe(true);
    expect(checker.checkMac2(message(3), SRC)).toBe(true);
  });

  it('the initiator stops sending mac2 once its cookie is 120 s old', () => {
    const { clock, checker, gen, message } = setup();
    expect(gen.consumeReply(checker.createReply(message(1), 1, SRC)!)).toBe(true);
    clock.t += COOKIE_REFRESH_TIME - 1;
    expect(mac2Of(message(2)).some((b) => b !== 0)).toBe(true);
    clock.t += 1;
    expect(mac2Of(message(3)).every((b) => b === 0)).toBe(true);
  });
});
