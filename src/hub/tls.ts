/**
 * The registration API's TLS identity: a self-signed ECDSA P-256 certificate
 * that the hub creates on first start and keeps in its data directory, and
 * the pin agents check it against.
 *
 * The pin is `sha256:HEX`, the SHA-256 of the certificate's
 * SubjectPublicKeyInfo (DER) — the same construction as kubeadm's
 * `--discovery-token-ca-cert-hash`, and `openssl x509 -pubkey -noout | openssl pkey
 * -pubin -outform der | sha256sum` computes it. Because agents pin the key,
 * names and validity dates in the certificate do not matter to them; the
 * certificate does not expire (notAfter 9999-12-31, RFC 5280 §4.1.2.5), and
 * its subjectAltName lists the host names and addresses known at creation
 * for other clients (curl --cacert) only.
 *
 * The certificate is built here with a small DER encoder and signed with
 * `node:crypto` (no dependency). Key and certificate are stored together in
 * one PEM file (`api-tls.pem`, mode 0600) created with the same
 * write-then-link step as the hub key, so two processes creating it at once
 * (the hub and `hub token create`) end up with one pair.
 * @module
 */

import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  timingSafeEqual,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { createSecretFileExclusiveSync, readSecretFileSync } from '../os/fsutil.js';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseIp } from '../routing/ip.js';

/** File name of the API key + certificate inside the hub data directory. */
export const API_TLS_FILE = 'api-tls.pem';

/** A TLS identity for the registration API. */
export interface ApiTlsIdentity {
  /** PKCS#8 private key, PEM. */
  keyPem: string;
  /** The certificate, PEM. */
  certPem: string;
  /** `sha256:HEX` of the certificate's SubjectPublicKeyInfo. */
  pin: string;
}

// ─── DER ─────────────────────────────────────────────────────────────────────

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.of(tag), derLength(content.length), content]);
}

const seq = (...parts: Buffer[]) => tlv(0x30, Buffer.concat(parts));
const set = (...parts: Buffer[]) => tlv(0x31, Buffer.concat(parts));
const octets = (b: Buffer) => tlv(0x04, b);
const bitString = (b: Buffer, unused = 0) => tlv(0x03, Buffer.concat([Buffer.of(unused), b]));
const explicit = (n: number, content: Buffer) => tlv(0xa0 | n, content);

function integer(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0 && (b[i + 1]! & 0x80) === 0) i++;
  const v = b.subarray(i);
  return tlv(0x02, (v[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.of(0), v]) : v);
}

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out: number[] = [parts[0]! * 40 + parts[1]!];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

function time(d: Date): Buffer {
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const rest = `${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`;
  const y = d.getUTCFullYear();
  // RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
  return y < 2050 ? tlv(0x17, Buffer.from(`${pad(y % 100)}${rest}`, 'ascii')) : tlv(0x18, Buffer.from(`${pad(y, 4)}${rest}`, 'ascii'));
}

const OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2';

function name(cn: string): Buffer {
  return seq(set(seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(cn, 'utf8')))));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(id), ...(critical ? [tlv(0x01, Buffer.of(0xff))] : []), octets(value));
}

/**
 * Create a self-signed ECDSA P-256 certificate for the given host names and
 * IP addresses (subjectAltName), valid from an hour ago with no expiry.
 */
export function createSelfSignedCertificate(hosts: readonly string[] = []): ApiTlsIdentity {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01; // positive, non-zero, 16 bytes
  const sans: Buffer[] = [];
  for (const h of new Set(hosts)) {
    let ip: Uint8Array | null = null;
    try {
      ip = parseIp(h).bytes;
    } catch {
      ip = null;
    }
    if (ip !== null) sans.push(tlv(0x87, Buffer.from(ip)));
    else if (/^[A-Za-z0-9.-]{1,253}$/.test(h)) sans.push(tlv(0x82, Buffer.from(h, 'ascii')));
  }
  const exts: Buffer[] = [
    extension('2.5.29.19', true, seq()), // basicConstraints: not a CA
    extension('2.5.29.15', true, bitString(Buffer.of(0x80), 7)), // keyUsage: digitalSignature
    extension('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'))), // extKeyUsage: serverAuth
  ];
  if (sans.length > 0) exts.push(extension('2.5.29.17', false, seq(...sans)));
  const subject = name('tsguard hub registration API');
  const tbs = seq(
    explicit(0, integer(Buffer.of(2))),
    integer(serial),
    seq(oid(OID_ECDSA_SHA256)),
    subject,
    seq(time(new Date(Date.now() - 3600_000)), tlv(0x18, Buffer.from('99991231235959Z', 'ascii'))),
    subject,
    spki,
    explicit(3, seq(...exts)),
  );
  const signature = sign('sha256', tbs, privateKey); // DER-encoded ECDSA signature
  const der = seq(tbs, seq(oid(OID_ECDSA_SHA256)), bitString(signature));
  const certPem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  return { keyPem, certPem, pin: certificatePin(certPem) };
}

// ─── pins ────────────────────────────────────────────────────────────────────

/** `sha256:HEX` of the SubjectPublicKeyInfo of a certificate (PEM, DER or parsed). */
export function certificatePin(cert: string | Buffer | X509Certificate): string {
  const x = cert instanceof X509Certificate ? cert : new X509Certificate(cert);
  const spki = x.publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

/**
 * Normalise a pin given by a user (`sha256:HEX`, 64 hex digits, any case).
 * @throws Error saying what is wrong
 */
export function parsePin(text: string): string {
  const m = /^sha256:([0-9a-fA-F]{64})$/.exec(text.trim());
  if (m === null) throw new Error(`certificate hash "${text}" is not valid: expected sha256: followed by 64 hexadecimal digits, as printed by "tsguard hub token create"`);
  return `sha256:${m[1]!.toLowerCase()}`;
}

/** Constant-time comparison of two normalised pins. */
export function pinsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

// ─── storage ─────────────────────────────────────────────────────────────────

function parseIdentity(text: string, path: string): ApiTlsIdentity {
  const key = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n?/.exec(text)?.[0];
  const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(text)?.[0];
  if (key === undefined || cert === undefined) {
    throw new Error(`${path} does not hold a private key and a certificate; delete it to create a new one (agents then need the new --ca-hash)`);
  }
  let k: KeyObject;
  let x: X509Certificate;
  try {
    k = createPrivateKey(key);
    x = new X509Certificate(cert);
  } catch (e) {
    throw new Error(`${path} is corrupt (${(e as Error).message}); delete it to create a new one (agents then need the new --ca-hash)`);
  }
  if (!x.checkPrivateKey(k)) throw new Error(`${path}: the private key does not belong to the certificate; delete the file to create a new pair`);
  return { keyPem: key.endsWith('\n') ? key : key + '\n', certPem: cert.endsWith('\n') ? cert : cert + '\n', pin: certificatePin(x) };
}

/**
 * Load the API's key and certificate from `DATA_DIR/api-tls.pem`, creating
 * them on first use (see the module documentation). `hosts` go into the
 * subjectAltName of a new certificate (the host name and loopback addresses
 * are always included).
 * @throws Error when the file cannot be read, written or parsed
 */
export function loadOrCreateApiTls(dataDir: string, hosts: readonly string[] = []): ApiTlsIdentity {
  const path = join(dataDir, API_TLS_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    let text: string | null;
    try {
      text = readSecretFileSync(path);
    } catch (e) {
      throw new Error(`cannot read ${path}: ${(e as Error).message}`);
    }
    if (text !== null) return parseIdentity(text, path);
    const id = createSelfSignedCertificate([...hosts, hostname(), 'localhost', '127.0.0.1', '::1']);
    try {
      if (createSecretFileExclusiveSync(path, id.keyPem + id.certPem)) return id;
    } catch (e) {
      throw new Error(`cannot create ${path}: ${(e as Error).message}`);
    }
    // another process won: use its pair
  }
  throw new Error(`cannot read or create ${path}`);
}
