// Summarise a V8 .cpuprofile (as written by `node --cpu-prof`): self time per function and per file.
// Frames in a bundle (dist/cli/*.cjs, what the daemons run) are mapped back to their source file and
// line through the bundle's source map.
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';

const maps = new Map();

/** The source map of a bundle url (…/x.cjs → x.cjs.map), or null. */
function sourceMapFor(url) {
  if (!url.endsWith('.cjs')) return null;
  if (!maps.has(url)) {
    const file = url.replace(/^file:\/\//, '') + '.map';
    maps.set(url, existsSync(file) ? new SourceMap(JSON.parse(readFileSync(file, 'utf8'))) : null);
  }
  return maps.get(url);
}

/** { url, line } of a frame: its original source when it runs from a bundle with a source map. */
function original(cf) {
  const map = sourceMapFor(cf.url);
  const e = map?.findEntry(cf.lineNumber, cf.columnNumber);
  if (e === undefined || e === null || e.originalSource === undefined) return { url: cf.url, line: cf.lineNumber + 1 };
  return { url: e.originalSource.replace(/^(\.\.\/)+/, '/'), line: e.originalLine + 1 };
}

/** Short location for a call frame url: path below the repo (dist/…, node_modules/…) or node:… */
function shortUrl(url) {
  if (!url) return '';
  const u = url.replace(/^file:\/\//, '');
  for (const marker of ['/node_modules/', '/dist/', '/build/', '/src/']) {
    const i = u.lastIndexOf(marker);
    if (i >= 0) return u.slice(i + 1);
  }
  return u;
}

/**
 * { totalMs, idleMs, functions: [{ name, where, selfMs, pct }], files: [{ file, selfMs, pct }] }
 * pct is of the non-idle time. Samples in (idle) are the event loop waiting; (program) is native
 * code outside JS (libuv, syscalls, the addon), (garbage collector) is GC.
 */
export function summarize(path, top = 20) {
  const prof = JSON.parse(readFileSync(path, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  for (let i = 0; i < prof.samples.length; i++) {
    const id = prof.samples[i];
    const dt = (prof.timeDeltas[i] ?? 0) / 1000; // µs → ms
    self.set(id, (self.get(id) ?? 0) + dt);
  }
  const fn = new Map();
  const files = new Map();
  let total = 0;
  let idle = 0;
  for (const [id, ms] of self) {
    const cf = byId.get(id).callFrame;
    total += ms;
    if (cf.functionName === '(idle)') {
      idle += ms;
      continue;
    }
    const loc = original(cf);
    const where = shortUrl(loc.url);
    const name = cf.functionName || '(anonymous)';
    const key = `${name}\u0000${where}:${loc.line}`;
    fn.set(key, (fn.get(key) ?? 0) + ms);
    const fileKey = where || name;
    files.set(fileKey, (files.get(fileKey) ?? 0) + ms);
  }
  const busy = total - idle;
  const pct = (ms) => Math.round((ms / busy) * 1000) / 10;
  const r1 = (x) => Math.round(x * 10) / 10;
  const functions = [...fn]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, ms]) => {
      const [name, where] = k.split('\u0000');
      return { name, where: where.startsWith(':') ? '' : where, selfMs: r1(ms), pct: pct(ms) };
    });
  const fileRows = [...files].sort((a, b) => b[1] - a[1]).slice(0, top).map(([file, ms]) => ({ file, selfMs: r1(ms), pct: pct(ms) }));
  return { totalMs: r1(total), idleMs: r1(idle), busyMs: r1(busy), functions, files: fileRows };
}
