/**
 * HTTP requests from inside a network namespace (the test process itself stays in
 * the host namespace, where the servers under test are not reachable).
 */
import { nsRun } from './netns.js';

/** A response. */
export interface NsResponse {
  status: number;
  type: string;
  body: string;
}

const FETCH = `
const [url, init] = [process.argv[1], JSON.parse(process.argv[2])];
fetch(url, { ...init, signal: AbortSignal.timeout(10000) }).then(
  async (r) => process.stdout.write(JSON.stringify({ status: r.status, type: r.headers.get('content-type') ?? '', body: await r.text() })),
  (e) => { process.stderr.write(String(e && e.cause ? e.cause.message ?? e.cause : e)); process.exit(1); },
);`;

/** `fetch(url, init)` from namespace `ns` (node's fetch, no extra tool). */
export async function nsFetch(ns: string, url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<NsResponse> {
  const r = await nsRun(ns, process.execPath, ['-e', FETCH, url, JSON.stringify(init)], { allowFail: true, timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`${init.method ?? 'GET'} ${url} in ${ns} failed: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as NsResponse;
}

/** GET `url` from namespace `ns`. */
export function nsGet(ns: string, url: string): Promise<NsResponse> {
  return nsFetch(ns, url);
}
