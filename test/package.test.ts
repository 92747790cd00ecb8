/**
 * What `npm pack` puts in the tarball (`npm pack --dry-run --json`, without the prepack build):
 * everything a user needs (the library and its types, one CLI bundle per bin, the addon's
 * sources and prebuilds, examples, LICENSE) and nothing else (no source maps, no unbundled CLI
 * modules, no TypeScript sources, tests or build trees). The real tarball, with its prebuilds,
 * is installed and run by scripts/check-packed-install.sh in CI.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, normalize } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT, run } from './net/netns.js';

interface PackageJson {
  license: string;
  bin: Record<string, string>;
  main: string;
  types: string;
  exports: Record<string, string | Record<string, string>>;
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  devDependencies: Record<string, string>;
}

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson;
let files: string[] = [];
let packed: Set<string>;

beforeAll(async () => {
  expect(existsSync(join(ROOT, 'dist/index.js')), 'dist/ is built ("npm run prepare")').toBe(true);
  const r = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, timeoutMs: 60_000 });
  // Compiled files whose source is gone are left over from an older build: prepack removes dist/ first.
  const stale = (f: string) => /^dist\/.*\.(js|d\.ts)$/.test(f) && !existsSync(join(ROOT, f.replace(/^dist/, 'src').replace(/(\.d)?\.js$|\.d\.ts$/, '.ts')));
  files = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path).filter((f) => !stale(f)).sort();
  packed = new Set(files);
}, 90_000);

/** Relative module specifiers a JS or declaration file loads (static and dynamic imports, require). */
function relativeImports(text: string): string[] {
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|createRequire\(import\.meta\.url\)\(\s*)['"](\.\.?\/[^'"]+)['"]/g;
  // A module loaded by URL: `new URL('./x.js', import.meta.url)` (a worker thread's; in the CLI bundle import.meta.url is __tsguard_import_meta_url).
  const byUrl = /\bnew URL\(\s*['"](\.\.?\/[^'"]+\.[cm]?js)['"]\s*,\s*(?:import\.meta\.url|__tsguard_import_meta_url)\s*\)/g;
  return [...text.matchAll(re), ...text.matchAll(byUrl)].map((m) => m[1]!);
}

describe('npm pack', () => {
  it('ships the library, its types, the bins, the addon sources, examples and LICENSE', () => {
    const must = ['package.json', 'README.md', 'LICENSE', 'binding.gyp', 'dist/index.js', 'dist/index.d.ts'];
    for (const bin of Object.values(pkg.bin)) must.push(normalize(bin), normalize(bin).replace(/\.js$/, '.cjs'));
    for (const target of Object.values(pkg.exports)) {
      for (const path of typeof target === 'string' ? [target] : Object.values(target)) must.push(normalize(path));
    }
    must.push(normalize(pkg.main), normalize(pkg.types));
    const gyp = JSON.parse(readFileSync(join(ROOT, 'binding.gyp'), 'utf8')) as { targets: { sources: string[] }[] };
    must.push(...gyp.targets.flatMap((t) => t.sources));
    must.push(...readdirSync(join(ROOT, 'native')).filter((f) => f.endsWith('.h')).map((f) => `native/${f}`));
    must.push(...readdirSync(join(ROOT, 'examples')).map((f) => `examples/${f}`));
    // Every examples/ file the README tells users to run.
    must.push(...[...readFileSync(join(ROOT, 'README.md'), 'utf8').matchAll(/\bexamples\/[\w.-]+\.\w+/g)].map((m) => m[0]));
    expect([...new Set(must)].filter((f) => !packed.has(f))).toEqual([]);
  });

  it('ships the prebuilt addons there are, and nothing else of the build', () => {
    const dir = join(ROOT, 'prebuilds');
    const onDisk = existsSync(dir)
      ? readdirSync(dir, { recursive: true, withFileTypes: true })
          .filter((e) => e.isFile())
          .map((e) => join(e.parentPath, e.name).slice(ROOT.length + 1))
      : [];
    expect(files.filter((f) => f.startsWith('prebuilds/'))).toEqual(onDisk.sort());
    for (const f of onDisk) expect(f).toMatch(/^prebuilds\/linux-(x64|arm64)\/tsguard\.glibc\.node$/);
  });

  it('ships no source maps, no unbundled CLI modules, no sources, tests or build trees', () => {
    // Compiled modules no entry point loads (the CLI's own modules are in its bundles) are not shipped.
    // (Declarations of internal modules are: they are small and keep the .d.ts tree complete.)
    const entries = [...Object.values(pkg.bin), ...Object.values(pkg.exports).flatMap((t) => (typeof t === 'string' ? [t] : Object.values(t)))];
    const reachable = new Set<string>();
    const visit = (f: string): void => {
      if (reachable.has(f) || !packed.has(f)) return;
      reachable.add(f);
      for (const spec of relativeImports(readFileSync(join(ROOT, f), 'utf8'))) {
        const target = normalize(join(dirname(f), spec));
        visit(f.endsWith('.d.ts') ? target.replace(/\.js$/, '.d.ts') : target);
      }
    };
    for (const e of entries) visit(normalize(e));
    const unwanted = files.filter(
      (f) =>
        f.endsWith('.map') ||
        (f.startsWith('dist/') && /\.c?js$/.test(f) && !reachable.has(f)) ||
        /^(src|test|bench|scripts|build|node_modules|\.ci|\.github)\//.test(f) ||
        (f.endsWith('.ts') && !f.endsWith('.d.ts')) ||
        ['tsconfig.json', 'vitest.config.ts', 'package-lock.json', '.gitignore'].includes(f),
    );
    expect(unwanted).toEqual([]);
  });

  it('every relative import of a shipped module resolves to a shipped file', () => {
    const broken: string[] = [];
    for (const f of files.filter((f) => /\.(c?js|d\.ts)$/.test(f))) {
      for (const spec of relativeImports(readFileSync(join(ROOT, f), 'utf8'))) {
        const target = normalize(join(dirname(f), spec));
        const candidates = f.endsWith('.d.ts') ? [target, target.replace(/\.js$/, '.d.ts')] : [target];
        if (!candidates.some((c) => packed.has(c))) broken.push(`${f} → ${spec}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('the CLI bundles load only Node built-ins, declared dependencies and their optional peers', () => {
    const deps = [...Object.keys(pkg.dependencies), ...Object.keys(pkg.optionalDependencies ?? {})];
    // A dependency's optional peers (pg's pg-native) are required only when asked for.
    const optionalPeers = deps.flatMap((d) => {
      const meta = (JSON.parse(readFileSync(join(ROOT, 'node_modules', d, 'package.json'), 'utf8')) as { peerDependenciesMeta?: Record<string, { optional?: boolean }> }).peerDependenciesMeta;
      return Object.entries(meta ?? {}).flatMap(([name, m]) => (m.optional ? [name] : []));
    });
    const declared = new Set([...deps, ...optionalPeers]);
    const builtins = new Set(builtinModules);
    const undeclared: string[] = [];
    for (const f of files.filter((f) => f.endsWith('.cjs'))) {
      const text = readFileSync(join(ROOT, f), 'utf8');
      for (const m of text.matchAll(/\brequire\(\s*["']([^"'.][^"']*)["']\s*\)/g)) {
        const name = m[1]!.replace(/^node:/, '');
        const root = name.startsWith('@') ? name.split('/').slice(0, 2).join('/') : name.split('/')[0]!;
        if (!builtins.has(name) && !builtins.has(root) && !declared.has(root)) undeclared.push(`${f}: ${m[1]}`);
      }
    }
    expect(undeclared).toEqual([]);
  });

  it('installs through node-gyp-build, with better-sqlite3 optional and the tooling as dev dependencies', () => {
    expect(pkg.scripts['install']).toBe('node-gyp-build');
    expect(pkg.dependencies['node-gyp-build']).toBeDefined();
    expect(pkg.dependencies['node-addon-api']).toBeDefined(); // the source-build fallback compiles against it
    expect(pkg.dependencies['better-sqlite3']).toBeUndefined();
    expect(pkg.optionalDependencies?.['better-sqlite3']).toBeDefined();
    for (const dev of ['prebuildify', 'typescript', 'esbuild', 'vitest']) expect(pkg.devDependencies[dev]).toBeDefined();
    // `types` must come first in each conditional export for TypeScript to use it.
    for (const [sub, target] of Object.entries(pkg.exports)) {
      if (typeof target !== 'string') expect(Object.keys(target)[0], sub).toBe('types');
    }
  });

  it('LICENSE is the MIT license package.json declares', () => {
    const license = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
    expect(pkg.license).toBe('MIT');
    expect(license).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} tsguard contributors\n/);
    expect(license).toContain('THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND');
  });
});
