// Resident memory and start-up of a fleet hub with N registered devices.
//
// 1. Build a registry with N devices in a temp data dir, in this process, through the library
//    (Registry.open(dir, { create }).addPeer(...)) — the same code path as `tsguard hub device add`.
//    The data dir is on tmpfs (/dev/shm) when there is one: each add commits with fsync, which
//    costs nothing there (the fixture is not what is measured).
// 2. Start `tsguard hub up` in its own namespace on a copy of it, wait until `wg show IF peers`
//    lists N peers.
// 3. Read VmRSS / VmHWM and the smaps_rollup split of the hub process after a short settle, and
//    its CPU seconds until every peer was listed; stop it.
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { collect, cpuSeconds, memKiB, sleep, waitFor } from './proc.mjs';
import { NS_PREFIX, ROOT, TSGUARD, Topology, ifname, nsSpawn, wg } from './netns.mjs';

const dist = (p) => import(pathToFileURL(join(ROOT, 'dist', p)).href);

/** A fresh temp directory on tmpfs when the host has one (see the file comment). */
export function fixtureDir() {
  return mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'tsguard-hubrss-'));
}

/**
 * Build a registry with `n` devices in `dir`. With `explicitIps` each device gets the address the
 * allocator would pick anyway (hub + 1 + i, in order); without, the allocator picks them (its cost
 * does not depend on the row count; `npm run bench:micro` measures it). Returns the timings.
 */
export async function buildRegistry(dir, n, subnet, explicitIps = true) {
  const { Registry } = await dist('hub/registry/index.js');
  const { loadCrypto } = await dist('crypto/index.js');
  const { loadNativeCrypto } = await dist('io/native.js');
  const c = await loadCrypto(loadNativeCrypto);
  const reg = await Registry.open(dir, { create: { subnet } });
  const t0 = performance.now();
  let tMark = t0;
  const perK = [];
  try {
    for (let i = 0; i < n; i++) {
      const publicKey = Buffer.from(c.publicKey(c.generatePrivateKey())).toString('base64');
      const input = { kind: 'device', name: `dev-${i}`, publicKey, source: 'cli' };
      if (explicitIps) input.ip = hostAddress(subnet, i + 2);
      await reg.addPeer(input);
      if ((i + 1) % 1000 === 0) {
        const t = performance.now();
        perK.push((t - tMark) / 1000);
        tMark = t;
      }
    }
  } finally {
    await reg.close();
  }
  const r3 = (x) => (x === undefined ? null : Math.round(x * 1000) / 1000);
  return { seconds: r3((performance.now() - t0) / 1000), msPerAddFirst1000: r3(perK[0]), msPerAddLast1000: r3(perK[perK.length - 1]), explicitIps };
}

/** The `k`-th address of an IPv4 subnet given as CIDR text. */
function hostAddress(subnet, k) {
  const base = subnet.split('/')[0].split('.').reduce((a, o) => a * 256 + Number(o), 0);
  const v = base + k;
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
}

/** Resident set split of a process (kB) from /proc/PID/smaps_rollup. */
function smapsRollup(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const get = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
    return { anon: get('Anonymous'), file: get('Pss_File'), shmem: get('Pss_Shmem') };
  } catch {
    return null;
  }
}

/**
 * Start `tsguard hub up` (the CLI at `tsguard`, default this checkout's) on a copy of the
 * registry in `fixture` (left untouched), measure, stop. Always tears its namespace down.
 */
export async function hubUp({ fixture, peers, subnet, tsguard = TSGUARD, }) {
  const t = await Topology.create({ single: true, prefix: NS_PREFIX });
  try {
    const dir = t.tempDir();
    cpSync(fixture, dir, { recursive: true });
    const name = ifname('tsghub');
    t.ifnames.add(name);
    const t0 = performance.now();
    const hub = nsSpawn(t.a, process.execPath, [tsguard, 'hub', 'up', '--data-dir', dir, '--interface', name, '--subnet', subnet, '--listen-port', '51900'], {
      ...process.env,
      LOG_LEVEL: 'error',
    });
    const done = collect(hub, 600_000);
    let exited = false;
    done.then(() => (exited = true), () => (exited = true));
    let count = 0;
    await waitFor(
      `hub to configure ${peers} peers`,
      async () => {
        if (exited) throw new Error(`hub exited early: ${(await done).stderr.slice(-2000)}`);
        try {
          count = (await wg(t.a, ['show', name, 'peers'])).split('\n').filter(Boolean).length;
        } catch {
          count = 0;
        }
        return count >= peers;
      },
      300_000,
      500,
    );
    const readySeconds = Math.round((performance.now() - t0) / 10) / 100;
    const readyCpu = cpuSeconds(hub.pid); // `ip netns exec` execs the command: same pid
    await sleep(2000);
    const mem = memKiB(hub.pid);
    const split = smapsRollup(hub.pid);
    hub.kill('SIGTERM');
    await done.catch(() => undefined);
    const mib = (kib) => Math.round((kib / 1024) * 10) / 10;
    return {
      peers,
      peers_listed: count,
      vmrss_mib: mib(mem.rss),
      vmhwm_mib: mib(mem.hwm),
      rss_anon_mib: split ? mib(split.anon) : null,
      pss_file_mib: split ? mib(split.file) : null,
      pss_shmem_mib: split ? mib(split.shmem) : null,
      kib_per_peer: Math.round((mem.rss / peers) * 100) / 100,
      seconds_to_all_peers: readySeconds,
      cpu_seconds_to_all_peers: readyCpu,
    };
  } finally {
    await t.teardown();
  }
}

/** The whole measurement with this checkout's CLI (fixture built here, then removed). */
export async function hubRss({ peers = 10_000, subnet = '10.100.0.0/18', explicitIps = true, log = () => {} } = {}) {
  const fixture = fixtureDir();
  try {
    log(`hub: building a registry with ${peers} devices`);
    const build = await buildRegistry(fixture, peers, subnet, explicitIps);
    log(`hub: registry built in ${build.seconds} s; starting hub up`);
    const r = await hubUp({ fixture, peers, subnet, log });
    return {
      ...r,
      registry_build_s: build.seconds,
      registry_ms_per_add_first_1000: build.msPerAddFirst1000,
      registry_ms_per_add_last_1000: build.msPerAddLast1000,
      registry_addresses: build.explicitIps ? 'explicit (hub+1+i, what the allocator picks)' : 'allocator',
    };
  } finally {
    rmSync(fixture, { recursive: true, force: true });
  }
}
