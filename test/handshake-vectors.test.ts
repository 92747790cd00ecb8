/**
 * Byte-exact reproduction of test/vectors/wireguard-handshake.json and of the
 * Cacophony Noise_IKpsk2 vector, on both crypto providers.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nobleCrypto } from '../src/crypto/noble.js';
import { nodeCrypto } from '../src/crypto/node.js';
import { loadNativeCrypto } from '../src/io/native.js';
import type { CryptoProvider } from '../src/crypto/provider.js';
import { CookieChecker, CookieGenerator } from '../src/noise/cookie.js';
import {
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  deriveSession,
  Handshake,
  handshakeHash,
  makeIdentity,
} from '../src/noise/handshake.js';
import { initialState, readMessageA, readMessageB, split, writeMessageA, writeMessageB } from '../src/noise/ikpsk2.js';
import { CONSTRUCTION, IDENTIFIER } from '../src/noise/constants.js';

const nativeCrypto = loadNativeCrypto()!;
const wg = JSON.parse(readFileSync(new URL('./vectors/wireguard-handshake.json', import.meta.url), 'utf8'));
const cacophony = JSON.parse(readFileSync(new URL('./vectors/noise-IKpsk2-cacophony.json', import.meta.url), 'utf8'))[0];
const hx = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe.each([
  ['native', nativeCrypto],
  ['node', nodeCrypto],
  ['noble', nobleCrypto],
] as [string, CryptoProvider][])('WireGuard handshake vector (%s crypto)', (_name, p) => {
  const v = wg.handshake;
  const now = () => 1000;

  function run() {
    const initiator = makeIdentity(p, hx(v.initiator_static_private));
    const responder = makeIdentity(p, hx(v.responder_static_private));
    expect(toHex(initiator.publicKey)).toBe(v.initiator_static_public);
    expect(toHex(responder.publicKey)).toBe(v.responder_static_public);

    const hsI = new Handshake(p, responder.publicKey);
    hsI.presharedKey = hx(v.preshared_key);
    hsI.precompute(p, initiator);
    const hsR = new Handshake(p, initiator.publicKey);
    hsR.presharedKey = hx(v.preshared_key);
    hsR.precompute(p, responder);

    const genI = new CookieGenerator(p, now, responder.publicKey);
    const genR = new CookieGenerator(p, now, initiator.publicKey);

    const init = createInitiation(p, initiator, hsI, Number(v.initiator_sender_index), hx(v.tai64n_timestamp), hx(v.initiator_ephemeral_private))!;
    genI.addMacs(init);
    const consumed = consumeInitiation(p, responder, init, 0, (k) => (toHex(k) === v.initiator_static_public ? hsR : undefined));
    expect('handshake' in consumed).toBe(true);
    const resp = createResponse(p, hsR, Number(v.responder_sender_index), hx(v.responder_ephemeral_private))!;
    genR.addMacs(resp);
    const got = consumeResponse(p, initiator, resp, (i) => (i === Number(v.initiator_sender_index) ? hsI : undefined));
    expect(got).toBe(hsI);
    const finalHash = toHex(handshakeHash(hsI)!);
    expect(toHex(handshakeHash(hsR)!)).toBe(finalHash);
    const keysI = deriveSession(p, hsI)!;
    const keysR = deriveSession(p, hsR)!;
    return { init, resp, keysI, keysR, finalHash, initiator, responder, genI };
  }

  it('initiation, response, transport keys and final hash', () => {
    const r = run();
    expect(toHex(r.init)).toBe(v.initiation_148);
    expect(toHex(r.resp)).toBe(v.response_92);
    expect(r.finalHash).toBe(v.final_handshake_hash);
    expect(toHex(r.keysI.send)).toBe(v.initiator_send_key);
    expect(toHex(r.keysI.receive)).toBe(v.initiator_recv_key);
    expect(toHex(r.keysR.receive)).toBe(v.initiator_send_key);
    expect(toHex(r.keysR.send)).toBe(v.initiator_recv_key);
    expect(r.keysI.isInitiator).toBe(true);
    expect(r.keysR.isInitiator).toBe(false);
  });

  it('first keepalive from the initiator', () => {
    const { keysI } = run();
    const msg = new Uint8Array(32);
    msg[0] = 4;
    msg.set(hx('88776655'), 4);
    p.sealInto(keysI.send, 0, 0, new Uint8Array(0), msg, 16);
    expect(toHex(msg)).toBe(v.first_keepalive_from_initiator_32);
  });

  it('cookie, cookie reply and initiation with mac2', () => {
    const { initiator, responder, genI } = run();
    const checker = new CookieChecker(p, now);
    checker.init(responder.publicKey);
    checker.setSecretForTesting(hx(v.cookie_secret));
    expect(toHex(p.mac(hx(v.cookie_secret), hx(v.cookie_src_bytes_ip_port_be)))).toBe(v.cookie);
    const init = hx(v.initiation_148);
    expect(checker.checkMac1(init)).toBe(true);
    expect(checker.checkMac2(init, hx(v.cookie_src_bytes_ip_port_be))).toBe(false);
    const reply = checker.createReply(init, Number(v.initiator_sender_index), hx(v.cookie_src_bytes_ip_port_be), hx(v.cookie_nonce))!;
    expect(toHex(reply)).toBe(v.cookie_reply_64);
    // The initiator's generator last MACed exactly this initiation, so it accepts the reply.
    expect(genI.consumeReply(reply)).toBe(true);
    const again = hx(v.initiation_148);
    genI.addMacs(again);
    expect(toHex(again)).toBe(v.initiation_with_mac2_148);
    expect(checker.checkMac2(again, hx(v.cookie_src_bytes_ip_port_be))).toBe(true);
    void initiator;
  });

  it('initial chain key and hash', () => {
    const s = initialState(p, CONSTRUCTION, new TextEncoder().encode(IDENTIFIER), new Uint8Array(32));
    expect(toHex(s.ck)).toBe(wg.initial_chain_key);
    expect(toHex(p.hash(s.ck, new TextEncoder().encode(IDENTIFIER)))).toBe(wg.initial_hash);
  });

  it('low-order peer keys never produce a handshake', () => {
    const initiator = makeIdentity(p, hx(v.initiator_static_private));
    const hs = new Handshake(p, new Uint8Array(32));
    hs.precompute(p, initiator);
    expect(createInitiation(p, initiator, hs, 1, hx(v.tai64n_timestamp))).toBeNull();
  });
});

describe.each([
  ['native', nativeCrypto],
  ['node', nodeCrypto],
  ['noble', nobleCrypto],
] as [string, CryptoProvider][])('Cacophony Noise_IKpsk2 vector (%s crypto)', (_name, p) => {
  it('reproduces all six ciphertexts and the handshake hash', () => {
    const c = cacophony;
    const prologue = hx(c.init_prologue);
    const psk = hx(c.init_psks[0]);
    const iS = hx(c.init_static);
    const iE = hx(c.init_ephemeral);
    const rS = hx(c.resp_static);
    const rE = hx(c.resp_ephemeral);
    const rsPub = p.publicKey(rS);
    expect(toHex(rsPub)).toBe(c.init_remote_static);

    const sti = initialState(p, c.protocol_name, prologue, rsPub);
    const str = initialState(p, c.protocol_name, prologue, rsPub);
    const m0 = c.messages[0];
    const a = writeMessageA(p, sti, iE, p.publicKey(iE), p.publicKey(iS), rsPub, p.dh(iS, rsPub)!, hx(m0.payload))!;
    const ct0 = Buffer.concat([a.ephemeral, a.encryptedStatic, a.encryptedPayload]);
    expect(ct0.toString('hex')).toBe(m0.ciphertext);

    const readA = readMessageA(p, str, rS, a, (k) => p.dh(rS, k))!;
    expect(toHex(readA.payload)).toBe(m0.payload);
    expect(toHex(readA.initiatorStatic)).toBe(toHex(p.publicKey(iS)));

    const m1 = c.messages[1];
    const b = writeMessageB(p, str, rE, p.publicKey(rE), a.ephemeral, readA.initiatorStatic, psk, hx(m1.payload))!;
    expect(Buffer.concat([b.ephemeral, b.encryptedPayload]).toString('hex')).toBe(m1.ciphertext);
    const pb = readMessageB(p, sti, iE, iS, b, psk)!;
    expect(toHex(pb)).toBe(m1.payload);
    expect(toHex(sti.h)).toBe(c.handshake_hash);
    expect(toHex(str.h)).toBe(c.handshake_hash);

    const [i2r, r2i] = split(p, sti);
    const nonces = [0, 0, 1, 1];
    for (let i = 2; i < 6; i++) {
      const m = c.messages[i];
      const key = i % 2 === 0 ? i2r : r2i;
      const ct = p.seal(key, nonces[i - 2]!, 0, hx(m.payload));
      expect(toHex(ct)).toBe(m.ciphertext);
      expect(toHex(p.open(key, nonces[i - 2]!, 0, ct)!)).toBe(m.payload);
    }
  });
});
