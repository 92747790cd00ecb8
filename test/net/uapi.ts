/**
 * A raw UAPI client for tests: send bytes on a UNIX socket, collect the replies.
 */
import net from 'node:net';

/** What came back on one connection. */
export interface UapiExchange {
  /** Everything received. */
  text: string;
  /** Errno values of the `errno=N` lines, in order. */
  errnos: number[];
  /** The daemon closed (or reset) the connection. */
  closed: boolean;
}

/**
 * Connect to `socket`, write `request`, and read until `replies` errno lines have arrived
 * (each followed by the blank line), the daemon closes the connection, or `timeoutMs` passes
 * (then throws). The connection is closed afterwards.
 */
export function uapiExchange(socket: string, request: string | Buffer, replies = 1, timeoutMs = 5000): Promise<UapiExchange> {
  return new Promise((resolve, reject) => {
    const c = net.connect(socket);
    let text = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      c.destroy();
      resolve({ text, errnos: [...text.matchAll(/^errno=(-?\d+)\n\n/gm)].map((m) => Number(m[1])), closed });
    };
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      c.destroy();
      reject(new Error(`UAPI exchange timed out after ${timeoutMs} ms; received so far: ${JSON.stringify(text.slice(0, 500))}`));
    }, timeoutMs);
    c.setEncoding('utf8');
    c.on('connect', () => {
      c.write(request, () => undefined);
    });
    c.on('data', (d: string) => {
      text += d;
      if ([...text.matchAll(/^errno=-?\d+\n\n/gm)].length >= replies) finish(false);
    });
    c.on('end', () => finish(true));
    c.on('close', () => finish(true));
    c.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE' || e.code === 'ECONNRESET') finish(true);
      else if (!done) {
        done = true;
        clearTimeout(timer);
        reject(e);
      }
    });
  });
}

/** `get=1` on a fresh connection; returns the key=value lines (without the errno line). */
export async function uapiGet(socket: string): Promise<string> {
  const r = await uapiExchange(socket, 'get=1\n\n');
  if (r.errnos[0] !== 0) throw new Error(`get=1 failed: ${r.text}`);
  return r.text.replace(/errno=0\n\n$/, '');
}
