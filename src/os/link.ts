/**
 * Bringing a fresh interface up: its addresses, then its MTU and IFF_UP —
 * the one link setup of `tsguard up`, the hub and the agent.
 *
 * In this process's network namespace the steps are ioctls of the native
 * addon (no `ip` process). Every step also has its `ip` command: what is
 * logged, how a step runs through another {@link Runner} (a namespace, a
 * recording), and the one way to add a second IPv4 address (SIOCSIFADDR
 * would replace the first one). Routes, rules and nft stay `ip`/`nft`
 * processes (src/config/link.ts). A TUN interface is NOARP, so its IPv6
 * addresses skip duplicate address detection (as with `ip ... nodad`).
 * @module
 */

import { loadNative } from '../io/native.js';
import { formatPrefix, type Prefix } from '../routing/ip.js';
import { execRunner, formatCommand, type Command, type Runner, type RunResult } from './runner.js';

/** One step of {@link linkSteps}. */
export interface LinkStep {
  /** What the step does, for messages. */
  what: string;
  /** The equivalent `ip` command. */
  command: Command;
  /** Reverses the step (address steps), for rollbacks. */
  undo?: Command;
  /** Runs the step by ioctl (in this process's namespace); absent when only `ip` can do it. */
  ioctl?: () => void;
}

/** What {@link linkSteps} sets. */
export interface LinkSetup {
  /** Interface addresses with their prefix length (host bits are the address: `10.0.0.1/24`). */
  addresses: readonly Prefix[];
  /** MTU to set; absent keeps the interface's (a new TUN starts at the WireGuard default). */
  mtu?: number;
}

const ip = (...args: string[]): Command => ({ file: 'ip', args });

/**
 * The steps that give a fresh interface `setup`, in order: each address
 * (`ip -4|-6 address add`), then the MTU and up (`ip link set mtu N up`).
 * The first IPv4 address, the IPv6 addresses, the MTU and up are ioctls.
 */
export function linkSteps(ifname: string, setup: LinkSetup): LinkStep[] {
  const steps: LinkStep[] = [];
  let v4 = 0;
  for (const a of setup.addresses) {
    const text = formatPrefix(a);
    const f = a.family === 4 ? '-4' : '-6';
    const step: LinkStep = {
      what: `adding address ${text}`,
      command: ip(f, 'address', 'add', text, 'dev', ifname),
      undo: ip(f, 'address', 'del', text, 'dev', ifname),
    };
    if (a.family === 6 || v4++ === 0) step.ioctl = () => loadNative().addAddress(ifname, a.bytes, a.bits);
    steps.push(step);
  }
  const { mtu } = setup;
  steps.push({
    what: mtu === undefined ? `bringing ${ifname} up` : `setting MTU ${mtu} and bringing ${ifname} up`,
    command: mtu === undefined ? ip('link', 'set', 'up', 'dev', ifname) : ip('link', 'set', 'mtu', String(mtu), 'up', 'dev', ifname),
    ioctl: () => {
      const n = loadNative();
      if (mtu !== undefined) n.setMtu(ifname, mtu);
      n.setUp(ifname);
    },
  });
  return steps;
}

/**
 * Run one step: by ioctl when `runner` is {@link execRunner} (this
 * namespace) and the step has one, otherwise its command through `runner`.
 * Never rejects for a failed step: the result says (ioctl errors as exit
 * status 1 with the error message as stderr).
 */
export async function runLinkStep(step: LinkStep, runner: Runner = execRunner): Promise<RunResult> {
  if (step.ioctl === undefined || runner !== execRunner) return runner.run(step.command.file, step.command.args, step.command.input);
  try {
    step.ioctl();
    return { code: 0, stdout: '', stderr: '' };
  } catch (e) {
    return { code: 1, stdout: '', stderr: (e as Error).message };
  }
}

/**
 * Give fresh interface `ifname` its addresses, MTU and IFF_UP ({@link linkSteps}).
 * @throws Error naming the failed step and why
 */
export async function configureLink(ifname: string, setup: LinkSetup, runner: Runner = execRunner): Promise<void> {
  for (const step of linkSteps(ifname, setup)) {
    const r = await runLinkStep(step, runner);
    if (r.code !== 0) throw new Error(`${step.what} on ${ifname} failed (${formatCommand(step.command)}): ${r.stderr.trim() || `exit status ${r.code}`}`);
  }
}
