/**
 * The logger: levels, text and JSON lines, redaction of secrets, rate limiting,
 * and peer events of a real (simulated) device pair at verbose.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { keyToBase64 } from '../src/crypto/keys.js';
import { getCrypto } from '../src/crypto/index.js';
import { createLogger, loggerFromEnv, parseLogFormat, parseLogLevel, RateLimitedLog, redact, runtimeLog, type Log } from '../src/log/logger.js';
import { logPeerEvents } from '../src/log/peer-events.js';
import { ipv4Packet, pair } from './helpers/sim.js';

function sink(): { out: { write(s: string): void }; lines: string[] } {
  const lines: string[] = [];
  return { lines, out: { write: (s: string) => void lines.push(...s.split('\n').filter((l) => l !== '')) } };
}

const T0 = new Date('2026-01-02T03:04:05.000Z');

describe('createLogger', () => {
  it('writes text lines with time, level and key=value fields; levels above the threshold are dropped', () => {
    const s = sink();
    const log = createLogger({ level: 'info', out: s.out, now: () => T0 });
    log('info', 'interface up', { port: 51820, name: 'a b' });
    log('verbose', 'not shown');
    log('error', 'boom');
    expect(s.lines).toEqual(['2026-01-02T03:04:05.000Z INFO: interface up port=51820 name="a b"', '2026-01-02T03:04:05.000Z ERROR: boom']);
    expect(log.enabled('verbose')).toBe(false);
    expect(log.enabled('error')).toBe(true);
  });

  it('writes one JSON object per line with --log-format json', () => {
    const s = sink();
    const log = createLogger({ level: 'verbose', format: 'json', out: s.out, now: () => T0 });
    log('verbose', 'handshake completed', { endpoint: '10.0.0.1:51820', gone: undefined, n: null });
    expect(s.lines.map((l) => JSON.parse(l))).toEqual([{ time: T0.toISOString(), level: 'verbose', msg: 'handshake completed', endpoint: '10.0.0.1:51820', n: null }]);
  });

  it('prints bare messages when decorate is off (tsguard up) and nothing at silent', () => {
    const s = sink();
    createLogger({ out: s.out, decorate: false })('info', '[#] ip link add wg0');
    createLogger({ level: 'silent', out: s.out })('error', 'hidden');
    expect(s.lines).toEqual(['[#] ip link add wg0']);
  });

  it('redacts anything shaped like a private key, preshared key or token, in text and JSON', () => {
    const c = getCrypto();
    const priv = keyToBase64(c.generatePrivateKey());
    const hex = 'ab'.repeat(32);
    const token = `0123456789ab.${'A'.repeat(43)}`;
    const s = sink();
    const log = createLogger({ format: 'json', out: s.out });
    log('error', `bad set: private_key=${hex} preshared_key=${hex}`, { conf: `PrivateKey = ${priv}`, auth: `Bearer ${token}`, token });
    const text = s.lines.join('\n');
    expect(text).not.toContain(hex);
    expect(text).not.toContain(priv);
    expect(text).not.toContain('A'.repeat(43));
    expect(text).toContain('0123456789ab.(redacted)'); // the public token id stays
    expect(redact(`PresharedKey=${priv}`)).toBe('PresharedKey=(redacted)');
    // Public keys in ordinary fields are not secrets and stay readable.
    expect(redact(`peer ${priv} added`)).toBe(`peer ${priv} added`);
  });

  it('parses levels and formats with clear errors', () => {
    expect(parseLogLevel('VERBOSE')).toBe('verbose');
    expect(parseLogFormat('json')).toBe('json');
    expect(() => parseLogLevel('loud')).toThrow(/LOG_LEVEL "loud" is not a log level: use silent, error, info, verbose or debug/);
    expect(() => parseLogFormat('xml')).toThrow(/--log-format "xml" is not a log format: use text or json/);
    expect(() => loggerFromEnv({}, { TSGUARD_LOG_FORMAT: 'yaml' })).toThrow(/TSGUARD_LOG_FORMAT "yaml"/);
    expect(loggerFromEnv({ defaultLevel: 'error' }, {}).enabled('info')).toBe(false);
    expect(loggerFromEnv({ defaultLevel: 'error' }, { LOG_LEVEL: 'verbose' }).enabled('verbose')).toBe(true);
  });

  it('logs the interface being deleted at info and other runtime messages at error', () => {
    const seen: string[] = [];
    const log: Log = (level, m) => seen.push(`${level}: ${m}`);
    runtimeLog(log)("tun: TUN interface 'wg0' is gone (deleted with ip link del, or its network namespace was removed): File descriptor in bad state");
    runtimeLog(log)("tun: reading TUN interface 'wg0' failed: Input/output error");
    expect(seen.map((l) => l.split(':')[0])).toEqual(['info', 'error']);
  });
});

describe('RateLimitedLog', () => {
  it('writes the first line of a key, counts the suppressed ones and reports them with the next line', () => {
    let now = 0;
    const seen: Array<[string, Record<string, unknown> | undefined]> = [];
    const r = new RateLimitedLog((_l, m, f) => seen.push([m, f as Record<string, unknown> | undefined]), 1000, () => now);
    let built = 0;
    expect(r.log('peer-a', 'verbose', 'refused 1')).toBe(true);
    for (let i = 0; i < 5; i++) expect(r.log('peer-a', 'verbose', () => `refused ${++built}`)).toBe(false);
    expect(built).toBe(0); // a suppressed line is never built
    expect(r.log('peer-b', 'verbose', 'other peer')).toBe(true);
    now = 1000;
    expect(r.log('peer-a', 'verbose', 'refused again')).toBe(true);
    expect(seen).toEqual([
      ['refused 1', undefined],
      ['other peer', undefined],
      ['refused again', { suppressed: 5 }],
    ]);
  });
});

describe('logPeerEvents', () => {
  it('logs handshakes of a real device pair at verbose, with the peer name, rate limited per peer', () => {
    const s = sink();
    const log = createLogger({ level: 'verbose', out: s.out });
    const { sim, a, pubB } = pair();
    const bPub = keyToBase64(pubB);
    const now = () => sim.clock.now();
    const off = logPeerEvents(a.device, log, (pk) => (pk === bPub ? 'device b' : undefined), { now });
    const slow = sink();
    const offSlow = logPeerEvents(a.device, createLogger({ level: 'verbose', out: slow.out }), undefined, { now, intervalMs: 200_000 });
    a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(20)));
    sim.pump();
    expect(s.lines.join('\n')).toMatch(/VERBOSE: handshake completed with device b \(.+\) endpoint=192\.0\.2\.2:51821 role=initiator/);
    // The next handshake (a rekey after 125 s) is written again.
    sim.advance(125_000);
    a.device.sendPacket(ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(20)));
    sim.pump();
    expect(s.lines.filter((l) => l.includes('handshake completed'))).toHaveLength(2);
    // With a longer interval the second one is counted, not written.
    expect(slow.lines.filter((l) => l.includes('handshake completed'))).toHaveLength(1);
    off();
    offSlow();
    expect(a.device.events.has('handshake')).toBe(false);
  });

  it('subscribes to nothing when verbose is off', () => {
    const { a } = pair();
    const off = logPeerEvents(a.device, createLogger({ level: 'info', out: null }));
    expect(a.device.events.has('handshake')).toBe(false);
    off();
  });
});

describe('coalescing logger (hub up)', () => {
  it('writes the lines of one turn in one write, in order, after the turn; later turns get their own write', async () => {
    const writes: string[] = [];
    const log = createLogger({ level: 'info', out: { write: (t: string) => void writes.push(t) }, now: () => T0, coalesce: true });
    log('info', 'one');
    log('verbose', 'dropped');
    log('error', 'two');
    expect(writes).toEqual([]);
    await Promise.resolve();
    expect(writes).toEqual(['2026-01-02T03:04:05.000Z INFO: one\n2026-01-02T03:04:05.000Z ERROR: two\n']);
    await new Promise((r) => setImmediate(r));
    log('info', 'three');
    await Promise.resolve();
    expect(writes).toHaveLength(2);
    expect(writes[1]).toBe('2026-01-02T03:04:05.000Z INFO: three\n');
  });

  it('still redacts, and loses no line when the process exits right after logging', () => {
    const logger = fileURLToPath(new URL('../dist/log/logger.js', import.meta.url));
    const script = `import { createLogger } from ${JSON.stringify(logger)};
      const log = createLogger({ out: process.stdout, coalesce: true });
      log('info', 'before exit', { token: '0123456789ab.' + 'x'.repeat(43) });
      log('error', 'last line');
      process.exit(3);`;
    let out = '';
    try {
      execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    } catch (e) {
      const err = e as { status: number; stdout: string };
      expect(err.status).toBe(3);
      out = err.stdout;
    }
    expect(out).toMatch(/INFO: before exit token=0123456789ab\.\(redacted\)\n.*ERROR: last line\n$/s);
  });
});
