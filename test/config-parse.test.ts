/** Configuration file parsing, serialization and file-name resolution (src/config/wgquick.ts, fsutil.ts). */
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { keyToBase64, keyToHex } from '../src/crypto/keys.js';
import { worldAccessibleWarning, writeFileAtomic0600 } from '../src/os/fsutil.js';
import {
  ConfigError,
  configPathFor,
  parseConfig,
  serializeConfig,
  type ConfigMode,
  type WgConfig,
} from '../src/config/wgquick.js';
import { configFromState, showconf } from '../src/config/load.js';
import { resolveEndpoint } from '../src/os/resolve.js';
import { parseGetReply, type UapiDeviceState } from '../src/uapi/client.js';
import { formatIp, formatPrefix, maskPrefix, parsePrefix, type Prefix } from '../src/routing/ip.js';

const key = (n: number): string => keyToBase64(new Uint8Array(32).fill(n));
const PRIV = key(1);
const PUB1 = key(2);
const PUB2 = key(3);
const PSK = key(4);

function parseError(text: string, mode: ConfigMode = 'wg-quick'): ConfigError {
  try {
    parseConfig(text, 'wg0.conf', mode);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('parseConfig: valid files', () => {
  it('parses a full wg-quick file with mixed case, comments, repeated keys and IPv6', () => {
    const text = [
      '# a comment line',
      '[interface]   # section names are case-insensitive',
      'privatekey=' + PRIV,
      '  LISTENPORT   =   51820  ',
      'FwMark = 0x1234',
      'Address = 10.0.0.1/24, fd00::1/64',
      'address = 10.0.1.1',
      'DNS = 10.0.0.53, FD00::53 , example.com,corp.example',
      'MTU = 1420',
      'Table = 1234',
      'PreUp = echo pre %i',
      'PostUp = iptables -A FORWARD -i %i -j ACCEPT; echo "a  b"',
      'PostUp = echo second',
      'PreDown = echo pd',
      'PostDown = echo po # trailing comment',
      'SaveConfig = True',
      '',
      '[Peer]',
      'PublicKey = ' + PUB1,
      'PresharedKey = ' + PSK,
      'AllowedIPs = 10.0.0.2/32, 192.168.1.7/24',
      'AllowedIPs = fd00::2/128',
      'Endpoint = [2001:DB8::1]:51820',
      'PersistentKeepalive = 25',
      '',
      '[PEER]',
      'publicKEY = ' + PUB2,
      'allowedips = 0.0.0.0/0, ::/0',
      'endpoint = vpn.example.com:443',
      'PersistentKeepalive = off',
      '',
    ].join('\r\n');
    const cfg = parseConfig(text, 'wg0.conf', 'wg-quick');
    const i = cfg.interface;
    expect(keyToBase64(i.privateKey!)).toBe(PRIV);
    expect(i.listenPort).toBe(51820);
    expect(i.fwmark).toBe(0x1234);
    expect(i.addresses.map(formatPrefix)).toEqual(['10.0.0.1/24', 'fd00::1/64', '10.0.1.1/32']);
    expect(i.dns).toEqual(['10.0.0.53', 'fd00::53']);
    expect(i.dnsSearch).toEqual(['example.com', 'corp.example']);
    expect(i.mtu).toBe(1420);
    expect(i.table).toBe('1234');
    expect(i.preUp).toEqual(['echo pre %i']);
    expect(i.postUp).toEqual(['iptables -A FORWARD -i %i -j ACCEPT; echo "a  b"', 'echo second']);
    expect(i.preDown).toEqual(['echo pd']);
    expect(i.postDown).toEqual(['echo po']);
    expect(i.saveConfig).toBe(true);
    expect(cfg.peers).toHaveLength(2);
    const [a, b] = cfg.peers;
    expect(keyToBase64(a!.publicKey)).toBe(PUB1);
    expect(keyToBase64(a!.presharedKey!)).toBe(PSK);
    expect(a!.allowedIps.map(formatPrefix)).toEqual(['10.0.0.2/32', '192.168.1.7/24', 'fd00::2/128']);
    expect(a!.endpoint).toEqual({ host: '2001:db8::1', port: 51820 });
    expect(a!.persistentKeepalive).toBe(25);
    expect(a!.line).toBe(18);
    expect(keyToBase64(b!.publicKey)).toBe(PUB2);
    expect(b!.allowedIps).toEqual([
      { family: 4, bytes: new Uint8Array(4), bits: 0 },
      { family: 6, bytes: new Uint8Array(16), bits: 0 },
    ]);
    expect(b!.endpoint).toEqual({ host: 'vpn.example.com', port: 443 });
    expect(b!.persistentKeepalive).toBe(0);
    expect(b!.line).toBe(26);
  });

  it('accepts an empty file, decimal and "off" FwMark, Table off/auto, a bare wg file', () => {
    expect(parseConfig('', 'x.conf', 'wg')).toEqual(parseConfig('# nothing\n\n', 'x.conf', 'wg-quick'));
    expect(parseConfig('[Interface]\nFwMark = 51820\n', 'f', 'wg').interface.fwmark).toBe(51820);
    expect(parseConfig('[Interface]\nFwMark = off\n', 'f', 'wg').interface.fwmark).toBe(0);
    expect(parseConfig('[Interface]\nTable = Off\n', 'f', 'wg-quick').interface.table).toBe('off');
    expect(parseConfig('[Interface]\nTable = auto\n', 'f', 'wg-quick').interface.table).toBe('auto');
    expect(parseConfig('[Interface]\nTable = vpn_table\n', 'f', 'wg-quick').interface.table).toBe('vpn_table');
    const wg = parseConfig(`[Interface]\nPrivateKey = ${PRIV}\nListenPort = 0\n[Peer]\nPublicKey = ${PUB1}\nAllowedIPs =\nEndpoint = 192.0.2.1:1\n`, 'f', 'wg');
    expect(wg.peers[0]!.allowedIps).toEqual([]);
    expect(wg.peers[0]!.endpoint).toEqual({ host: '192.0.2.1', port: 1 });
    expect(wg.interface.listenPort).toBe(0);
  });
});

describe('prefixes of Address and AllowedIPs (host bits kept)', () => {
  const keep = (t: string): Prefix => parsePrefix(t, 'keep');
  it('parses, canonicalizes and masks', () => {
    expect(keep('10.1.2.3')).toEqual({ family: 4, bytes: new Uint8Array([10, 1, 2, 3]), bits: 32 });
    expect(formatPrefix(keep('FD00:0:0::1/64'))).toBe('fd00::1/64');
    expect(formatPrefix(keep('::ffff:1.2.3.4/128'))).toBe('::ffff:1.2.3.4/128');
    expect(formatPrefix(keep('1:0:0:2:0:0:0:3/128'))).toBe('1:0:0:2::3/128');
    expect(formatPrefix(keep('10.0.0.1/24'))).toBe('10.0.0.1/24');
    expect(formatPrefix(maskPrefix(keep('10.1.2.3/9')))).toBe('10.0.0.0/9');
    expect(formatPrefix(maskPrefix(keep('fd00:ffff::1/17')))).toBe('fd00:8000::/17');
    expect(formatPrefix(maskPrefix(keep('1.2.3.4/0')))).toBe('0.0.0.0/0');
    expect(formatPrefix(maskPrefix(keep('1.2.3.4/32')))).toBe('1.2.3.4/32');
  });
  it('throws clear errors', () => {
    expect(() => keep('1.2.3.4/33')).toThrow(/"1.2.3.4\/33" is not a valid IP prefix: the length must be a number from 0 to 32/);
    expect(() => keep('fd00::/129')).toThrow(/from 0 to 128/);
    expect(() => keep('10.0.0.256/8')).toThrow(/"10.0.0.256" is not a valid IP address/);
    expect(() => keep('01.2.3.4/8')).toThrow(/"01.2.3.4" is not a valid IP address/);
    expect(() => keep('fe80::1%eth0/64')).toThrow(/zone ids are not supported/);
    expect(() => keep('10.0.0.0/')).toThrow(/the length must be a number/);
  });
});

describe('parseConfig: errors carry FILE:LINE and a fix', () => {
  const cases: Array<[string, string, number, RegExp, ConfigMode?]> = [
    ['unknown key', '[Interface]\nPrivatKey = abc\n', 2, /unknown key "PrivatKey" \(check the spelling/],
    ['key outside a section', 'ListenPort = 1\n', 1, /ListenPort is outside any section \(put it under \[Interface\] or \[Peer\]\)/],
    ['unknown section', '[Interfaces]\n', 1, /unknown section \[Interfaces\] \(sections are \[Interface\] and \[Peer\]\)/],
    ['line without =', '[Interface]\nListenPort 5\n', 2, /not "Key = Value"/],
    ['peer without PublicKey', `[Interface]\n\n[Peer]\nAllowedIPs = 10.0.0.0/8\n[Peer]\nPublicKey = ${PUB1}\n`, 3, /\[Peer\] section has no PublicKey \(add "PublicKey = /],
    ['peer without PublicKey at end', `[Peer]\nPublicKey = ${PUB1}\n\n[Peer]\n`, 4, /has no PublicKey/],
    ['duplicate ListenPort', '[Interface]\nListenPort = 1\nListenPort = 2\n', 3, /ListenPort is given twice in this section \(first at line 2; keep only one\)/],
    ['duplicate Endpoint', `[Peer]\nPublicKey = ${PUB1}\nEndpoint = 1.2.3.4:5\nendpoint = 1.2.3.4:6\n`, 4, /Endpoint is given twice.*line 3/],
    ['duplicate peer', `[Peer]\nPublicKey = ${PUB1}\n[Peer]\nPublicKey = ${PUB1}\n`, 3, /already defined at line 1/],
    ['bad public key', '[Peer]\nPublicKey = abc=\n', 2, /PublicKey "abc=" is not a valid key: 4 characters \(expected 44 base64/],
    ['port out of range', '[Interface]\nListenPort = 65536\n', 2, /ListenPort "65536" is not a port number \(use 0 to 65535\)/],
    ['negative port', '[Interface]\nListenPort = -1\n', 2, /ListenPort "-1"/],
    ['fwmark too big', '[Interface]\nFwMark = 0x100000000\n', 2, /FwMark "0x100000000" is not a mark/],
    ['mtu too small', '[Interface]\nMTU = 20\n', 2, /MTU "20" is out of range \(use a number from 68 to 65535/],
    ['keepalive too big', `[Peer]\nPublicKey = ${PUB1}\nPersistentKeepalive = 70000\n`, 3, /PersistentKeepalive "70000" is out of range \(use "off" or 0 to 65535/],
    ['bad table', '[Interface]\nTable = 0\n', 2, /Table 0 is out of range/],
    ['bad table name', '[Interface]\nTable = a b\n', 2, /Table "a b" is not valid/],
    ['bad SaveConfig', '[Interface]\nSaveConfig = yes\n', 2, /SaveConfig "yes" is neither true nor false/],
    ['bad address', '[Interface]\nAddress = 10.0.0.1/24, 10.0.0.300/24\n', 2, /Address: "10.0.0.300\/24" is not a valid IP prefix: "10.0.0.300" is not a valid IP address \(expected e.g. 10.0.0.2\/32/],
    ['bad prefix', `[Peer]\nPublicKey = ${PUB1}\nAllowedIPs = 10.0.0.0/33\n`, 3, /AllowedIPs: "10.0.0.0\/33" is not a valid IP prefix: the length must be a number from 0 to 32 \(expected/],
    ['bad dns', '[Interface]\nDNS = 10.0.0\n', 2, /DNS server "10.0.0" is not an IPv4 or IPv6 address/],
    ['bad search domain', '[Interface]\nDNS = exa mple\n', 2, /DNS "exa mple" is neither an IP address nor a search domain/],
    ['endpoint without port', `[Peer]\nPublicKey = ${PUB1}\nEndpoint = 1.2.3.4\n`, 3, /Endpoint "1.2.3.4": has no port/],
    ['endpoint bare IPv6', `[Peer]\nPublicKey = ${PUB1}\nEndpoint = 2001:db8::1:51820\n`, 3, /IPv6 addresses need brackets/],
    ['endpoint bad port', `[Peer]\nPublicKey = ${PUB1}\nEndpoint = host:99999\n`, 3, /port "99999" is out of range \(use 1 to 65535\)/],
    ['endpoint bad bracket', `[Peer]\nPublicKey = ${PUB1}\nEndpoint = [1.2.3.4]:5\n`, 3, /"1.2.3.4" is not an IPv6 address/],
    ['endpoint bad host', `[Peer]\nPublicKey = ${PUB1}\nEndpoint = bad_host!:5\n`, 3, /not a valid host name/],
    ['peer key in interface', '[Interface]\nAllowedIPs = 10.0.0.0/8\n', 2, /AllowedIPs is a \[Peer\] key.*move it into a \[Peer\] section/],
    ['interface key in peer', `[Peer]\nPublicKey = ${PUB1}\nAddress = 10.0.0.1/24\n`, 3, /Address is an \[Interface\] key/],
    ['empty value', '[Interface]\nPostUp =\n', 2, /PostUp has no value/],
    ['wg mode: Address', '[Interface]\nAddress = 10.0.0.1/24\n', 2, /Address is a wg-quick key that wg setconf does not accept/, 'wg'],
    ['wg mode: DNS', '[Interface]\n\nDNS = 1.1.1.1\n', 3, /DNS is a wg-quick key/, 'wg'],
    ['wg mode: MTU', '[Interface]\nmtu = 1420\n', 2, /MTU is a wg-quick key/, 'wg'],
    ['wg mode: Table', '[Interface]\nTable = off\n', 2, /Table is a wg-quick key/, 'wg'],
    ['wg mode: PostUp', '[Interface]\nPostUp = true\n', 2, /PostUp is a wg-quick key/, 'wg'],
    ['wg mode: SaveConfig', '[Interface]\nSaveConfig = false\n', 2, /SaveConfig is a wg-quick key/, 'wg'],
  ];
  it.each(cases)('%s', (_name, text, line, re, mode) => {
    const e = parseError(text, mode ?? 'wg-quick');
    expect(e.file).toBe('wg0.conf');
    expect(e.line).toBe(line);
    expect(e.message.startsWith(`wg0.conf:${line}: `)).toBe(true);
    expect(e.message).toMatch(re);
    expect(e.message).toMatch(/\(.+\)$/); // ends with how to fix it
  });

  it('reports the first error exactly', () => {
    const e = parseError('[Interface]\nListenPort = x\nMTU = 1\n');
    expect(e.message).toBe('wg0.conf:2: ListenPort "x" is not a port number (use 0 to 65535)');
  });

  it('never shows private or preshared key values', () => {
    const secret = 'c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0cw'; // 42 chars: almost a key
    const texts = [
      `[Interface]\nPrivateKey = ${secret}\n`,
      `[Interface]\nPrivateKey = ${secret}==\n`,
      `[Interface]\nPrivateKey = ${secret}A\n`,
      `[Peer]\nPublicKey = ${PUB1}\nPresharedKey = ${secret}\n`,
      `[Interface]\nPrivateKey = ${PRIV}\nPrivateKey = ${PRIV}\n`,
      `[Peer]\nPrivateKey = ${PRIV}\n`,
      `PrivateKey = ${PRIV}\n`,
      `[Interface]\n${PRIV}\n`, // a pasted key on its own line
      `[Interface]\n${secret}=\n`,
      `[Interface]\n${secret}= x\n`,
      `[${PRIV}]\n`,
      `[Peer]\nPresharedKey = ${PSK}\n`,
    ];
    for (const t of texts) {
      for (const mode of ['wg', 'wg-quick'] as const) {
        const e = parseError(t, mode);
        for (const s of [secret, secret.slice(0, 12), PRIV, PRIV.slice(0, 12), PSK, PSK.slice(0, 12)]) {
          expect(e.message).not.toContain(s);
        }
      }
    }
    expect(parseError(`[Interface]\nPrivateKey = ${secret}\n`).message).toBe(
      'wg0.conf:2: PrivateKey is not a valid key: 42 characters (expected 44 base64 characters ending in "=", as printed by "wg genkey")',
    );
  });
});

/** Drop the source line numbers, which a round trip does not keep. */
const noLines = (c: WgConfig): unknown => ({ ...c, peers: c.peers.map(({ line: _line, ...p }) => p) });

describe('serializeConfig', () => {
  it('writes wg showconf style and strips wg-quick keys in wg mode', () => {
    const text = `[Interface]\nAddress = 10.0.0.1/24\nDNS = 1.1.1.1, lan\nPrivateKey = ${PRIV}\nListenPort = 5\nFwMark = 51820\nPostUp = echo %i\n[Peer]\nPublicKey = ${PUB1}\nAllowedIPs = 10.0.0.0/8, ::/0\nEndpoint = [fd00::1]:5\nPersistentKeepalive = 25\n`;
    const cfg = parseConfig(text, 'f', 'wg-quick');
    expect(serializeConfig(cfg, 'wg-quick')).toBe(
      `[Interface]\nAddress = 10.0.0.1/24\nDNS = 1.1.1.1, lan\nPostUp = echo %i\nListenPort = 5\nFwMark = 0xca6c\nPrivateKey = ${PRIV}\n\n[Peer]\nPublicKey = ${PUB1}\nAllowedIPs = 10.0.0.0/8, ::/0\nEndpoint = [fd00::1]:5\nPersistentKeepalive = 25\n`,
    );
    const stripped = serializeConfig(cfg, 'wg');
    expect(stripped).not.toMatch(/Address|DNS|PostUp/);
    expect(noLines(parseConfig(stripped, 'f', 'wg'))).toEqual(
      noLines({ ...cfg, interface: { ...cfg.interface, addresses: [], dns: [], dnsSearch: [], postUp: [] } }),
    );
  });

  const arbKey = fc.uint8Array({ minLength: 32, maxLength: 32 });
  const arbV4 = fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([a, b]): Prefix => parsePrefix(`${a}/${b}`, 'keep'));
  const arbV6 = fc
    .tuple(fc.ipV6(), fc.integer({ min: 0, max: 128 }))
    .map(([a, b]): Prefix => parsePrefix(`${a}/${b}`, 'keep'));
  const arbCidr = fc.oneof(arbV4, arbV6);
  const arbHook = fc.stringMatching(/^[a-z0-9%][a-z0-9 %;|&$"'=/.-]{0,30}[a-z0-9%]$/);
  const arbHost = fc.oneof(fc.ipV4(), fc.ipV6().map((a) => formatIp(parsePrefix(a).bytes)), fc.domain());
  const opt = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined });
  const arbPeer = fc.record({
    publicKey: arbKey,
    presharedKey: opt(arbKey),
    allowedIps: fc.array(arbCidr, { maxLength: 4 }),
    endpoint: opt(fc.record({ host: arbHost, port: fc.integer({ min: 1, max: 65535 }) })),
    persistentKeepalive: opt(fc.integer({ min: 0, max: 65535 })),
    line: fc.constant(0),
  });
  const arbConfig = (quick: boolean): fc.Arbitrary<WgConfig> =>
    fc.record({
      interface: fc.record({
        privateKey: opt(arbKey),
        listenPort: opt(fc.integer({ min: 0, max: 65535 })),
        fwmark: opt(fc.integer({ min: 0, max: 0xffffffff })),
        addresses: quick ? fc.array(arbCidr, { maxLength: 3 }) : fc.constant([]),
        dns: quick ? fc.array(fc.oneof(fc.ipV4(), fc.ipV6().map((a) => formatIp(parsePrefix(a).bytes))), { maxLength: 2 }) : fc.constant([]),
        dnsSearch: quick ? fc.array(fc.domain(), { maxLength: 2 }) : fc.constant([]),
        mtu: quick ? opt(fc.integer({ min: 68, max: 65535 })) : fc.constant(undefined),
        table: quick ? opt(fc.constantFrom('off', 'auto', '1234', 'vpn')) : fc.constant(undefined),
        preUp: quick ? fc.array(arbHook, { maxLength: 2 }) : fc.constant([]),
        postUp: quick ? fc.array(arbHook, { maxLength: 2 }) : fc.constant([]),
        preDown: quick ? fc.array(arbHook, { maxLength: 2 }) : fc.constant([]),
        postDown: quick ? fc.array(arbHook, { maxLength: 2 }) : fc.constant([]),
        saveConfig: quick ? fc.boolean() : fc.constant(false),
      }),
      peers: fc.uniqueArray(arbPeer, { maxLength: 4, selector: (p) => keyToBase64(p.publicKey) }),
    });
  /** Remove the undefined optional fields, which the parser never sets. */
  const clean = (c: WgConfig): WgConfig => JSON.parse(JSON.stringify(c, (_k, v) => (v instanceof Uint8Array ? Array.from(v) : v)));

  for (const mode of ['wg-quick', 'wg'] as const) {
    it(`round trips (property, ${mode} mode)`, () => {
      fc.assert(
        fc.property(arbConfig(mode === 'wg-quick'), (cfg) => {
          const text = serializeConfig(cfg, mode);
          const back = parseConfig(text, 'f', mode);
          expect(clean(noLines(back) as WgConfig)).toEqual(clean(noLines(cfg) as WgConfig));
          expect(serializeConfig(back, mode)).toBe(text);
        }),
        { numRuns: 300 },
      );
    });
  }
});

describe('resolveEndpoint', () => {
  it('keeps literals, takes the first answer as wg does (getaddrinfo order), names the host on failure', async () => {
    expect(await resolveEndpoint('FD00::1', 5)).toEqual({ host: 'fd00::1', port: 5, family: 6 });
    expect(await resolveEndpoint('192.0.2.1', 5)).toEqual({ host: '192.0.2.1', port: 5, family: 4 });
    const both = async (): Promise<Array<{ address: string; family: number }>> => [
      { address: '2001:db8::1', family: 6 },
      { address: '192.0.2.7', family: 4 },
    ];
    expect(await resolveEndpoint('vpn.example', 51820, both)).toEqual({ host: '2001:db8::1', port: 51820, family: 6 });
    const v4first = async (): Promise<Array<{ address: string; family: number }>> => [
      { address: '192.0.2.7', family: 4 },
      { address: '2001:db8::1', family: 6 },
    ];
    expect(await resolveEndpoint('vpn.example', 51820, v4first)).toEqual({ host: '192.0.2.7', port: 51820, family: 4 });
    expect(await resolveEndpoint('fe80::1%eth0', 7)).toEqual({ host: 'fe80::1%eth0', port: 7, family: 6 });
    const none = async (): Promise<Array<{ address: string; family: number }>> => [];
    await expect(resolveEndpoint('vpn.example', 1, none)).rejects.toThrow(/no IPv4 or IPv6 address/);
    const v6only = async (): Promise<Array<{ address: string; family: number }>> => [{ address: '2001:DB8::1', family: 6 }];
    expect(await resolveEndpoint('vpn.example', 1, v6only)).toEqual({ host: '2001:db8::1', port: 1, family: 6 });
    const fail = async (): Promise<never> => {
      throw Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
    };
    await expect(resolveEndpoint('nope.invalid', 1, fail)).rejects.toThrow(
      'could not resolve endpoint host "nope.invalid": name not found (check the name and the network, or use an IP address)',
    );
  });
});

describe('configPathFor', () => {
  it('maps names and paths like wg-quick', () => {
    expect(configPathFor('wg0')).toEqual({ path: '/etc/wireguard/wg0.conf', ifname: 'wg0' });
    expect(configPathFor('a_b=c+d.e-f')).toEqual({ path: '/etc/wireguard/a_b=c+d.e-f.conf', ifname: 'a_b=c+d.e-f' });
    expect(configPathFor('wg0', '/tmp/x/')).toEqual({ path: '/tmp/x/wg0.conf', ifname: 'wg0' });
    // A bare "wg0.conf" is a valid interface name, so it means /etc/wireguard/wg0.conf.conf (as in wg-quick).
    expect(configPathFor('wg0.conf').path).toBe('/etc/wireguard/wg0.conf.conf');
    expect(configPathFor('./wg0.conf')).toEqual({ path: './wg0.conf', ifname: 'wg0' });
    expect(configPathFor('/srv/vpn/office.conf')).toEqual({ path: '/srv/vpn/office.conf', ifname: 'office' });
  });
  it('rejects bad names', () => {
    expect(() => configPathFor('/srv/vpn/office.txt')).toThrow(/neither an interface name nor a file ending in \.conf/);
    expect(() => configPathFor('averyveryverylongname')).toThrow(/ending in \.conf/);
    expect(() => configPathFor('/x/averyveryverylongname.conf')).toThrow(/"averyveryverylongname" is not a valid interface name/);
    expect(() => configPathFor('/x/bad name.conf')).toThrow(/not a valid interface name/);
    expect(() => configPathFor('/x/.conf')).toThrow(/not a valid interface name/);
    expect(() => configPathFor('..')).toThrow(/not a valid interface name/);
  });
});

describe('writeFileAtomic0600', () => {
  it('writes with mode 0600, replaces atomically and leaves no temp files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tsgcfg-'));
    try {
      const p = join(dir, 'wg0.conf');
      await writeFile(p, 'old', { mode: 0o644 });
      expect(await worldAccessibleWarning(p)).toBeUndefined(); // mkdtemp dir is 0700
      await writeFileAtomic0600(p, `[Interface]\nPrivateKey = ${PRIV}\n`);
      expect(await readFile(p, 'utf8')).toContain(PRIV);
      expect((await stat(p)).mode & 0o777).toBe(0o600);
      expect(await readdir(dir)).toEqual(['wg0.conf']);
      await expect(writeFileAtomic0600(join(dir, 'missing', 'x.conf'), 'x')).rejects.toThrow(/ENOENT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('configFromState / showconf', () => {
  /** The state a daemon reports (UAPI get text, as parsed by the client). */
  const state = (): UapiDeviceState =>
    parseGetReply(
      [
        `private_key=${keyToHex(new Uint8Array(32).fill(1))}`,
        'listen_port=51820',
        `public_key=${keyToHex(new Uint8Array(32).fill(2))}`,
        `preshared_key=${keyToHex(new Uint8Array(32))}`,
        'endpoint=[fd00::9]:51821',
        'persistent_keepalive_interval=25',
        'allowed_ip=10.0.0.2/32',
        'allowed_ip=fd00::2/128',
        `public_key=${keyToHex(new Uint8Array(32).fill(3))}`,
        `preshared_key=${keyToHex(new Uint8Array(32).fill(4))}`,
        'persistent_keepalive_interval=0',
        'errno=0',
        '',
      ].join('\n'),
    );

  it('prints wg showconf: zero values left out, same order as wg', () => {
    expect(showconf(state())).toBe(
      [
        '[Interface]',
        'ListenPort = 51820',
        `PrivateKey = ${PRIV}`,
        '',
        '[Peer]',
        `PublicKey = ${PUB1}`,
        'AllowedIPs = 10.0.0.2/32, fd00::2/128',
        'Endpoint = [fd00::9]:51821',
        'PersistentKeepalive = 25',
        '',
        '[Peer]',
        `PublicKey = ${PUB2}`,
        `PresharedKey = ${PSK}`,
        '',
      ].join('\n'),
    );
    const s = state();
    s.fwmark = 0x1234;
    s.listenPort = 0;
    expect(showconf(s).split('\n').slice(0, 3)).toEqual(['[Interface]', 'FwMark = 0x1234', `PrivateKey = ${PRIV}`]);
  });

  it('keeps the wg-quick settings of the file (SaveConfig) and parses back to the same peers', () => {
    const file = parseConfig(`[Interface]\nAddress = 10.0.0.1/24\nSaveConfig = true\nPostUp = echo up\n`, 'f', 'wg-quick');
    const cfg = configFromState(state(), file.interface);
    expect(cfg.interface.addresses.map(formatPrefix)).toEqual(['10.0.0.1/24']);
    expect(cfg.interface.postUp).toEqual(['echo up']);
    const back = parseConfig(serializeConfig(cfg, 'wg-quick'), 'f', 'wg-quick');
    expect(back.peers.map((p) => [keyToBase64(p.publicKey), p.endpoint, p.allowedIps.map(formatPrefix), p.persistentKeepalive])).toEqual([
      [PUB1, { host: 'fd00::9', port: 51821 }, ['10.0.0.2/32', 'fd00::2/128'], 25],
      [PUB2, undefined, [], undefined],
    ]);
    expect(back.interface.saveConfig).toBe(true);
  });
});
