// Test-only Node module hooks (vitest.config.ts passes them with --experimental-loader, which worker
// threads inherit): a worker thread that the code under test starts on one of its own modules (the
// SQLite registry's worker, src/hub/registry/sqlite-worker.ts) loads the TypeScript sources. vitest
// transforms the modules it imports itself, not those a worker thread loads.
// `./x.js` resolves to `./x.ts` when only that exists; .ts files are compiled with esbuild (types
// stripped, ESM kept), as the build compiles them.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { transform } from 'esbuild';

export async function resolve(specifier, context, next) {
  if (specifier.endsWith('.js') && (specifier.startsWith('.') || specifier.startsWith('file:'))) {
    const base = context.parentURL ?? `file://${process.cwd()}/`;
    const url = new URL(specifier, base);
    if (url.protocol === 'file:' && !existsSync(fileURLToPath(url))) {
      const ts = new URL(url.href.replace(/\.js$/, '.ts'));
      if (existsSync(fileURLToPath(ts))) return { url: ts.href, format: 'module', shortCircuit: true };
    }
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return next(url, context);
  const source = readFileSync(fileURLToPath(url), 'utf8');
  const out = await transform(source, { loader: 'ts', format: 'esm', target: 'node20', sourcefile: fileURLToPath(url), sourcemap: 'inline' });
  return { format: 'module', source: out.code, shortCircuit: true };
}
