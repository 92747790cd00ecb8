/**
 * Reading Prometheus text in tests.
 */

/** Parse Prometheus text into `name{labels}` → value. */
export function parseMetrics(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

/** The samples of family `name` whose labels include every one of `labels`. */
export function samples(m: Map<string, number>, name: string, labels: Record<string, string> = {}): number[] {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  return [...m].filter(([k]) => (k === name || k.startsWith(`${name}{`)) && want.every((w) => k.includes(w))).map(([, v]) => v);
}
