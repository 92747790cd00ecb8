#!/usr/bin/env node
// `npm pack` / `npm publish` (prepack, before `prepare` compiles dist/): prebuilt addons for the tarball.
//
// - Removes dist/ so that `prepare` compiles it afresh: modules moved or deleted in src/ must not
//   ship as stale compiled files.
// - prebuildify (Node-API, so one build serves every Node ≥ 20.19) writes
//   prebuilds/linux-x64/tsguard.glibc.node; node-gyp-build (the package's install script and
//   src/io/native.ts) picks it, and builds from source only where no prebuild matches (musl, other
//   architectures). The libc tag keeps a glibc build from being loaded on musl.
// - linux-arm64 too when Debian's cross compiler (g++-aarch64-linux-gnu) is on PATH, or when
//   TSGUARD_PREBUILD_ARCHS lists it (e.g. "x64 arm64"; a missing compiler is then an error).
// - prebuildify moves the addon out of build/Release; the host build is copied back so the
//   checkout's own tests keep their source build.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
/** Oldest supported Node: the headers the Node-API build compiles against. */
const TARGET = 'node@20.19.0';
/** Cross toolchains by Node architecture name (Debian package names). */
const CROSS = { arm64: { prefix: 'aarch64-linux-gnu-', pkg: 'g++-aarch64-linux-gnu' } };

function onPath(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function prebuildify(opts) {
  let prebuildifyFn;
  try {
    prebuildifyFn = require('prebuildify');
  } catch {
    throw new Error('prepack: prebuildify is not installed (it is a devDependency: run "npm ci")');
  }
  return new Promise((resolve, reject) =>
    prebuildifyFn({ cwd: ROOT, napi: true, strip: true, tagLibc: true, targets: [TARGET], ...opts }, (err) =>
      err ? reject(err) : resolve(),
    ),
  );
}

const host = arch();
const wanted = process.env['TSGUARD_PREBUILD_ARCHS']?.split(/[\s,]+/).filter(Boolean);
const archs = wanted ?? [host, ...Object.keys(CROSS).filter((a) => a !== host && onPath(`${CROSS[a].prefix}g++`))];

rmSync(join(ROOT, 'dist'), { recursive: true, force: true });
rmSync(join(ROOT, 'prebuilds'), { recursive: true, force: true });
// Cross builds first: every build overwrites build/, and the host one is kept there last.
for (const a of [...archs.filter((a) => a !== host), ...archs.filter((a) => a === host)]) {
  if (a === host) {
    await prebuildify({});
    continue;
  }
  const cross = CROSS[a];
  if (cross === undefined) throw new Error(`prepack: no cross toolchain known for ${a} (known: ${Object.keys(CROSS).join(', ')})`);
  if (!onPath(`${cross.prefix}g++`)) throw new Error(`prepack: ${cross.prefix}g++ is not on PATH (Debian: apt-get install ${cross.pkg})`);
  // prebuildify hands process.env to node-gyp (make reads the compilers from it).
  const tools = { CC: 'gcc', CXX: 'g++', LINK: 'g++', AR: 'ar' };
  const saved = Object.fromEntries(Object.keys(tools).map((k) => [k, process.env[k]]));
  for (const [k, tool] of Object.entries(tools)) process.env[k] = cross.prefix + tool;
  try {
    await prebuildify({ arch: a, stripBin: `${cross.prefix}strip` });
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}
if (archs.includes(host)) {
  mkdirSync(join(ROOT, 'build/Release'), { recursive: true });
  copyFileSync(join(ROOT, `prebuilds/linux-${host}/tsguard.glibc.node`), join(ROOT, 'build/Release/tsguard_native.node'));
}
process.stdout.write(`prepack: prebuilt addons for ${archs.map((a) => `linux-${a}`).join(', ')}\n`);
