#!/usr/bin/env node
// One join through the library, as an agent that embeds tsguard does it: the modules are loaded
// first (not timed), then the clock starts, `join()` registers, brings the interface up and
// completes the handshake, and `ping -c 1 -W 1 HUB` is run until one gets a reply (a new process
// per attempt, as in the CLI measurement). Prints one JSON line: { joined_ms, first_reply_ms,
// ping_attempts, phases: [ms, log line] of join's progress }. Run inside the agent's network namespace.
//
//   node bench/lib/join-embedded.mjs URL TOKEN CA_HASH AGENT_ID STATE_DIR IFNAME HUB_IP
import { execFile } from 'node:child_process';

const [url, token, caHash, agentId, stateDir, ifname, hubIp] = process.argv.slice(2);
if (!hubIp) {
  process.stderr.write('usage: join-embedded.mjs URL TOKEN CA_HASH AGENT_ID STATE_DIR IFNAME HUB_IP\n');
  process.exit(2);
}
const { loadCrypto } = await import(new URL('../../dist/crypto/index.js', import.meta.url).href);
const { join } = await import(new URL('../../dist/agent/join.js', import.meta.url).href);
const { loadNativeCrypto } = await import(new URL('../../dist/io/native.js', import.meta.url).href);
await loadCrypto(loadNativeCrypto);

const pingOnce = () =>
  new Promise((resolve) => execFile('ping', ['-n', '-c', '1', '-W', '1', hubIp], (err) => resolve(err === null)));

const phases = [];
const t0 = performance.now();
const log = (_level, msg) => phases.push([Math.round((performance.now() - t0) * 10) / 10, msg.replace(/ \(.*$/, '').slice(0, 60)]);
const r = await join({ url, token, caHash, agentId, stateDir, ifname, uapi: false, log });
const joined = performance.now();
let attempts = 0;
for (;;) {
  attempts++;
  if (await pingOnce()) break;
  if (performance.now() - t0 > 30_000) {
    await r.close();
    process.stderr.write(`no ping reply from ${hubIp} within 30 s\n`);
    process.exit(1);
  }
}
const reply = performance.now();
await r.close();
const r1 = (x) => Math.round(x * 10) / 10;
process.stdout.write(JSON.stringify({ joined_ms: r1(joined - t0), first_reply_ms: r1(reply - t0), ping_attempts: attempts, phases }) + '\n');
process.exit(0);
