/**
 * What wg-quick does around the `wg` calls. Addresses, MTU and link up are
 * the steps of src/os/link.ts (ioctls in this namespace); routes, rules,
 * DNS and firewall are `ip`, `resolvconf`, `sysctl` and `nft` run through
 * `execFile`, without a shell except for the user's own hook commands.
 *
 * Bringing a link up is split into a plan ({@link planUp}: an ordered list of
 * commands, computed from the configuration and a few read-only queries) and
 * its execution ({@link executePlan}, which undoes the steps already done
 * when one fails). The command {@link Runner} is injectable, so a recording
 * runner can capture a plan without touching the system and one running
 * `ip netns exec` runs everything (the link steps as `ip` commands) inside
 * a network namespace.
 *
 * Order of a full `up`, as in wg-quick: {@link runHooks} PreUp → the caller
 * creates and configures the device → {@link applyUp} (addresses, MTU and
 * link up, DNS, routes and policy routing, PostUp). `down`: {@link applyDown}.
 * @module
 */

import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

import { linkSteps, runLinkStep } from '../os/link.js';
import { execRunner, formatCommand, type Command, type Runner, type RunResult } from '../os/runner.js';
import { resolveEndpoint } from '../os/resolve.js';
import { formatIp, formatPrefix, maskPrefix, type Prefix } from '../routing/ip.js';
import type { WgConfig } from './wgquick.js';


/** Receives wg-quick-style progress lines (`[#] ip -4 address add ...`). */
export type Logger = (line: string) => void;

/** True when `name` is an executable file in PATH (plus /usr/sbin and /sbin). */
export async function commandExists(name: string): Promise<boolean> {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    if (!d) continue;
    try {
      await access(join(d, name), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

// ---------------------------------------------------------------------------
// Environment, plan and errors

/** Everything {@link planUp}, {@link applyUp}, {@link applyDown} and {@link runHooks} need from the outside. */
export interface LinkEnv {
  /** Command runner (default {@link execRunner}). */
  runner?: Runner;
  /** Progress lines (default: standard error). */
  log?: Logger;
  /** Whether a program is installed (default {@link commandExists}); asked about resolvconf and nft. */
  hasCommand?: (name: string) => Promise<boolean>;
  /** resolvconf interface prefix such as `tun.` (default: from /etc/resolvconf/interface-order, as wg-quick). */
  resolvconfPrefix?: string;
  /** Endpoint resolution for the MTU computation (default {@link resolveEndpoint}). */
  resolve?: (host: string, port: number) => Promise<{ host: string }>;
  /**
   * Sets the device's fwmark when a full tunnel needs one the configuration
   * lacks ({@link UpPlan.setFwmark}); without it the caller must set
   * {@link UpPlan.fwmark} on the device itself.
   */
  setFwmark?: (mark: number) => Promise<void>;
  /** For {@link applyDown}: the device's current fwmark (the policy routing table), if known. */
  fwmark?: number;
  /** For {@link applyDown}: deletes the interface, called after the rules and DNS are removed and before PostDown. */
  deleteLink?: () => Promise<void>;
}

/** One step of a plan. */
export type PlanStep =
  | {
      /** Run a command. */
      kind: 'cmd';
      /** What the step does, for messages. */
      what: string;
      /** The command. */
      command: Command;
      /** Log this instead of the command line (hooks). */
      display?: string;
      /** Reverses the step during a rollback. */
      undo?: Command;
      /** Skip the step when this query prints anything (checked when the step runs). */
      unlessOutput?: Command;
      /** Runs the step by ioctl instead, in this process's namespace (see {@link runLinkStep}). */
      ioctl?: () => void;
    }
  | {
      /** Set the device's fwmark through {@link LinkEnv.setFwmark}. */
      kind: 'fwmark';
      /** What the step does, for messages. */
      what: string;
      /** The mark (= routing table). */
      mark: number;
    };

/** The result of {@link planUp}. */
export interface UpPlan {
  /** Interface name. */
  ifname: string;
  /** Steps in execution order. */
  steps: PlanStep[];
  /** The MTU that will be set (given or computed). */
  mtu: number;
  /** Effective table: `off`, `auto`, or a table number or name. */
  table: string;
  /** Policy routing table = fwmark, when a /0 route uses policy routing (Table=auto). */
  fwmark?: number;
  /** True when {@link fwmark} is not the configured FwMark and must be set on the device. */
  setFwmark: boolean;
  /** True when DNS is configured through resolvconf. */
  dns: boolean;
  /** True when nft rules are added (full tunnel and nft installed). */
  firewall: boolean;
}

/** A failed `up` step (after the rollback) or hook. */
export class LinkSetupError extends Error {
  override name = 'LinkSetupError';
  /** The step's description. */
  readonly step: string;
  /** The command line that failed (or the hook text). */
  readonly command: string;
  /** Its exit status. */
  readonly code: number;
  /** Its standard error output. */
  readonly stderr: string;

  /** Build the error for a failed command. */
  constructor(step: string, command: string, result: RunResult) {
    const why = result.stderr.trim() || result.stdout.trim() || `exit status ${result.code}`;
    super(`${step} failed: \`${command}': ${why}`);
    this.step = step;
    this.command = command;
    this.code = result.code;
    this.stderr = result.stderr;
  }
}

interface Ctx {
  runner: Runner;
  log: Logger;
  hasCommand: (name: string) => Promise<boolean>;
}

function ctx(env: LinkEnv): Ctx {
  return {
    runner: env.runner ?? execRunner,
    log: env.log ?? ((line) => process.stderr.write(`${line}\n`)),
    hasCommand: env.hasCommand ?? commandExists,
  };
}

const ipCmd = (...args: string[]): Command => ({ file: 'ip', args });
const fam = (c: { family: 4 | 6 }): string => (c.family === 4 ? '-4' : '-6');

/** wg-quick's resolvconf interface prefix: `X.` for the first `X*` line of /etc/resolvconf/interface-order. */
export async function resolvconfPrefix(file = '/etc/resolvconf/interface-order'): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return '';
  }
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z0-9-]+)\*$/.exec(line.trim());
    if (m) return `${m[1]}.`;
  }
  return '';
}

// ---------------------------------------------------------------------------
// Hooks

/** A hook as a plan step: `sh -c HOOK` with every `%i` replaced by the interface name. */
function hookStep(phase: string, hook: string, ifname: string): PlanStep {
  const text = hook.replaceAll('%i', ifname);
  return { kind: 'cmd', what: `${phase} hook`, command: { file: 'sh', args: ['-c', text] }, display: text };
}

/**
 * Run hook commands (PreUp, PostUp, PreDown, PostDown) in order through
 * `sh -c`, with `%i` replaced by `ifname`, as wg-quick does. Their output
 * goes to the logger.
 * @throws LinkSetupError for the first hook that exits non-zero.
 */
export async function runHooks(commands: readonly string[], ifname: string, env: LinkEnv = {}, phase = 'hook'): Promise<void> {
  const c = ctx(env);
  for (const h of commands) await runStep(c, hookStep(phase, h, ifname), env);
}

async function runStep(c: Ctx, step: PlanStep, env: LinkEnv): Promise<boolean> {
  if (step.kind === 'fwmark') {
    if (env.setFwmark) {
      c.log(`[#] set fwmark ${step.mark}`);
      await env.setFwmark(step.mark);
    }
    return true;
  }
  if (step.unlessOutput) {
    const q = await c.runner.run(step.unlessOutput.file, step.unlessOutput.args, step.unlessOutput.input);
    if (q.code === 0 && q.stdout.trim() !== '') return false;
  }
  const line = step.display ?? formatCommand(step.command);
  c.log(`[#] ${line}`);
  const r = await runLinkStep(step, c.runner);
  if (step.display !== undefined) {
    for (const l of `${r.stdout}${r.stderr}`.split('\n')) if (l.trim() !== '') c.log(l);
  }
  if (r.code !== 0) throw new LinkSetupError(step.what, line, r);
  return true;
}

// ---------------------------------------------------------------------------
// MTU

function mtuOf(text: string): number | undefined {
  const m = /\bmtu (\d+)/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** MTU of a route (`ip route get` / `ip route show` output): its own `mtu`, else its device's MTU. */
async function routeMtu(runner: Runner, routeText: string): Promise<number | undefined> {
  const own = mtuOf(routeText);
  if (own !== undefined) return own;
  const dev = /\bdev (\S+)/.exec(routeText);
  if (!dev) return undefined;
  const link = await runner.run('ip', ['link', 'show', 'dev', dev[1]!]);
  return link.code === 0 ? mtuOf(link.stdout) : undefined;
}

/**
 * wg-quick's automatic MTU: the largest MTU of the routes to the peers'
 * endpoints (`ip route get`), else of the default route, else 1500; minus 80.
 * Endpoints that cannot be resolved or routed are ignored.
 */
export async function computeMtu(cfg: WgConfig, env: LinkEnv = {}): Promise<number> {
  const runner = env.runner ?? execRunner;
  const resolve = env.resolve ?? resolveEndpoint;
  let mtu = 0;
  for (const p of cfg.peers) {
    if (!p.endpoint) continue;
    let host: string;
    try {
      host = (await resolve(p.endpoint.host, p.endpoint.port)).host;
    } catch {
      continue;
    }
    const r = await runner.run('ip', ['route', 'get', host.replace(/%.*$/, '')]);
    if (r.code !== 0) continue;
    const m = await routeMtu(runner, r.stdout);
    if (m !== undefined && m > mtu) mtu = m;
  }
  if (mtu === 0) {
    const r = await runner.run('ip', ['route', 'show', 'default']);
    const first = r.code === 0 ? r.stdout.split('\n')[0] ?? '' : '';
    const m = first ? await routeMtu(runner, first) : undefined;
    if (m !== undefined && m > mtu) mtu = m;
  }
  return (mtu > 0 ? mtu : 1500) - 80;
}

// ---------------------------------------------------------------------------
// up

/** Distinct masked AllowedIPs of all peers, most specific first (stable for equal lengths). */
export function routesFor(cfg: WgConfig): Prefix[] {
  const seen = new Set<string>();
  const out: Prefix[] = [];
  for (const p of cfg.peers) {
    for (const a of p.allowedIps) {
      const m = maskPrefix(a);
      const k = formatPrefix(m);
      if (!seen.has(k)) {
        seen.add(k);
        out.push(m);
      }
    }
  }
  return out.map((c, i) => [c, i] as const).sort((a, b) => b[0].bits - a[0].bits || a[1] - b[1]).map(([c]) => c);
}

function nftScript(ifname: string, family: 4 | 6, mark: number, addresses: Prefix[]): string {
  const pf = family === 4 ? 'ip' : 'ip6';
  const t = `${pf} tsguard-${ifname}`;
  const lines = [
    `add table ${t}`,
    `add chain ${t} preraw { type filter hook prerouting priority -300; }`,
    `add chain ${t} premangle { type filter hook prerouting priority -150; }`,
    `add chain ${t} postmangle { type filter hook postrouting priority -150; }`,
  ];
  for (const a of addresses) {
    if (a.family !== family) continue;
    // Packets for the tunnel's addresses must arrive through the tunnel (or be local).
    lines.push(`add rule ${t} preraw iifname != "${ifname}" ${pf} daddr ${formatIp(a.bytes)} fib saddr type != local drop`);
  }
  // Keep the tunnel's mark on replies of marked UDP flows, so they bypass the tunnel too.
  lines.push(`add rule ${t} postmangle meta l4proto udp mark ${mark} ct mark set mark`);
  lines.push(`add rule ${t} premangle meta l4proto udp meta mark set ct mark`);
  return lines.join('\n') + '\n';
}

/**
 * Plan what wg-quick does after the device exists and is configured:
 * addresses, MTU and link up, DNS, routes (with policy routing for /0 routes
 * when Table is auto), PostUp hooks. Runs only read-only queries (`ip route
 * get`, `ip link show`, `ip route show table`).
 * @throws Error when DNS is set but resolvconf is not installed.
 */
export async function planUp(ifname: string, cfg: WgConfig, env: LinkEnv = {}): Promise<UpPlan> {
  const c = ctx(env);
  const i = cfg.interface;
  const steps: PlanStep[] = [];
  const table = i.table ?? 'auto';

  const mtu = i.mtu ?? (await computeMtu(cfg, env));
  for (const l of linkSteps(ifname, { addresses: i.addresses, mtu })) steps.push({ kind: 'cmd', ...l });

  let dns = false;
  if (i.dns.length > 0) {
    if (!(await c.hasCommand('resolvconf'))) {
      throw new Error(
        `DNS is set for ${ifname} but resolvconf is not installed (install the resolvconf or openresolv package, or remove the DNS line)`,
      );
    }
    const name = `${env.resolvconfPrefix ?? (await resolvconfPrefix())}${ifname}`;
    let input = i.dns.map((d) => `nameserver ${d}\n`).join('');
    if (i.dnsSearch.length) input += `search ${i.dnsSearch.join(' ')}\n`;
    steps.push({
      kind: 'cmd',
      what: 'setting DNS with resolvconf',
      command: { file: 'resolvconf', args: ['-a', name, '-m', '0', '-x'], input },
      undo: { file: 'resolvconf', args: ['-d', name, '-f'] },
    });
    dns = true;
  }

  let fwmark: number | undefined;
  let setFwmark = false;
  let firewall = false;
  if (table !== 'off') {
    const routes = routesFor(cfg);
    const policy = table === 'auto' && routes.some((r) => r.bits === 0);
    if (policy) {
      if (i.fwmark) fwmark = i.fwmark;
      else {
        fwmark = 51820;
        for (;;) {
          const v4 = await c.runner.run('ip', ['-4', 'route', 'show', 'table', String(fwmark)]);
          const v6 = await c.runner.run('ip', ['-6', 'route', 'show', 'table', String(fwmark)]);
          if (v4.stdout.trim() === '' && v6.stdout.trim() === '') break;
          fwmark++;
        }
        setFwmark = true;
      }
    }
    const haveNft = policy ? await c.hasCommand('nft') : false;
    if (policy && !haveNft) {
      c.log('[!] nft is not installed: skipping the anti-spoofing and connmark firewall rules for the default route');
    }
    let fwmarkStepDone = false;
    for (const r of routes) {
      const cidr = formatPrefix(r);
      const f = fam(r);
      if (table !== 'auto') {
        steps.push({
          kind: 'cmd',
          what: `adding route ${cidr} to table ${table}`,
          command: ipCmd(f, 'route', 'add', cidr, 'dev', ifname, 'table', table),
          undo: ipCmd(f, 'route', 'del', cidr, 'dev', ifname, 'table', table),
        });
      } else if (r.bits === 0) {
        const t = String(fwmark);
        if (setFwmark && !fwmarkStepDone) {
          steps.push({ kind: 'fwmark', what: `setting fwmark ${t}`, mark: fwmark! });
          fwmarkStepDone = true;
        }
        steps.push(
          {
            kind: 'cmd',
            what: `adding default route ${cidr} to table ${t}`,
            command: ipCmd(f, 'route', 'add', cidr, 'dev', ifname, 'table', t),
            undo: ipCmd(f, 'route', 'del', cidr, 'dev', ifname, 'table', t),
          },
          {
            kind: 'cmd',
            what: `adding rule "not fwmark ${t} table ${t}"`,
            command: ipCmd(f, 'rule', 'add', 'not', 'fwmark', t, 'table', t),
            undo: ipCmd(f, 'rule', 'del', 'not', 'fwmark', t, 'table', t),
          },
          {
            kind: 'cmd',
            what: 'adding rule "table main suppress_prefixlength 0"',
            command: ipCmd(f, 'rule', 'add', 'table', 'main', 'suppress_prefixlength', '0'),
            undo: ipCmd(f, 'rule', 'del', 'table', 'main', 'suppress_prefixlength', '0'),
          },
        );
        if (r.family === 4) {
          steps.push({
            kind: 'cmd',
            what: 'enabling net.ipv4.conf.all.src_valid_mark',
            command: { file: 'sysctl', args: ['-q', 'net.ipv4.conf.all.src_valid_mark=1'] },
          });
        }
        if (haveNft) {
          const pf = r.family === 4 ? 'ip' : 'ip6';
          steps.push({
            kind: 'cmd',
            what: `adding nft table ${pf} tsguard-${ifname}`,
            command: { file: 'nft', args: ['-f', '-'], input: nftScript(ifname, r.family, fwmark!, i.addresses) },
            undo: { file: 'nft', args: ['delete', 'table', pf, `tsguard-${ifname}`] },
          });
          firewall = true;
        }
      } else {
        steps.push({
          kind: 'cmd',
          what: `adding route ${cidr}`,
          command: ipCmd(f, 'route', 'add', cidr, 'dev', ifname),
          undo: ipCmd(f, 'route', 'del', cidr, 'dev', ifname),
          unlessOutput: ipCmd(f, 'route', 'show', 'dev', ifname, 'match', cidr),
        });
      }
    }
  }

  for (const h of i.postUp) steps.push(hookStep('PostUp', h, ifname));

  const plan: UpPlan = { ifname, steps, mtu, table, setFwmark, dns, firewall };
  if (fwmark !== undefined) plan.fwmark = fwmark;
  return plan;
}

/**
 * Run a plan's steps in order. When one fails, the steps already done are
 * undone in reverse order (failures while undoing are only logged) and a
 * {@link LinkSetupError} naming the failed step and its stderr is thrown.
 */
export async function executePlan(plan: UpPlan, env: LinkEnv = {}): Promise<void> {
  const c = ctx(env);
  const done: PlanStep[] = [];
  for (const step of plan.steps) {
    try {
      if (await runStep(c, step, env)) done.push(step);
    } catch (e) {
      for (const d of done.reverse()) {
        if (d.kind !== 'cmd' || !d.undo) continue;
        c.log(`[#] ${formatCommand(d.undo)}`);
        try {
          const r = await c.runner.run(d.undo.file, d.undo.args, d.undo.input);
          if (r.code !== 0) c.log(`[!] undo failed: ${r.stderr.trim() || `exit status ${r.code}`}`);
        } catch (u) {
          c.log(`[!] undo failed: ${(u as Error).message}`);
        }
      }
      throw e;
    }
  }
}

/**
 * {@link planUp} then {@link executePlan}: everything wg-quick `up` does
 * once the device exists and is configured (PreUp hooks excluded: run them
 * with {@link runHooks} before creating the device). Returns the plan; when
 * `plan.setFwmark` is true and `env.setFwmark` was not given, the caller must
 * set `plan.fwmark` on the device.
 */
export async function applyUp(ifname: string, cfg: WgConfig, env: LinkEnv = {}): Promise<UpPlan> {
  const plan = await planUp(ifname, cfg, env);
  await executePlan(plan, env);
  return plan;
}

// ---------------------------------------------------------------------------
// down

/**
 * What wg-quick `down` does besides saving the configuration: PreDown hooks,
 * removal of the policy routing rules (when the configuration routes a /0
 * with Table auto; the table is `env.fwmark`, else the configured FwMark,
 * else 51820), of DNS (resolvconf) and of the nft tables, then
 * `env.deleteLink` (deleting the interface also removes its addresses and
 * routes; without it the caller deletes the interface), then PostDown hooks.
 * Every step is attempted.
 * @throws Error listing the steps that failed.
 */
export async function applyDown(ifname: string, cfg: WgConfig, env: LinkEnv = {}): Promise<void> {
  const c = ctx(env);
  const i = cfg.interface;
  const errors: string[] = [];
  const attempt = async (fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (e) {
      errors.push((e as Error).message);
      c.log(`[!] ${(e as Error).message}`);
    }
  };
  const must = async (what: string, cmd: Command): Promise<void> => {
    await runStep(c, { kind: 'cmd', what, command: cmd }, env);
  };

  for (const h of i.preDown) await attempt(() => runStep(c, hookStep('PreDown', h, ifname), env).then(() => undefined));

  const table = i.table ?? 'auto';
  if (table === 'auto' && routesFor(cfg).some((r) => r.bits === 0)) {
    const t = env.fwmark || i.fwmark || 51820;
    const lookupT = new RegExp(`\\blookup ${t}\\b`);
    for (const f of ['-4', '-6']) {
      const rules = async (): Promise<string> => (await c.runner.run('ip', [f, 'rule', 'show'])).stdout;
      await attempt(async () => {
        for (let n = 0; n < 64 && lookupT.test(await rules()); n++) {
          await must(`deleting ${f} rules for table ${t}`, ipCmd(f, 'rule', 'delete', 'table', String(t)));
        }
        for (let n = 0; n < 64 && (await rules()).includes('from all lookup main suppress_prefixlength 0'); n++) {
          await must(`deleting ${f} suppress_prefixlength rule`, ipCmd(f, 'rule', 'delete', 'table', 'main', 'suppress_prefixlength', '0'));
        }
      });
    }
  }

  if (i.dns.length > 0) {
    await attempt(async () => {
      if (!(await c.hasCommand('resolvconf'))) throw new Error('cannot remove DNS settings: resolvconf is not installed');
      const name = `${env.resolvconfPrefix ?? (await resolvconfPrefix())}${ifname}`;
      await must('removing DNS with resolvconf', { file: 'resolvconf', args: ['-d', name, '-f'] });
    });
  }

  await attempt(async () => {
    if (!(await c.hasCommand('nft'))) return;
    const tables = await c.runner.run('nft', ['list', 'tables']);
    for (const line of tables.stdout.split('\n')) {
      const m = /^table (ip6?) (\S+)$/.exec(line.trim());
      if (m && m[2] === `tsguard-${ifname}`) await must(`deleting nft table ${m[1]} ${m[2]}`, { file: 'nft', args: ['delete', 'table', m[1]!, m[2]!] });
    }
  });

  if (env.deleteLink) await attempt(env.deleteLink);

  for (const h of i.postDown) await attempt(() => runStep(c, hookStep('PostDown', h, ifname), env).then(() => undefined));

  if (errors.length) throw new Error(`taking ${ifname} down: ${errors.join('; ')}`);
}
