/**
 * The README's TypeScript/JavaScript blocks are real programs against the package: each is
 * type-checked with tsc (strict, NodeNext) importing `tsguard`, `tsguard/config`, ... by the
 * package's own name (self-reference through `exports`, so the `types` conditions and dist/*.d.ts
 * are what is checked), then run with node from the repository root.
 *
 * A block preceded by `<!-- readme-test: netns -->` needs root: it runs in a network namespace
 * this test creates (lo up, a private /run/wireguard so its interface names cannot collide with
 * other tests). `<!-- readme-test: skip REASON -->` excludes a block from running (it is still
 * type-checked).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { transformSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missingPrerequisite, nsPids, rand, ROOT, run, terminate } from './net/netns.js';

interface Block {
  /** 1-based line of the opening fence. */
  line: number;
  lang: 'ts' | 'js';
  code: string;
  mode: 'run' | 'netns' | 'skip';
  reason?: string;
}

/** The ```ts / ```js blocks of a Markdown text with the marker comment on the line before each. */
function readmeBlocks(text: string): Block[] {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(ts|typescript|js|javascript|mjs)\s*$/.exec(lines[i]!);
    if (open === null) continue;
    const end = lines.indexOf('```', i + 1);
    if (end < 0) throw new Error(`README.md:${i + 1}: code block is not closed`);
    const marker = /^<!-- readme-test: (netns|skip)\b\s*(.*?)\s*-->$/.exec(lines[i - 1] ?? '');
    if (marker?.[1] === 'skip' && marker[2] === '') throw new Error(`README.md:${i}: "readme-test: skip" needs a reason`);
    blocks.push({
      line: i + 1,
      lang: open[1]!.startsWith('t') ? 'ts' : 'js',
      code: lines.slice(i + 1, end).join('\n') + '\n',
      mode: marker === null ? 'run' : (marker[1] as 'netns' | 'skip'),
      reason: marker?.[2],
    });
    i = end;
  }
  return blocks;
}

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const blocks = readmeBlocks(README);
// Inside the package (under build/, ignored by git) so that `import 'tsguard'` resolves to this package.
let dir = '';

beforeAll(() => {
  mkdirSync(join(ROOT, 'build'), { recursive: true });
  dir = mkdtempSync(join(ROOT, 'build', 'readme-'));
  for (const [n, b] of blocks.entries()) {
    writeFileSync(join(dir, `block${n + 1}.${b.lang === 'ts' ? 'mts' : 'mjs'}`), b.code);
    if (b.lang === 'ts') {
      writeFileSync(join(dir, `block${n + 1}.mjs`), transformSync(b.code, { loader: 'ts', format: 'esm', target: 'node20' }).code);
    }
  }
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        lib: ['ES2022'],
        types: ['node'],
        typeRoots: [join(ROOT, 'node_modules/@types')],
        strict: true,
        noEmit: true,
        allowJs: true,
        checkJs: true,
      },
      include: ['*.mts', '*.mjs'].map((g) => join(dir, g)),
      exclude: blocks.flatMap((b, n) => (b.lang === 'ts' ? [join(dir, `block${n + 1}.mjs`)] : [])),
    }),
  );
});

afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

describe('README code blocks', () => {
  it('has TypeScript blocks for the engine, the config parser, the hub and join()', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(3);
    const all = blocks.map((b) => b.code).join('\n');
    for (const spec of ["from 'tsguard'", "from 'tsguard/config'", "from 'tsguard/hub'", "from 'tsguard/agent'"]) {
      expect(all).toContain(spec);
    }
    expect(blocks.filter((b) => b.mode === 'skip')).toEqual([]);
  });

  it('type-check against the built package (dist/*.d.ts through its exports)', async () => {
    const r = await run(join(ROOT, 'node_modules/.bin/tsc'), ['-p', join(dir, 'tsconfig.json')], { allowFail: true, timeoutMs: 120_000 });
    const where = (out: string) =>
      out.replace(/(?:\S*\/)?block(\d+)\.m[tj]s\((\d+),\d+\)/g, (_, n: string, l: string) => `README.md:${blocks[Number(n) - 1]!.line + Number(l)}`);
    expect(where(r.stdout + r.stderr), 'tsc').toBe('');
    expect(r.code).toBe(0);
  });

  it('the engine block: two engines complete a handshake in memory and a packet arrives', async () => {
    const n = blocks.findIndex((b) => b.code.includes('new Device('));
    expect(n).toBeGreaterThanOrEqual(0);
    const r = await run(process.execPath, [join(dir, `block${n + 1}.mjs`)], { cwd: ROOT });
    expect(r.stdout).toMatch(/^a: handshake with [A-Za-z0-9+/]{43}= done$/m);
    expect(r.stdout).toContain('b received 20 bytes from a');
  });

  it('the config block parses examples/wg0.conf and reports a bad file with file and line', async () => {
    const n = blocks.findIndex((b) => b.code.includes("from 'tsguard/config'"));
    const r = await run(process.execPath, [join(dir, `block${n + 1}.mjs`)], { cwd: ROOT });
    expect(r.stdout).toContain('examples/wg0.conf: 10.200.0.1/24, fd00:200::1/64, 1 peer');
    expect(r.stdout).toMatch(/^bad\.conf:2: .*ListenPort/m);
  });

  const netnsMissing = missingPrerequisite(['ip', 'unshare', 'mount']);
  const skipNetns = netnsMissing !== null && process.env['CI'] !== 'true';
  if (skipNetns) console.warn(`[readme.test.ts] netns blocks SKIPPED: ${netnsMissing}`);

  it.skipIf(skipNetns)('the hub and agent block runs in a namespace: the agent joins and the hub lists it', async () => {
    const n = blocks.findIndex((b) => b.code.includes("from 'tsguard/agent'"));
    expect(blocks[n]!.mode).toBe('netns');
    const ns = `tsgRd-${rand(3)}`;
    const tmp = mkdtempSync(join(dir, 'tmp-'));
    await run('ip', ['netns', 'add', ns]);
    try {
      await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      // `ip netns exec` gives the command its own mount namespace: a tmpfs on /run/wireguard
      // there keeps the block's UAPI sockets (hub0, agent0) apart from every other test's.
      const script = `mkdir -p /run/wireguard && mount -t tmpfs tsguard-readme /run/wireguard && exec "$0" "$1"`;
      const r = await run('ip', ['netns', 'exec', ns, 'sh', '-c', script, process.execPath, join(dir, `block${n + 1}.mjs`)], {
        cwd: ROOT,
        env: { ...process.env, TMPDIR: tmp },
        timeoutMs: 60_000,
      });
      expect(r.stdout).toMatch(/^sensor-1 joined as 10\.100\.0\.2\/24, hub [A-Za-z0-9+/]{43}=$/m);
      expect(r.stdout).toContain('hub: agent sensor-1 10.100.0.2');
    } finally {
      await terminate(await nsPids(ns));
      await run('ip', ['netns', 'del', ns], { allowFail: true });
    }
  });
});
