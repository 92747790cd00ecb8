// Types of netns.mjs for the TypeScript tests that import it (test/net/netns.ts).
import type { RunResult } from './proc.mjs';

export * from './proc.mjs';

export declare const ROOT: string;
export declare const TSGUARD_WG: string;
export declare const TSGUARD: string;
/** Directory of UAPI sockets (shared by all namespaces). */
export declare const SOCKET_DIR: string;
/** Prefix of the benchmark's namespaces. */
export declare const NS_PREFIX: string;
/** Outer (veth) addresses. */
export declare const OUTER: { readonly a4: string; readonly b4: string; readonly a6: string; readonly b6: string };
/** Tunnel addresses of {@link configurePair}. */
export declare const INNER: { readonly a4: string; readonly b4: string; readonly a6: string; readonly b6: string };

/** Throw a clear error if dist/ or the native addon have not been built. */
export declare function assertBuilt(): void;

/** Two namespaces joined by a veth pair (or a single namespace). */
export declare class Topology {
  /** Interface names created by daemons in these namespaces (their sockets are removed at teardown). */
  readonly ifnames: Set<string>;
  /** Extra cleanup steps (temp dirs...), run at teardown after the processes are gone. */
  readonly cleanups: (() => void)[];
  readonly a: string;
  readonly b: string | null;
  get namespaces(): string[];
  /** Namespaces `<prefix>A-<tag>` / `<prefix>B-<tag>` (prefix default `tsg`); `single`: only A. */
  static create(opts?: { single?: boolean; prefix?: string }): Promise<Topology>;
  /** A temp directory removed at teardown. */
  tempDir(): string;
  /** Kill every process in the namespaces, remove leftover sockets, delete the namespaces. Idempotent. */
  teardown(): Promise<void>;
}

/** Tear down every topology still alive. */
export declare function teardownAll(): Promise<void>;
/** Remove namespaces left by a killed run (names starting with `prefix`, default {@link NS_PREFIX}). */
export declare function removeStale(prefix?: string): Promise<void>;

/** Which userspace implementation: tsguard, the wireguard-go in PATH, or a given wireguard-go build (bench/lib/wggo.mjs). */
export type Impl = 'tsguard' | 'wireguard-go' | { name: string; path: string };

/** A running daemon. */
export interface Daemon {
  ns: string;
  impl: Impl;
  ifname: string;
  pid: number;
  socket: string;
  /** Foreground (profiled) daemons only: resolves when it exits. */
  done?: Promise<RunResult>;
}

/** A fresh interface name (≤ 15 bytes). */
export declare function ifname(prefix: string): string;
/** PID of the daemon serving `name` in `ns`, or null. */
export declare function daemonPid(ns: string, name: string, bin?: string | null): Promise<number | null>;
/** Start a daemon the way users do and find its PID. */
export declare function startDaemon(t: Topology, ns: string, impl: Impl, name: string, env?: NodeJS.ProcessEnv, profileDir?: string | null): Promise<Daemon>;
/** SIGTERM a daemon and wait until it has exited. */
export declare function stopDaemon(d: Daemon): Promise<void>;
/** `wg ARGS` inside a namespace; returns stdout. */
export declare function wg(ns: string, args: string[], input?: string): Promise<string>;

/** A key pair in base64. */
export interface KeyPair {
  priv: string;
  pub: string;
}
export declare function genKeyPair(): Promise<KeyPair>;
export declare function genPsk(): Promise<string>;
/** Wait until something in `ns` listens on UDP `port`. */
export declare function waitListening(ns: string, port: number, what: string): Promise<void>;

/** One side of a configured pair. */
export interface End {
  ns: string;
  daemon: Daemon;
  ifname: string;
  keys: KeyPair;
  port: number;
  outer4: string;
  outer6: string;
  inner4: string;
  inner6: string;
}

/** Two daemons configured as each other's peer. */
export interface Pair {
  a: End;
  b: End;
  psk: string | null;
  /** Temp directory of the key files. */
  dir: string;
}

/** Options of {@link configurePair}. */
export interface PairOptions {
  /** Outer address family of the endpoints (default 4). */
  outer?: 4 | 6;
  /** Persistent keepalive on both sides (default none). */
  keepalive?: number;
  /** Use a preshared key (default false). */
  psk?: boolean;
  /** Listen ports (defaults 51820 / 51821). */
  portA?: number;
  portB?: number;
  /** Extra environment of both daemons (e.g. a tsguard switch for an A/B pair). */
  env?: Record<string, string>;
  /** Set the endpoint on A's peer (default true). */
  endpointOnA?: boolean;
  /** Set the endpoint on B's peer (default true). */
  endpointOnB?: boolean;
  /** Run tsguard daemons under the CPU profiler, writing to PROFILEDIR/A and /B. */
  profileDir?: string | null;
}

/** Start and mirror-configure two daemons (tunnel addresses, MTU 1420, up). */
export declare function configurePair(t: Topology, implA: Impl, implB: Impl, opts?: PairOptions): Promise<Pair>;

/** Result of {@link iperf3}: TCP fields, plus the UDP ones for `udpMbps` runs. */
export interface IperfResult {
  mbps: number;
  sentMbps: number;
  retransmits?: number | null;
  bytesSent: number;
  bytesReceived: number;
  seconds: number;
  offeredMbps?: number;
  lossPercent?: number;
  jitterMs?: number;
  packets?: number;
  lost?: number;
}

/** iperf3 client in `clientNs` → one-off server in `serverNs` bound to `serverAddr`. */
export declare function iperf3(
  serverNs: string,
  serverAddr: string,
  clientNs: string,
  o?: { seconds?: number; parallel?: number; udpMbps?: number; len?: number; reverse?: boolean; port?: number; ipv6?: boolean },
): Promise<IperfResult>;

/** Ping with per-reply RTTs (ms). */
export declare function pingStats(
  ns: string,
  dst: string,
  o?: { count?: number; interval?: number; deadline?: number },
): Promise<{ sent: number; received: number; lossPercent: number | null; p50: number | null; p99: number | null; min: number | null; max: number | null; mean: number | null }>;
