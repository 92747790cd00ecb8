// Pairs of the A/B tools (bench/tcp-drops.mjs, bench/ping-path.mjs): command line, specs and setup.
// A spec is `this` (this checkout), NAME:KEY=VALUE[,KEY=VALUE] (this checkout with that environment),
// NAME@DIR (the checkout or copy at DIR: its dist/, build/ and bench/lib) or NAME=wggo:PATH (a
// wireguard-go binary on both sides).
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
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

/**
 * The command line of an A/B tool: `--rounds N` (default `rounds`), `--seconds S` (≥ `minSeconds`),
 * the flags in `valueFlags` (their values through `val`), and the pair specs (every other word).
 * Exits with a usage message when no pair is named or S is not a number ≥ minSeconds.
 */
export function abArgs(tool, { rounds = 3, seconds = 5, minSeconds = 2, valueFlags = [] } = {}) {
  const argv = process.argv.slice(2);
  const val = (f, def) => {
    const i = argv.indexOf(f);
    return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : def;
  };
  const takesValue = ['--rounds', '--seconds', ...valueFlags];
  const specs = argv.filter((a, i) => !a.startsWith('--') && !takesValue.includes(argv[i - 1] ?? ''));
  const s = Number(val('--seconds', seconds));
  if (specs.length === 0 || !Number.isFinite(s) || s < minSeconds) {
    process.stderr.write(`${tool}: name at least one pair (this, NAME:KEY=VALUE, NAME@DIR, NAME=wggo:PATH); --seconds ≥ ${minSeconds}\n`);
    process.exit(2);
  }
  return { val, has: (f) => argv.includes(f), rounds: Math.max(1, Number(val('--rounds', rounds))), seconds: s, specs };
}

/**
 * Parse `specs`, then start each pair on the bench topology (its tree's own bench library, so that its
 * daemons are its dist/ and build/) and wait until a ping crosses its tunnel. Each pair gets `lib`,
 * `topology`, `pair` and an empty `runs`; close them with {@link closePairs}, also after a failure.
 */
export async function openPairs(specs, tool, pairs = []) {
  for (const spec of specs) {
    const p = parsePairSpec(spec, tool);
    p.lib = await import(pathToFileURL(join(p.root, 'bench/lib/netns.mjs')).href);
    p.runs = [];
    pairs.push(p);
  }
  for (const p of pairs) {
    p.topology = await p.lib.Topology.create({ prefix: p.lib.NS_PREFIX });
    p.pair = await p.lib.configurePair(p.topology, p.impl, p.impl, { env: p.env });
    const { a, b } = p.pair;
    await p.lib.waitFor('tunnel', async () => (await p.lib.nsRun(a.ns, 'ping', ['-n', '-c', '1', '-W', '1', b.inner4], { allowFail: true })).code === 0, 20_000, 200);
  }
  return pairs;
}

/**
 * The rounds of an A/B run as [round index, pair]: every pair once per round, in turn, the order
 * reversed every other round (this host's speed drifts within minutes).
 */
export function* alternating(pairs, rounds) {
  for (let r = 0; r < rounds; r++) for (const p of r % 2 === 0 ? pairs : [...pairs].reverse()) yield [r, p];
}

/** Tear down every pair's topology (daemons and namespaces). */
export async function closePairs(pairs) {
  for (const p of pairs) await p.topology?.teardown();
}
