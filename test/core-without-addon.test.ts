/**
 * The protocol core is Node-addon-free: importing src/device/device.ts (and
 * the package index) must not load the native addon, and a full handshake
 * plus transport packets run on @noble. src/ is compiled afresh into a temp
 * directory (so the test sees this tree, not a stale dist/), and a child
 * node runs it with a preload hook that makes every way of loading the addon
 * throw and report itself — also when the caller catches the error, as an
 * eager optional loader would.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { transformSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const HOOK = join(ROOT, 'test/fixtures/no-addon-hook.mjs');
const SCRIPT = join(ROOT, 'test/fixtures/no-addon-core.mjs');
let dir = '';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsguard-no-addon-'));
  // The tree's layout: src/<module> resolves ../../build/Release/… and node_modules as in the package,
  // and test/helpers/sim.js (the in-memory network the fixture drives) imports ../../src/….
  symlinkSync(join(ROOT, 'build'), join(dir, 'build'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.json'), '--outDir', join(dir, 'src'), '--declaration', 'false', '--sourceMap', 'false'], {
    stdio: 'pipe',
  });
  mkdirSync(join(dir, 'test/helpers'), { recursive: true });
  const sim = transformSync(readFileSync(join(ROOT, 'test/helpers/sim.ts'), 'utf8'), { loader: 'ts', format: 'esm', target: 'node20' });
  writeFileSync(join(dir, 'test/helpers/sim.js'), sim.code);
}, 120_000);

afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

function run(mode: string) {
  const env = { ...process.env };
  delete env['TSGUARD_NATIVE'];
  delete env['TSGUARD_CRYPTO'];
  const r = spawnSync(process.execPath, ['--import', HOOK, SCRIPT, dir, mode], { encoding: 'utf8', env, timeout: 60_000 });
  const attempts = r.stderr.split('\n').filter((l) => l.startsWith('ADDON-LOAD-ATTEMPT'));
  return { status: r.status, stderr: r.stderr, attempts, out: r.stdout.trim() === '' ? null : JSON.parse(r.stdout.trim().split('\n').at(-1)!) };
}

describe('core without the native addon', () => {
  it('imports src/device/device.ts and runs a handshake and transport packets on @noble without loading the addon', () => {
    const r = run('core');
    expect(r.attempts).toEqual([]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.out).toEqual({ provider: 'noble', handshakes: 1, toB: true, toA: true });
  });

  it('imports the package index without loading the addon', () => {
    const r = run('index');
    expect(r.attempts).toEqual([]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.out).toEqual({ provider: 'noble', handshakes: 1, toB: true, toA: true });
  });

  it('the hook does catch a load: the shell loader asking for the native provider is reported', () => {
    const r = run('native');
    expect(r.status, r.stderr).toBe(0);
    expect(r.out).toEqual({ native: null });
    expect(r.attempts.length).toBeGreaterThan(0);
    // node-gyp-build (which finds the addon's path) is asked first, then the addon file itself.
    expect(r.attempts.some((a) => /tsguard_native\.node/.test(a)), r.attempts.join('\n')).toBe(true);
  });
});
