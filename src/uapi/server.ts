/**
 * The UAPI UNIX socket (`/var/run/wireguard/IFNAME.sock`) that `wg` and
 * `wg-quick` talk to. Several operations per connection; malformed input gets
 * an errno reply and never disturbs the device or other connections.
 * @module
 */

import { mkdirSync, statSync, unlinkSync, watch, type FSWatcher } from 'node:fs';
import net from 'node:net';
import { dirname, basename } from 'node:path';
import { applySet, Errno, UapiError, uapiGetChunks, type UapiHost } from './protocol.js';

/** Directory of UAPI sockets. */
export const SOCKET_DIR = '/var/run/wireguard';

/** Longest line accepted from a client. */
export const MAX_LINE = 4096;

/** Path of the UAPI socket of an interface. */
export function socketPath(ifname: string): string {
  return `${SOCKET_DIR}/${ifname}.sock`;
}

/** Host plus what the server needs to render `get` and to report changes. */
export interface UapiServerHost extends UapiHost {
  /** The port the UDP socket is bound to right now. */
  listenPort(): number;
  /** Called after each operation that may have changed the device. */
  afterChange?(): void;
}

/** Serves the UAPI on a UNIX socket. */
export class UapiServer {
  #server: net.Server;
  #watcher: FSWatcher | null = null;
  #sockets = new Set<net.Socket>();
  #closed = false;

  private constructor(
    server: net.Server,
    readonly path: string,
  ) {
    this.#server = server;
  }

  /**
   * Listen on `path` (created under umask 077). A stale socket is removed; a
   * live one (another daemon) is an error.
   */
  static async listen(path: string, host: UapiServerHost): Promise<UapiServer> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    await removeStale(path);
    const server = net.createServer((sock) => handleConnection(sock, host, self));
    const self = new UapiServer(server, path);
    const oldMask = process.umask(0o077);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(oldMask);
    }
    return self;
  }

  /** Call `cb` once if the socket file is removed (wg-quick down relies on this with userspace daemons). */
  onRemoved(cb: () => void): void {
    const check = () => {
      if (this.#closed) return;
      try {
        statSync(this.path);
      } catch {
        this.#watcher?.close();
        this.#watcher = null;
        cb();
      }
    };
    this.#watcher = watch(dirname(this.path), (_event, name) => {
      if (name === null || name === basename(this.path)) check();
    });
    this.#watcher.on('error', () => undefined);
  }

  /** Track a connection (internal). */
  track(sock: net.Socket): void {
    this.#sockets.add(sock);
    sock.on('close', () => this.#sockets.delete(sock));
  }

  /** Stop serving and remove the socket file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher?.close();
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}

async function removeStale(path: string): Promise<void> {
  try {
    statSync(path);
  } catch {
    return;
  }
  const live = await new Promise<boolean>((resolve) => {
    const c = net.connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (live) {
    throw new Error(`${path} is in use by a running daemon (stop it first, e.g. "ip link del ${basename(path, '.sock')}")`);
  }
  unlinkSync(path);
}

type ConnState = { kind: 'idle' } | { kind: 'get' } | { kind: 'set'; lines: string[] };

/** Most lines in one set operation (a config with thousands of peers fits easily). */
export const MAX_SET_LINES = 1_000_000;

function handleConnection(sock: net.Socket, host: UapiServerHost, server: UapiServer): void {
  server.track(sock);
  sock.setEncoding('utf8');
  let buf = '';
  let state: ConnState = { kind: 'idle' };
  const reply = (errno: number) => sock.write(`errno=${errno === 0 ? 0 : -errno}\n\n`);
  const fail = (errno: number, message: string) => {
    host.log?.(`UAPI: ${message}`);
    reply(errno);
    sock.end();
  };

  const onLine = (line: string): boolean => {
    switch (state.kind) {
      case 'idle':
        if (line === 'get=1') state = { kind: 'get' };
        else if (line === 'set=1') state = { kind: 'set', lines: [] };
        else if (line === '') return true; // tolerate stray blank lines between operations
        else {
          fail(Errno.EINVAL, `invalid operation "${line.slice(0, 32)}"`);
          return false;
        }
        return true;
      case 'get':
        if (line !== '') {
          fail(Errno.EINVAL, 'trailing data after get=1');
          return false;
        }
        state = { kind: 'idle' };
        // Streamed as the socket drains; the connection's next operation waits for the end.
        streaming = true;
        sock.pause();
        writeChunks(sock, uapiGetChunks(host.device, host.listenPort()), 'errno=0\n\n', () => {
          streaming = false;
          sock.resume();
          processLines();
        });
        return true;
      case 'set': {
        if (line !== '') {
          if (state.lines.length >= MAX_SET_LINES) {
            fail(Errno.EPROTO, `more than ${MAX_SET_LINES} lines in one set operation`);
            return false;
          }
          state.lines.push(line);
          return true;
        }
        let errno = 0;
        try {
          applySet(host, state.lines);
        } catch (e) {
          const err = toUapiError(e);
          host.log?.(`UAPI set: ${err.message}`);
          errno = err.errno;
        }
        host.afterChange?.();
        reply(errno);
        state = { kind: 'idle' };
        return true;
      }
    }
  };

  let streaming = false;
  const processLines = () => {
    let nl: number;
    while (!streaming && (nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.length > MAX_LINE) return fail(Errno.EPROTO, `line longer than ${MAX_LINE} bytes`);
      if (!onLine(line)) return;
    }
    if (!streaming && buf.length > MAX_LINE) fail(Errno.EPROTO, `line longer than ${MAX_LINE} bytes`);
  };
  sock.on('data', (chunk: string) => {
    buf += chunk;
    processLines();
  });
  sock.on('error', () => undefined);
}

/** Write `chunks` then `tail` to `sock`, taking the next chunk only when the socket drains; then `done` (not when the socket closes first). */
function writeChunks(sock: net.Socket, chunks: Iterator<string>, tail: string, done: () => void): void {
  const pump = (): void => {
    for (;;) {
      if (sock.destroyed) return;
      const n = chunks.next();
      if (n.done === true) {
        sock.write(tail);
        return done();
      }
      if (!sock.write(n.value)) {
        sock.once('drain', pump);
        return;
      }
    }
  };
  pump();
}

function toUapiError(e: unknown): UapiError {
  if (e instanceof UapiError) return e;
  return new UapiError(Errno.EINVAL, e instanceof Error ? e.message : String(e));
}
