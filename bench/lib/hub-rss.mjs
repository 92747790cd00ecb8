// Resident memory of a fleet hub with N registered devices.
//
// 1. Build a registry with N devices in a temp data dir, in this process, through the library
//    (Registry.open(dir, { create }).addPeer(...)) — the same code path as `tsguard hub device add`.
// 2. Start `tsguard hub up` in its own namespace, wait until `wg show IF peers` lists N peers.
// 3. Read VmRSS / VmHWM of the hub process from /proc/PID/status (after a short settle), stop it.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { collect, memKiB, sleep, waitFor } from './proc.mjs';
import { NS_PREFIX, ROOT, TSGUARD, Topology, ifname, nsSpawn, wg } from './netns.mjs';

const dist = (p) => import(pathToFileURL(join(ROOT, 'dist', p)).href);

/**
 * Build a registry with `n` devices in `dir`. With `explicitIps` each device gets the address the
 * allocator would pick anyway (hub + 1 + i, in order); without, the allocator picks them (its cost
 * does not depend on the row count; `npm run bench:micro` measures it).
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

/** The whole measurement. Returns the figures; always tears its namespace down. */
export async function hubRss({ peers = 10_000, subnet = '10.100.0.0/18', explicitIps = true, log = () => {} } = {}) {
  const t = await Topology.create({ single: true, prefix: NS_PREFIX });
  try {
    const dir = t.tempDir();
    log(`hub: building a registry with ${peers} devices`);
    const build = await buildRegistry(dir, peers, subnet, explicitIps);
    log(`hub: registry built in ${build.seconds} s; starting hub up`);
    const name = ifname('tsghub');
    t.ifnames.add(name);
    const t0 = performance.now();
    const hub = nsSpawn(t.a, process.execPath, [TSGUARD, 'hub', 'up', '--data-dir', dir, '--interface', name, '--subnet', subnet, '--listen-port', '51900'], {
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
    await sleep(2000);
    const mem = memKiB(hub.pid); // `ip netns exec` execs the command: same pid
    hub.kill('SIGTERM');
    await done.catch(() => undefined);
    return {
      peers,
      peers_listed: count,
      vmrss_mib: Math.round((mem.rss / 1024) * 10) / 10,
      vmhwm_mib: Math.round((mem.hwm / 1024) * 10) / 10,
      kib_per_peer: Math.round((mem.rss / peers) * 100) / 100,
      seconds_to_all_peers: readySeconds,
      registry_build_s: build.seconds,
      registry_ms_per_add_first_1000: build.msPerAddFirst1000,
      registry_ms_per_add_last_1000: build.msPerAddLast1000,
      registry_addresses: build.explicitIps ? 'explicit (hub+1+i, what the allocator picks)' : 'allocator',
    };
  } finally {
    await t.teardown();
  }
}
