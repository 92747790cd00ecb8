/**
 * `ADDR:PORT` listen addresses of the servers (registration API, metrics).
 * @module
 */

import { formatIp, parseIp } from '../routing/ip.js';

/** An address to listen on. */
export interface ListenAddress {
  /** IP address literal. */
  host: string;
  /** TCP port (0 = any free port). */
  port: number;
}

/**
 * Parse `ADDR:PORT` (`127.0.0.1:8443`, `0.0.0.0:8443`, `[::1]:8443`);
 * `flag` names the option in error messages.
 * @throws Error saying what is wrong
 */
export function parseListenAddress(text: string, flag = '--api'): ListenAddress {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:]+):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (m === null || port > 65535) throw new Error(`${flag} "${text}" is not valid: expected ADDR:PORT such as 127.0.0.1:8443, 0.0.0.0:8443 or [::1]:8443`);
  let host: string;
  try {
    host = formatIp(parseIp(m[1]!).bytes);
  } catch {
    throw new Error(`${flag} "${text}": "${m[1]}" is not an IP address (give the address to listen on, e.g. 0.0.0.0)`);
  }
  return { host, port };
}
