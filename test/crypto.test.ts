import { readFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import { x25519 } from '@noble/curves/ed25519.js';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { chacha20poly1305, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { keyToHex, LOW_ORDER_KEYS } from '../src/crypto/keys.js';
import type { CryptoProvider } from '../src/crypto/provider.js';
import { loadNativeCrypto } from '../src/io/native.js';
import { nodeCrypto, nodeCryptoAvailable, aeadSealRaw as nodeSealRaw, aeadOpenRaw as nodeOpenRaw } from '../src/crypto/node.js';
import { nobleCrypto, aeadSealRaw as nobleSealRaw, aeadOpenRaw as nobleOpenRaw } from '../src/crypto/noble.js';
import { getCrypto, loadCrypto, setCrypto } from '../src/crypto/index.js';
import { kdf1, kdf2, kdf3 } from '../src/crypto/kdf.js';
import { compareTai64n, tai64n, tai64nNow, TAI64N_WHITEN_NS } from '../src/crypto/tai64n.js';

const V = JSON.parse(readFileSync(new URL('./vectors/wireguard-handshake.json', import.meta.url), 'utf8'));
const H = V.handshake;

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (a: Uint8Array | null): string | null => (a === null ? null : Buffer.from(a).toString('hex'));
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const range = (from: number, to: number): Uint8Array => Uint8Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** WireGuard's nonce built independently: 4 zero bytes ‖ LE64(counter). */
function wgNonce(counter: bigint): Uint8Array {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setBigUint64(4, counter, true);
  return n;
}

const SUNSCREEN = utf8(
  "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
);

// RFC 8439 §2.8.2
const RFC8439_AEAD = {
  key: range(0x80, 0x9f),
  nonce: hex('070000004041424344454647'),
  ad: hex('50515253c0c1c2c3c4c5c6c7'),
  pt: SUNSCREEN,
  ct:
    'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b' +
    '1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc' +
    '3ff4def08e4b7a9de576d26586cec64b6116' +
    '1ae10b594f09e26a7e902ecbd0600691',
};

// RFC 8439 Appendix A.5
const RFC8439_A5 = {
  key: hex('1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0'),
  nonce: hex('000000000102030405060708'),
  ad: hex('f33388860000000000004e91'),
  ct: hex(
    '64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb24c6cfc18755d43eea09ee94e382d26b0' +
      'bdb7b73c321b0100d4f03b7f355894cf332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c855' +
      '9797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4b9166c767b804d46a59b5216cde7a4e9' +
      '9040c5a40433225ee282a1b0a06c523eaf4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a' +
      '0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a1049e617d91d361094fa68f0ff77987130' +
      '305beaba2eda04df997b714d6c6f2c29a6ad5cb4022b02709b' +
      'eead9d67890cbb22392336fea1851f38',
  ),
  pt: utf8(
    'Internet-Drafts are draft documents valid for a maximum of six months and may be updated, replaced, ' +
      'or obsoleted by other documents at any time. It is inappropriate to use Internet-Drafts as reference ' +
      'material or to cite them other than as /\u201cwork in progress./\u201d',
  ),
};

// draft-irtf-cfrg-xchacha-03 §A.3.1
const XCHACHA = {
  key: range(0x80, 0x9f),
  nonce: range(0x40, 0x57),
  ad: hex('50515253c0c1c2c3c4c5c6c7'),
  pt: SUNSCREEN,
  ct:
    'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39' +
    'ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9' +
    '21f9664c97637da9768812f615c68b13b52e' +
    'c0875924c1c7987947deafd8780acf49',
};

// Encodings u that are low-order after RFC 7748's masking of bit 255 (the
// result of the ladder with any clamped scalar is zero): 0, 1, the two
// order-8 points, p−1, and the non-canonical p (≡ 0) and p+1 (≡ 1).
const LOW_ORDER = LOW_ORDER_KEYS.map(keyToHex);
// The rest of libsodium's blacklist: low-order only for implementations that
// do not mask bit 255. With masking they are ordinary points; both providers
// must agree on them.
const UNMASKED_LOW_ORDER = [
  'cdeb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880',
  '4c9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7',
  'd9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
  'daffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
  'dbffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
];

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });

describe('node:crypto provider availability', () => {
  it('is available on this Node', () => {
    expect(nodeCryptoAvailable).toBe(true);
  });
});

describe.each([nodeCrypto, nobleCrypto])('$name provider', (p: CryptoProvider) => {
  describe('X25519', () => {
    it('RFC 7748 §5.2 test vectors', () => {
      expect(
        toHex(
          p.dh(
            hex('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4'),
            hex('e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c'),
          ),
        ),
      ).toBe('c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552');
      // u has bit 255 set: must be masked
      expect(
        toHex(
          p.dh(
            hex('4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d'),
            hex('e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493'),
          ),
        ),
      ).toBe('95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957');
    });

    it('RFC 7748 §5.2 iterated: 1 and 1000 iterations', () => {
      let k: Uint8Array = hex('0900000000000000000000000000000000000000000000000000000000000000');
      let u: Uint8Array = k.slice();
      for (let i = 1; i <= 1000; i++) {
        const r = p.dh(k, u)!;
        u = k;
        k = r;
        if (i === 1) expect(toHex(k)).toBe('422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079');
      }
      expect(toHex(k)).toBe('684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51');
    });

    it('RFC 7748 §6.1 Alice/Bob', () => {
      const a = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
      const b = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
      const xv = V.x25519_rfc7748;
      expect(toHex(p.publicKey(a))).toBe(xv.alice_pub);
      expect(toHex(p.publicKey(b))).toBe(xv.bob_pub);
      expect(toHex(p.dh(a, hex(xv.bob_pub)))).toBe(xv.shared);
      expect(toHex(p.dh(b, hex(xv.alice_pub)))).toBe(xv.shared);
    });

    it('handshake vector static keys', () => {
      expect(toHex(p.publicKey(hex(H.initiator_static_private)))).toBe(H.initiator_static_public);
      expect(toHex(p.publicKey(hex(H.responder_static_private)))).toBe(H.responder_static_public);
    });

    it('low-order points (with and without bit 255) → null', () => {
      const priv = p.generatePrivateKey();
      for (const h of LOW_ORDER) {
        const u = hex(h);
        expect(p.dh(priv, u), h).toBeNull();
        u[31]! |= 0x80;
        expect(p.dh(priv, u), `${h} | bit 255`).toBeNull();
      }
    });

    it('blacklist entries that mask to ordinary points agree with @noble', () => {
      const priv = p.generatePrivateKey();
      for (const h of UNMASKED_LOW_ORDER) {
        const expected = toHex(x25519.getSharedSecret(priv, hex(h)));
        expect(toHex(p.dh(priv, hex(h))), h).toBe(expected);
      }
    });

    it('wrong key lengths throw', () => {
      expect(() => p.dh(new Uint8Array(31), new Uint8Array(32))).toThrow();
      expect(() => p.dh(new Uint8Array(32).fill(1), new Uint8Array(33))).toThrow();
    });

    it('generatePrivateKey is clamped; DH is symmetric and matches @noble', () => {
      for (let i = 0; i < 8; i++) {
        const a = p.generatePrivateKey();
        const b = p.generatePrivateKey();
        expect(a.length).toBe(32);
        expect(a[0]! & 7).toBe(0);
        expect(a[31]! & 0xc0).toBe(0x40);
        const A = p.publicKey(a);
        const B = p.publicKey(b);
        expect(toHex(A)).toBe(toHex(x25519.getPublicKey(a)));
        const s = p.dh(a, B);
        expect(toHex(s)).toBe(toHex(p.dh(b, A)));
        expect(toHex(s)).toBe(toHex(x25519.getSharedSecret(a, B)));
      }
    });

    it('unclamped private keys and random public keys agree with @noble', () => {
      fc.assert(
        fc.property(bytes(32), bytes(32), (k, u) => {
          let expected: string | null;
          try {
            expected = toHex(x25519.getSharedSecret(k, u));
          } catch {
            expected = null;
          }
          expect(toHex(p.dh(k, u))).toBe(expected);
        }),
        { numRuns: 20 },
      );
    });
  });

  describe('BLAKE2s', () => {
    it('RFC 7693: BLAKE2s-256("abc")', () => {
      expect(toHex(p.hash(utf8('abc')))).toBe(V.blake2s_abc);
      expect(toHex(p.hash(utf8('a'), utf8(''), utf8('bc')))).toBe(V.blake2s_abc);
      expect(toHex(p.hash())).toBe(toHex(blake2s(new Uint8Array(0))));
    });

    it('WireGuard initial chaining key and hash', () => {
      const ck = p.hash(utf8(V.construction));
      expect(toHex(ck)).toBe(V.initial_chain_key);
      expect(toHex(p.hash(ck, utf8(V.identifier)))).toBe(V.initial_hash);
    });

    it('keyed BLAKE2s KAT (256-bit, key 00..1f, empty message) via @noble', () => {
      expect(toHex(blake2s(new Uint8Array(0), { key: range(0, 31) }))).toBe(V.blake2s_keyed_empty_kat);
    });

    it('mac() is keyed BLAKE2s-128 (oracle: @noble)', () => {
      // keyed-128 is not a prefix of keyed-256 (the output length is in the parameter block)
      const m = p.mac(range(0, 31), new Uint8Array(0));
      expect(m.length).toBe(16);
      expect(toHex(m)).not.toBe(V.blake2s_keyed_empty_kat.slice(0, 32));
      fc.assert(
        fc.property(bytes(32), fc.uint8Array({ maxLength: 300 }), (key, data) => {
          expect(toHex(p.mac(key, data))).toBe(toHex(blake2s(data, { key, dkLen: 16 })));
        }),
        { numRuns: 50 },
      );
    });

    it('mac() reproduces the vector cookie', () => {
      expect(toHex(p.mac(hex(H.cookie_secret), hex(H.cookie_src_bytes_ip_port_be)))).toBe(H.cookie);
    });

    it('hash() of random parts matches @noble', () => {
      fc.assert(
        fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 5 }), (parts) => {
          const all = Buffer.concat(parts);
          expect(toHex(p.hash(...parts))).toBe(toHex(blake2s(all)));
        }),
        { numRuns: 50 },
      );
    });

    it('hmac() matches @noble HMAC-BLAKE2s and the other provider', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 100 }), fc.uint8Array({ maxLength: 300 }), (key, data) => {
          const got = toHex(p.hmac(key, data));
          expect(got).toBe(toHex(hmac(blake2s, key, data)));
          expect(got).toBe(toHex(nodeCrypto.hmac(key, data)));
          expect(got).toBe(toHex(nobleCrypto.hmac(key, data)));
        }),
        { numRuns: 100 },
      );
    });
  });

  describe('ChaCha20-Poly1305 (WireGuard nonce)', () => {
    it('seal/open match @noble with an explicitly built nonce, including hi ≠ 0', () => {
      const counters: [number, number][] = [
        [0, 0],
        [1, 0],
        [0xffffffff, 0],
        [0, 1],
        [0x12345678, 0x9abcdef0],
        [0xffffffff, 0xffffffff],
        [-1, 0], // lo is taken modulo 2^32
      ];
      const key = p.randomBytes(32);
      const pt = p.randomBytes(100);
      const ad = p.randomBytes(32);
      for (const [lo, hi] of counters) {
        const n = wgNonce((BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0));
        expect(toHex(p.seal(key, lo, hi, pt, ad))).toBe(toHex(chacha20poly1305(key, n, ad).encrypt(pt)));
        expect(toHex(p.seal(key, lo, hi, pt))).toBe(toHex(chacha20poly1305(key, n).encrypt(pt)));
        const ct = chacha20poly1305(key, n, ad).encrypt(pt);
        expect(toHex(p.open(key, lo, hi, ct, ad))).toBe(toHex(pt));
      }
      expect(toHex(wgNonce(0x9abcdef012345678n))).toBe('00000000' + '78563412f0debc9a');
    });

    it('random round trips agree with @noble', () => {
      fc.assert(
        fc.property(
          bytes(32),
          fc.integer({ min: 0, max: 0xffffffff }),
          fc.integer({ min: 0, max: 0xffffffff }),
          fc.uint8Array({ maxLength: 1500 }),
          fc.option(fc.uint8Array({ maxLength: 64 }), { nil: undefined }),
          (key, lo, hi, pt, ad) => {
            const n = wgNonce((BigInt(hi) << 32n) | BigInt(lo));
            const ct = p.seal(key, lo, hi, pt, ad);
            expect(toHex(ct)).toBe(toHex(chacha20poly1305(key, n, ad).encrypt(pt)));
            expect(toHex(p.open(key, lo, hi, ct, ad))).toBe(toHex(pt));
          },
        ),
        { numRuns: 50 },
      );
    });

    it('sealInto writes ct ‖ tag at the offset and nothing else', () => {
      const key = p.randomBytes(32);
      const pt = p.randomBytes(1420);
      const out = new Uint8Array(16 + 1420 + 16 + 8).fill(0xaa);
      p.sealInto(key, 7, 3, pt, out, 16);
      expect(toHex(out.subarray(16, 16 + 1436))).toBe(toHex(p.seal(key, 7, 3, pt)));
      expect(out.subarray(0, 16).every((b) => b === 0xaa)).toBe(true);
      expect(out.subarray(16 + 1436).every((b) => b === 0xaa)).toBe(true);
      expect(() => p.sealInto(key, 0, 0, pt, new Uint8Array(1435), 0)).toThrow();
    });

    it('sealInto works in place (plaintext already at the output offset)', () => {
      const key = p.randomBytes(32);
      const buf = new Uint8Array(16 + 200 + 16);
      buf.set(p.randomBytes(200), 16);
      const expected = toHex(p.seal(key, 9, 0, buf.slice(16, 216)));
      p.sealInto(key, 9, 0, buf.subarray(16, 216), buf, 16);
      expect(toHex(buf.subarray(16))).toBe(expected);
    });

    it('keepalive (empty plaintext) from the handshake vector', () => {
      const pkt = hex(H.first_keepalive_from_initiator_32);
      const ct = pkt.subarray(16);
      expect(toHex(p.seal(hex(H.initiator_send_key), 0, 0, new Uint8Array(0)))).toBe(toHex(ct));
      expect(p.open(hex(H.initiator_send_key), 0, 0, ct)?.length).toBe(0);
    });

    it('open() returns null on a flipped bit anywhere, wrong counter, wrong AD, short input', () => {
      const key = p.randomBytes(32);
      const pt = p.randomBytes(64);
      const ad = p.randomBytes(16);
      const ct = p.seal(key, 5, 0, pt, ad);
      for (const i of [0, 10, 63, 64, 79]) {
        const bad = ct.slice();
        bad[i]! ^= 0x01;
        expect(p.open(key, 5, 0, bad, ad), `byte ${i}`).toBeNull();
      }
      expect(p.open(key, 6, 0, ct, ad)).toBeNull();
      expect(p.open(key, 5, 1, ct, ad)).toBeNull();
      expect(p.open(key, 5, 0, ct)).toBeNull();
      expect(p.open(key, 5, 0, ct.subarray(0, 15), ad)).toBeNull();
      expect(toHex(p.open(key, 5, 0, ct, ad))).toBe(toHex(pt));
    });

    it('returns plain Uint8Arrays', () => {
      const key = p.randomBytes(32);
      const ct = p.seal(key, 0, 0, new Uint8Array(10));
      for (const x of [ct, p.open(key, 0, 0, ct)!, p.hash(ct), p.hmac(key, ct), p.mac(key, ct), p.dh(key, p.publicKey(key))!]) {
        expect(Object.getPrototypeOf(x)).toBe(Uint8Array.prototype);
      }
    });
  });

  describe('XChaCha20-Poly1305', () => {
    it('draft-irtf-cfrg-xchacha-03 §A.3.1', () => {
      expect(toHex(p.xseal(XCHACHA.key, XCHACHA.nonce, XCHACHA.pt, XCHACHA.ad))).toBe(XCHACHA.ct);
      expect(toHex(p.xopen(XCHACHA.key, XCHACHA.nonce, hex(XCHACHA.ct), XCHACHA.ad))).toBe(toHex(XCHACHA.pt));
      const bad = hex(XCHACHA.ct);
      bad[3]! ^= 0x80;
      expect(p.xopen(XCHACHA.key, XCHACHA.nonce, bad, XCHACHA.ad)).toBeNull();
      expect(p.xopen(XCHACHA.key, XCHACHA.nonce, hex(XCHACHA.ct), new Uint8Array(12))).toBeNull();
      expect(p.xopen(XCHACHA.key, XCHACHA.nonce, new Uint8Array(10), XCHACHA.ad)).toBeNull();
    });

    it('cookie reply of the handshake vector', () => {
      const key = p.hash(utf8('cookie--'), hex(H.responder_static_public));
      const mac1 = hex(H.initiation_148).subarray(116, 132);
      const reply = hex(H.cookie_reply_64);
      expect(toHex(p.xseal(key, hex(H.cookie_nonce), hex(H.cookie), mac1))).toBe(toHex(reply.subarray(32)));
      expect(toHex(p.xopen(key, reply.subarray(8, 32), reply.subarray(32), mac1))).toBe(H.cookie);
    });
  });

  describe('KDF', () => {
    it('kdf1/2/3 equal HKDF-BLAKE2s (salt = key, info = ∅) and an explicit HMAC chain', () => {
      fc.assert(
        fc.property(bytes(32), fc.uint8Array({ maxLength: 64 }), (key, input) => {
          const ref = hkdf(blake2s, input, key, new Uint8Array(0), 96);
          const t0 = hmac(blake2s, key, input);
          const t1 = hmac(blake2s, t0, Uint8Array.of(1));
          const t2 = hmac(blake2s, t0, Uint8Array.of(...t1, 2));
          const t3 = hmac(blake2s, t0, Uint8Array.of(...t2, 3));
          expect(toHex(ref)).toBe(toHex(Uint8Array.of(...t1, ...t2, ...t3)));
          expect(toHex(kdf1(p, key, input))).toBe(toHex(t1));
          expect(kdf2(p, key, input).map(toHex)).toEqual([t1, t2].map(toHex));
          expect(kdf3(p, key, input).map(toHex)).toEqual([t1, t2, t3].map(toHex));
        }),
        { numRuns: 30 },
      );
    });
  });

  it('randomBytes', () => {
    const a = p.randomBytes(32);
    expect(a.length).toBe(32);
    expect(toHex(a)).not.toBe(toHex(p.randomBytes(32)));
    expect(p.randomBytes(0).length).toBe(0);
    expect(p.randomBytes(70000).length).toBe(70000);
  });
});

describe('raw ChaCha20-Poly1305 (RFC 8439 vectors, arbitrary nonces)', () => {
  it('@noble itself passes §2.8.2', () => {
    const { key, nonce, ad, pt, ct } = RFC8439_AEAD;
    expect(toHex(chacha20poly1305(key, nonce, ad).encrypt(pt))).toBe(ct);
  });

  describe.each([
    ['node', nodeSealRaw, nodeOpenRaw],
    ['noble', nobleSealRaw, nobleOpenRaw],
  ] as const)('%s', (_name, sealRaw, openRaw) => {
    it('§2.8.2 AEAD seal/open', () => {
      const { key, nonce, ad, pt, ct } = RFC8439_AEAD;
      expect(toHex(sealRaw(key, nonce, pt, ad))).toBe(ct);
      expect(toHex(openRaw(key, nonce, hex(ct), ad))).toBe(toHex(pt));
    });

    it('Appendix A.5 decryption', () => {
      const { key, nonce, ad, ct, pt } = RFC8439_A5;
      expect(pt.length).toBe(ct.length - 16);
      expect(toHex(openRaw(key, nonce, ct, ad))).toBe(toHex(pt));
      const bad = ct.slice();
      bad[bad.length - 1]! ^= 1;
      expect(openRaw(key, nonce, bad, ad)).toBeNull();
      expect(toHex(sealRaw(key, nonce, pt, ad))).toBe(toHex(ct));
    });
  });
});

describe('TAI64N', () => {
  it('unix 0 → 400000000000000a00000000', () => {
    expect(toHex(tai64n(0))).toBe('400000000000000a00000000');
  });

  it('known times', () => {
    // timestamp of the handshake vector: 0x6553f10a − 10 = 1700000000 s
    expect(toHex(tai64n(1_700_000_000_000))).toBe(H.tai64n_timestamp);
    expect(toHex(tai64n(1_700_000_000_123, 456_789))).toBe('400000006553f10a' + (123_456_789).toString(16).padStart(8, '0'));
    // more than 32 bits of seconds, and before 1970
    expect(toHex(tai64n(2 ** 32 * 1000))).toBe('400000010000000a00000000');
    expect(toHex(tai64n(-11_000))).toBe('3fffffffffffffff00000000');
    expect(toHex(tai64n(-1))).toBe('4000000000000009' + (999_000_000).toString(16).padStart(8, '0'));
    expect(() => tai64n(0, 1_000_000)).toThrow(RangeError);
  });

  it('tai64nNow whitens the nanoseconds to multiples of 2^24 ns', () => {
    const t = tai64nNow(1_700_000_000_999);
    const ns = new DataView(t.buffer).getUint32(8);
    expect(ns % TAI64N_WHITEN_NS).toBe(0);
    expect(ns).toBeLessThanOrEqual(999_000_000);
    expect(999_000_000 - ns).toBeLessThan(TAI64N_WHITEN_NS);
    expect(toHex(t.subarray(0, 8))).toBe('400000006553f10a');
    // within one window equal, across windows increasing
    expect(compareTai64n(tai64nNow(1000), tai64nNow(1016))).toBe(0);
    expect(compareTai64n(tai64nNow(1000), tai64nNow(1017))).toBeLessThan(0);
    const now = tai64nNow();
    expect(compareTai64n(now, tai64n(Date.now() + 1))).toBeLessThan(0);
  });

  it('compareTai64n is big-endian byte order = time order', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1e12, max: 1e13 }), fc.integer({ min: -1e12, max: 1e13 }), (a, b) => {
        const c = compareTai64n(tai64n(a), tai64n(b));
        expect(Math.sign(c)).toBe(Math.sign(a - b));
      }),
    );
    expect(compareTai64n(hex('400000000000000a00000001'), hex('400000000000000a00000000'))).toBeGreaterThan(0);
    expect(compareTai64n(hex('400000000000000b00000000'), hex('400000000000000aff000000'))).toBeGreaterThan(0);
  });
});

describe('getCrypto / setCrypto / loadCrypto', () => {
  it('loadCrypto picks the injected native provider unless TSGUARD_CRYPTO says node or noble; getCrypto alone never does; setCrypto switches', async () => {
    const env = process.env['TSGUARD_CRYPTO'];
    const nativeCrypto = loadNativeCrypto();
    expect(nativeCrypto?.name).toBe('native'); // the addon is built for the tests
    try {
      for (const [value, chosen, withoutNative] of [
        ['noble', nobleCrypto, nobleCrypto],
        ['node', nodeCrypto, nodeCrypto],
        [undefined, nativeCrypto, nodeCrypto],
      ] as const) {
        if (value === undefined) delete process.env['TSGUARD_CRYPTO'];
        else process.env['TSGUARD_CRYPTO'] = value;
        setCrypto(null);
        expect(getCrypto()).toBe(withoutNative);
        setCrypto(null);
        expect(await loadCrypto(loadNativeCrypto)).toBe(chosen);
        expect(getCrypto()).toBe(chosen);
        expect(await loadCrypto(() => nobleCrypto)).toBe(chosen); // a provider in use is kept
      }
      setCrypto(null);
      expect(await loadCrypto(() => null)).toBe(nodeCrypto); // no native provider: node
      setCrypto(nobleCrypto);
      expect(getCrypto()).toBe(nobleCrypto);
    } finally {
      if (env === undefined) delete process.env['TSGUARD_CRYPTO'];
      else process.env['TSGUARD_CRYPTO'] = env;
      setCrypto(null);
      await loadCrypto(loadNativeCrypto);
    }
  });
});

describe('loading the @noble provider on demand', () => {
  it('importing the crypto index does not load @noble; loadCrypto() loads it only when chosen', async () => {
    const env = process.env['TSGUARD_CRYPTO'];
    vi.resetModules();
    try {
      delete process.env['TSGUARD_CRYPTO'];
      const fresh = await import('../src/crypto/index.js');
      const { loadedProviders } = await import('../src/crypto/loaded.js');
      expect(loadedProviders.noble).toBeNull();
      expect((await fresh.loadCrypto()).name).not.toBe('noble');
      expect(loadedProviders.noble).toBeNull();
      process.env['TSGUARD_CRYPTO'] = 'noble';
      fresh.setCrypto(null);
      expect(() => fresh.getCrypto()).toThrow(/TSGUARD_CRYPTO=noble.*not loaded/);
      expect((await fresh.loadCrypto()).name).toBe('noble');
      expect(loadedProviders.noble).toBe(fresh.getCrypto());
    } finally {
      if (env === undefined) delete process.env['TSGUARD_CRYPTO'];
      else process.env['TSGUARD_CRYPTO'] = env;
      vi.resetModules();
    }
  });
});

describe('runtime without node:crypto', () => {
  it('falls back to @noble and the node provider refuses to run', async () => {
    const spy = vi.spyOn(process, 'getBuiltinModule').mockReturnValue(undefined);
    vi.resetModules();
    try {
      const fresh = await import('../src/crypto/index.js');
      expect(fresh.nodeCryptoAvailable).toBe(false);
      // @noble is loaded on demand: getCrypto() says so until loadCrypto() has loaded it.
      expect(() => fresh.getCrypto()).toThrow(/not loaded: await loadCrypto\(\)/);
      expect((await fresh.loadCrypto()).name).toBe('noble');
      expect(fresh.getCrypto().name).toBe('noble');
      expect(() => fresh.nodeCrypto.hash(new Uint8Array(1))).toThrow(/not available/);
      expect(() => fresh.setCrypto(fresh.nodeCrypto)).toThrow(/not available/);
      expect(toHex(fresh.getCrypto().hash(utf8('abc')))).toBe(V.blake2s_abc);
    } finally {
      spy.mockRestore();
      vi.resetModules();
    }
  });
});
