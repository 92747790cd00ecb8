#!/usr/bin/env node
// Micro-benchmark of agent registration in the hub registry (Registry.registerAgent, the code
// path of POST /v1/register without HTTP), on both backends:
//   - SQLite: a temp data dir (WAL, synchronous=FULL, the store in its worker thread);
//   - PostgreSQL: a throw-away server from Debian's package (bench/lib/postgres.mjs; unix socket,
//     fsync on), skipped with a note when the binaries are missing.
// 65,000 agents into a /16: registrations per second for the first 1,000 and for the last 1,000
// (each sequential: one registration at a time). The 63,000 in between are written straight into the
// tables (the rows a registration writes, at the addresses the allocator would pick) to keep the run
// short on this shared machine; the allocation hint is left where the first 1,000 put it, so the first
// of the last 1,000 also pays the allocator's one-off walk over them. `--quick`: 10,000 agents.
import { mkdtempSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import pg from 'pg';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from '../dist/hub/registry/index.js';
import { getCrypto, loadCrypto } from '../dist/crypto/index.js';
import { loadNativeCrypto } from '../dist/io/native.js';
import { postgresBin, TestPostgres } from './lib/postgres.mjs';

await loadCrypto(loadNativeCrypto); // as the CLI: native, or what TSGUARD_CRYPTO names

const SUBNET = '10.100.0.0/16';

/** Write agents `from`…`to - 1` straight into the peers table (what their registrations would write, without credentials). */
async function bulkFill(backend, where, keys, from, to) {
  const base = (10 << 24) + (100 << 16);
  const now = Date.now();
  const rows = [];
  for (let i = from; i < to; i++) {
    const n = base + 2 + i;
    rows.push(['agent', `agent-${i}`, keys[i], `10.100.${(n >>> 8) & 255}.${n & 255}`, n, 'registration', now, now]);
  }
  const cols = '(kind, name, public_key, ipv4, ipv4_int, source, created_at, updated_at)';
  if (backend === 'sqlite') {
    const db = new Database(where);
    const ins = db.prepare(`INSERT INTO peers ${cols} VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
    db.transaction(() => rows.forEach((r) => ins.run(...r)))();
    db.close();
    return;
  }
  const c = new pg.Client({ connectionString: where });
  await c.connect();
  try {
    for (let k = 0; k < rows.length; k += 1000) {
      const chunk = rows.slice(k, k + 1000);
      const values = chunk.map((_, j) => `(${Array.from({ length: 8 }, (_, m) => `$${j * 8 + m + 1}`).join(', ')})`).join(', ');
      await c.query(`INSERT INTO peers ${cols} VALUES ${values}`, chunk.flat());
    }
  } finally {
    await c.end();
  }
}

async function measure(backend, total) {
  const c = getCrypto();
  const keys = Array.from({ length: total }, () => Buffer.from(c.publicKey(c.generatePrivateKey())).toString('base64'));
  const dir = mkdtempSync(join(tmpdir(), 'tsguard-bench-reg-'));
  let server = null;
  let url;
  if (backend === 'postgresql') {
    server = await TestPostgres.start({ fsync: true });
    url = await server.newDatabase('bench');
  }
  const reg = await Registry.open(dir, { create: { subnet: SUBNET }, ...(url ? { url } : {}) });
  try {
    const { token } = await reg.createToken({ ttlSeconds: 0 });
    let n = 0;
    const one = () => {
      const i = n++;
      return reg.registerAgent({ token, agentId: `agent-${i}`, publicKey: keys[i] });
    };
    const sequential = async (count) => {
      const t0 = performance.now();
      for (let i = 0; i < count; i++) await one();
      return count / ((performance.now() - t0) / 1000);
    };
    const first = await sequential(1000);
    await bulkFill(backend, url ?? join(dir, 'registry.sqlite'), keys, n, total - 1000);
    n = total - 1000;
    const last = await sequential(1000);
    const last1 = await reg.getPeer('agent', `agent-${total - 1}`);
    return [
      { benchmark: `${backend}: registerAgent, agents 1–1,000 of ${total.toLocaleString('en')}`, 'per s': Math.round(first), notes: 'one at a time' },
      { benchmark: `${backend}: registerAgent, agents ${(total - 999).toLocaleString('en')}–${total.toLocaleString('en')}`, 'per s': Math.round(last), notes: `${(last / first).toFixed(2)}× the first 1,000; last address ${last1.ipv4}` },
    ];
  } finally {
    await reg.close();
    await server?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runRegistry(quick = false) {
  const total = quick ? 10_000 : 65_000;
  const rows = await measure('sqlite', total);
  if (postgresBin() === null) rows.push({ benchmark: 'postgresql: skipped', 'per s': '-', notes: 'no /usr/lib/postgresql/*/bin (install Debian\'s "postgresql")' });
  else rows.push(...(await measure('postgresql', total)));
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.table(await runRegistry(process.argv.includes('--quick')));
}
