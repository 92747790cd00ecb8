// Pair specs of the A/B tools (bench/tcp-drops.mjs, bench/ping-path.mjs): `this` (this checkout),
// NAME:KEY=VALUE[,KEY=VALUE] (this checkout with that environment), NAME@DIR (the checkout or copy at
// DIR: its dist/, build/ and bench/lib) or NAME=wggo:PATH (a wireguard-go binary on both sides).
import { ROOT } from './netns.mjs';

/** Parse one pair spec into { name, root, env, impl }; exits with a usage message naming `tool` when it is none. */
export function parsePairSpec(spec, tool) {
  let m;
  if (spec === 'this') return { name: 'this', root: ROOT, env: {}, impl: 'tsguard' };
  if ((m = /^([\w.-]+)=wggo:(.+)$/.exec(spec))) return { name: m[1], root: ROOT, env: {}, impl: { name: m[1], path: m[2] } };
  if ((m = /^([\w.-]+)@(.+)$/.exec(spec))) return { name: m[1], root: m[2], env: {}, impl: 'tsguard' };
  if ((m = /^([\w.-]+):([A-Z0-9_]+=[^,]*(?:,[A-Z0-9_]+=[^,]*)*)$/.exec(spec))) {
    return { name: m[1], root: ROOT, env: Object.fromEntries(m[2].split(',').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])), impl: 'tsguard' };
  }
  process.stderr.write(`${tool}: ${spec}: expected this, NAME:KEY=VALUE[,KEY=VALUE], NAME@DIR or NAME=wggo:PATH\n`);
  process.exit(2);
}
