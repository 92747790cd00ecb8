// wireguard-go builds compared by the benchmark: the one in PATH (Debian's, pair `wggo_wggo`) and any
// number given as `--wggo NAME=PATH[@COMMIT]` (pair `NAME_NAME`), each identified by its `--version`,
// sha256 and commit (given, or read from the Go build info embedded in the binary).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { which } from './proc.mjs';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9.-]{0,31}$/;

/** `wireguard-go --version`'s first line, or null. */
function version(path) {
  try {
    return execFileSync(path, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }).split('\n')[0].trim();
  } catch {
    return null;
  }
}

/** The vcs.revision of Go's embedded build info (absent for -trimpath builds outside a checkout), short. */
function embeddedCommit(bytes) {
  const m = /vcs\.revision=([0-9a-f]{7,40})/.exec(bytes.toString('latin1'));
  return m ? m[1].slice(0, 7) : null;
}

/** Describe one build: { name, file, path, version, sha256, commit }. */
export function describeBuild(name, path, commit = null) {
  const bytes = readFileSync(path);
  return {
    name,
    file: basename(path),
    path,
    version: version(path),
    sha256: createHash('sha256').update(bytes).digest('hex'),
    commit: commit ?? embeddedCommit(bytes),
  };
}

/**
 * Parse every `--wggo NAME=PATH[@COMMIT]` of argv. Throws with what is wrong and how to write it.
 * NAME: letters, digits, '.', '-' (it becomes the pair id NAME_NAME); PATH: an executable file.
 */
export function parseWggoArgs(argv) {
  const builds = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] !== '--wggo') continue;
    const spec = argv[i + 1];
    const usage = 'expected --wggo NAME=PATH or NAME=PATH@COMMIT, e.g. --wggo d0bc03c=/opt/wireguard-go-d0bc03c@d0bc03c';
    if (spec === undefined || !spec.includes('=')) throw new Error(`--wggo ${spec ?? ''}: ${usage}`);
    const name = spec.slice(0, spec.indexOf('='));
    let path = spec.slice(spec.indexOf('=') + 1);
    let commit = null;
    const at = path.lastIndexOf('@');
    if (at > 0 && /^[0-9a-f]{7,40}$/.test(path.slice(at + 1))) {
      commit = path.slice(at + 1);
      path = path.slice(0, at);
    }
    if (!NAME_RE.test(name) || name === 'wggo' || name === 'tsguard') {
      throw new Error(`--wggo ${spec}: NAME must be 1-32 letters, digits, '.' or '-' and not "wggo" or "tsguard"; ${usage}`);
    }
    if (builds.some((b) => b.name === name)) throw new Error(`--wggo ${spec}: NAME "${name}" given twice`);
    path = resolve(path);
    if (!existsSync(path)) throw new Error(`--wggo ${spec}: ${path} does not exist`);
    builds.push(describeBuild(name, path, commit));
  }
  return builds;
}

/** The wireguard-go in PATH (pair wggo_wggo), or null when there is none. */
export function defaultBuild() {
  const path = which('wireguard-go');
  return path === null ? null : describeBuild('wggo', path);
}
