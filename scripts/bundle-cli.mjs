#!/usr/bin/env node
// Bundles the CLI entry points after `tsc -p tsconfig.json` (run by `npm run build` and `prepare`):
//   src/cli/tsguard.ts    → dist/cli/tsguard.cjs    (+ .map, for the checkout: `npm pack` leaves maps out)
//   src/cli/tsguard-wg.ts → dist/cli/tsguard-wg.cjs (+ .map)
//   src/cli/sqlite-worker.ts → dist/cli/sqlite-worker.cjs (+ .map): the SQLite registry's worker thread
// and replaces tsc's dist/cli/tsguard.js and dist/cli/tsguard-wg.js (the bins) with three-line
// launchers that require the bundle. Why: loading ~50 ES modules one by one costs Node more than
// compiling one file; see ARCHITECTURE.md ("Library choices", esbuild).
//
// - CommonJS, one file per entry: Node's CJS loader is cheaper to start than its ESM loader, and
//   a package's `require()` stays inside the lazily initialised module that uses it, so
//   better-sqlite3, qrcode and prom-client (external: native parts / not needed by most commands) load only
//   when a command needs them. (An ESM bundle hoists external imports to the top of the file,
//   and esbuild's code splitting produces a dozen chunks.) No module has top-level await.
// - `import.meta.url` is the URL of the launcher (dist/cli/tsguard-wg.js for tsguard-wg.cjs), as if
//   the unbundled entry ran: the bundles sit beside the launchers in dist/cli/, at the depth of
//   every other compiled module, so the paths computed from it stay right: the native addon under
//   the package root two levels up (build/Release or prebuilds/, loaded by src/io/native.ts),
//   `./tsguard-wg.js` (src/cli/quick.ts), and the detached daemon's command line is still
//   `node …/dist/cli/tsguard-wg.js IFNAME` (src/cli/tsguard-wg.ts re-runs its own file).
// - Running `tsc -p tsconfig.json` alone puts the unbundled dist/cli/tsguard.js back (it emits
//   every file), so a stale bundle is never used; the CLI is then just slower to start.
import { chmodSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  process.stderr.write('bundle-cli: esbuild is not installed (it is a devDependency: run "npm ci")\n');
  process.exit(1);
}

const ENTRIES = ['tsguard', 'tsguard-wg'];
// The SQLite registry's worker thread loads `./sqlite-worker.js` beside the module that starts it
// (src/hub/registry/sqlite-store.ts), which in the bundle is dist/cli/: its launcher re-exports the bundle.
const WORKER = 'sqlite-worker';

await esbuild.build({
  absWorkingDir: ROOT,
  entryPoints: [...ENTRIES, WORKER].map((name) => ({ in: `src/cli/${name}.ts`, out: name })),
  outdir: 'dist/cli',
  outExtension: { '.js': '.cjs' },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  tsconfig: 'tsconfig.json',
  // Packages with native parts stay external (and so do qrcode, used by one hub command, and
  // prom-client, loaded only with --metrics); node-gyp-build is loaded with createRequire
  // (src/io/native.ts), which esbuild leaves alone.
  external: ['better-sqlite3', 'qrcode', 'prom-client'],
  define: { 'import.meta.url': '__tsguard_import_meta_url' },
  banner: { js: "const __tsguard_import_meta_url = require('node:url').pathToFileURL(__filename.replace(/\\.cjs$/, '.js')).href;" },
  sourcemap: true,
  sourcesContent: false,
  logLevel: 'warning',
});

for (const name of ENTRIES) {
  const launcher = join(ROOT, 'dist/cli', `${name}.js`);
  writeFileSync(
    launcher,
    `#!/usr/bin/env node
// Written by scripts/bundle-cli.mjs over tsc's output of src/cli/${name}.ts: runs its bundle.
import { createRequire } from 'node:module';
createRequire(import.meta.url)('./${name}.cjs');
`,
  );
  chmodSync(launcher, 0o755);
}

writeFileSync(
  join(ROOT, 'dist/cli', `${WORKER}.js`),
  `// Written by scripts/bundle-cli.mjs over tsc's output of src/cli/${WORKER}.ts: re-exports its bundle.
import { createRequire } from 'node:module';
export const { serve } = createRequire(import.meta.url)('./${WORKER}.cjs');
`,
);
