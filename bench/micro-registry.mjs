#!/usr/bin/env node
// Micro-benchmark of agent registration in the hub registry (Registry.registerAgent, the code
// path of POST /v1/register without HTTP), on both backends:
//   - SQLite: a temp data dir (WAL, synchronous=FULL, the store in its worker thread);
//   - PostgreSQL: a throw-away server from Debian's package (bench/lib/postgres.mjs; unix socket,
//     fsync on), skipped with a note when the binaries are missing.
// 65,000 agents into a /16: registrations per second at the start (agents 1–2,000) and at the end
// (the last 2,000), each 1,000 one at a time (the next starts when the previous is answered: a
// commit and its disk flush per registration) and 1,000 with 32 in flight (what a hub under load
// sees: concurrent registrations share a transaction and its flush, group commit), in alternating
// rounds of 250 (this machine is shared: its load changes within a run). Besides the rate, the
// process's CPU time per registration (all threads) and, on PostgreSQL, the server's (all its processes).
// The agents in between are written straight into the tables (the rows a registration writes, at
// the addresses the allocator would pick) to keep the run short; the allocation hint is left where
// the first 2,000 put it, so the first of the last 2,000 also pays the allocator's one-off walk over
// them. `--quick`: 10,000 agents; `--backend sqlite|postgresql`: only that backend.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import pg from 'pg';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from '../dist/hub/registry/index.js';
import { getCrypto, loadCrypto } from '../dist/crypto/index.js';
import { loadNativeCrypto } from '../dist/io/native.js';
import { postgresBin, TestPostgres } from './lib/postgres.mjs';

await loadCrypto(loadNativeCrypto); // as the CLI: native, or what TSGUARD_CRYPTO names

const SUBNET = '10.100.0.0/16';
/** Registrations in flight in the concurrent mode. */
const IN_FLIGHT = 32;
/** Registrations per round (the modes alternate). */
const ROUND = 250;

/** CPU ms (utime + stime) of the PostgreSQL server `server`: the postmaster and its children (backends, WAL writer, checkpointer, autovacuum), live or exited. */
function serverCpuMs(server) {
  const pm = Number(readFileSync(join(server.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  let ticks = 0;
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const st = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      // The postmaster's own time and that of its exited children (cutime, cstime), plus its live children's.
      if (Number(p) === pm) ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
      else if (Number(f[1]) === pm) ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // exited meanwhile
    }
  }
  return ticks * 10; // USER_HZ = 100 on Linux
}

/** Write agents `from`…`to - 1` straight into the peers table (what their registrations would write, without credentials). */
export async function bulkFill(backend, where, keys, from, to) {
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
    // Settle as a registry grown by registrations over time would be: the bulk's pages checkpointed
    // out of the WAL (else the last region pays that checkpoint) and statistics for the new rows.
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.exec('ANALYZE');
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
    // Settle as a registry grown by registrations over time would be: what autovacuum does (visibility
    // map, hint bits, planner statistics for the new rows) and the bulk's dirty pages written out by a
    // checkpoint, so that the last region does not pay for the bulk fill itself.
    await c.query('VACUUM (ANALYZE)');
    await c.query('CHECKPOINT');
  } finally {
    await c.end();
  }
}

/** The rows of one backend (`sqlite` or `postgresql`) for `total` agents. */
export async function measure(backend, total) {
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
    const time = { seq: { s: 0, cpu: 0, srv: 0, count: 0 }, conc: { s: 0, cpu: 0, srv: 0, count: 0 } };
    const timed = async (mode, count, fn) => {
      const c0 = process.cpuUsage();
      const s0 = server ? serverCpuMs(server) : 0;
      const t0 = performance.now();
      await fn(count);
      time[mode].s += (performance.now() - t0) / 1000;
      const c = process.cpuUsage(c0);
      time[mode].cpu += (c.user + c.system) / 1000;
      if (server) time[mode].srv += serverCpuMs(server) - s0;
      time[mode].count += count;
    };
    const sequential = async (count) => {
      for (let i = 0; i < count; i++) await one();
    };
    const concurrent = async (count) => {
      let left = count;
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          while (left > 0) {
            left--;
            await one();
          }
        }),
      );
    };
    /** 1,000 of each mode, alternating rounds of ROUND. */
    // PostgreSQL's background work during a region (its CPU is in the server's figure): autovacuum/autoanalyze runs, checkpoints.
    const background = async () => {
      if (!server) return null;
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        const v = (await c.query('SELECT coalesce(sum(autovacuum_count), 0)::int AS v, coalesce(sum(autoanalyze_count), 0)::int AS a FROM pg_stat_user_tables')).rows[0];
        const k = (await c.query('SELECT (checkpoints_timed + checkpoints_req)::int AS k FROM pg_stat_bgwriter')).rows[0];
        return { autovacuum: v.v, autoanalyze: v.a, checkpoints: k.k };
      } finally {
        await c.end();
      }
    };
    const during = (b0, b1) => (b0 && b1 ? `; during it: ${b1.autovacuum - b0.autovacuum} autovacuum, ${b1.autoanalyze - b0.autoanalyze} autoanalyze, ${b1.checkpoints - b0.checkpoints} checkpoints` : '');
    const region = async () => {
      const b0 = await background();
      for (const m of Object.values(time)) Object.assign(m, { s: 0, cpu: 0, srv: 0, count: 0 });
      for (let r = 0; r < 1000 / ROUND; r++) {
        await timed('seq', ROUND, sequential);
        await timed('conc', ROUND, concurrent);
      }
      return { seq: { ...time.seq }, conc: { ...time.conc }, bg: during(b0, await background()) };
    };
    const first = await region();
    await bulkFill(backend, url ?? join(dir, 'registry.sqlite'), keys, n, total - 2000);
    n = total - 2000;
    const last = await region();
    const lastPeer = await reg.getPeer('agent', `agent-${total - 1}`);
    const fmt = (k) => k.toLocaleString('en');
    const row = (range, m, mode, base) => {
      const perS = m.count / m.s;
      return {
        benchmark: `${backend}: registerAgent, agents ${range} of ${fmt(total)}, ${mode}`,
        'per s': Math.round(perS),
        notes:
          `${(m.cpu / m.count).toFixed(2)} ms CPU each` +
          (server ? ` + ${(m.srv / m.count).toFixed(2)} ms server CPU` : '') +
          (base ? `; ${(perS / (base.count / base.s)).toFixed(2)}× the first` : ''),
      };
    };
    return [
      { ...row('1–2,000', first.seq, 'one at a time'), notes: row('1–2,000', first.seq, '').notes + first.bg },
      row('1–2,000', first.conc, `${IN_FLIGHT} in flight`),
      row(`${fmt(total - 1999)}–${fmt(total)}`, last.seq, 'one at a time', first.seq),
      { ...row(`${fmt(total - 1999)}–${fmt(total)}`, last.conc, `${IN_FLIGHT} in flight`, first.conc), notes: `${row('', last.conc, '', first.conc).notes}; last address ${lastPeer.ipv4}${last.bg}` },
    ];
  } finally {
    await reg.close();
    await server?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `backends`: which to measure (default both). */
export async function runRegistry(quick = false, backends = ['sqlite', 'postgresql']) {
  const total = quick ? 10_000 : 65_000;
  const rows = backends.includes('sqlite') ? await measure('sqlite', total) : [];
  if (!backends.includes('postgresql')) return rows;
  if (postgresBin() === null) rows.push({ benchmark: 'postgresql: skipped', 'per s': '-', notes: 'no /usr/lib/postgresql/*/bin (install Debian\'s "postgresql")' });
  else rows.push(...(await measure('postgresql', total)));
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  // --backend sqlite|postgresql: only that one.
  const b = process.argv.indexOf('--backend');
  const rows = await runRegistry(process.argv.includes('--quick'), b > 0 ? [process.argv[b + 1]] : undefined);
  console.table(rows);
  // --json PATH: also write the rows (with the time and the load average) to PATH.
  const j = process.argv.indexOf('--json');
  if (j > 0) writeFileSync(process.argv[j + 1], JSON.stringify({ when: new Date().toISOString(), loadavg: loadavg(), rows }, null, 1) + '\n');
}
