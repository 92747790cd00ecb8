/**
 * Network interface names: the one check used by the daemon, the agent, the
 * hub and wg-quick's file-name mapping.
 *
 * Linux accepts 1 to 15 bytes (`IFNAMSIZ` − 1), not `.` or `..`, without
 * `/`, `:` or whitespace (`dev_valid_name`). wg-quick additionally limits
 * names to `[a-zA-Z0-9_=+.-]`, because it builds them from file names.
 * @module
 */

/** Longest interface name Linux accepts, in bytes. */
const IFNAME_MAX_BYTES = 15;

/** Characters wg-quick allows in an interface name. */
const WG_QUICK_CHARS = /^[a-zA-Z0-9_=+.-]+$/;

/** Which rule {@link ifnameProblem} applies. */
export interface IfnameRule {
  /** Also require wg-quick's character set `[a-zA-Z0-9_=+.-]`. */
  wgQuick?: boolean;
}

/**
 * What is wrong with interface name `name`, or null if it is usable.
 * @param rule `{ wgQuick: true }` for names taken from configuration file names
 */
export function ifnameProblem(name: string, rule: IfnameRule = {}): string | null {
  if (name.length === 0) return 'interface name is empty';
  if (Buffer.byteLength(name) > IFNAME_MAX_BYTES) {
    return `interface name "${name}" is longer than ${IFNAME_MAX_BYTES} bytes (Linux IFNAMSIZ limit)`;
  }
  if (name === '.' || name === '..' || /[/\s:]/.test(name)) {
    return `interface name "${name}" contains a character Linux does not allow (no "/", ":", whitespace; not "." or "..")`;
  }
  if (rule.wgQuick && !WG_QUICK_CHARS.test(name)) {
    return `interface name "${name}" has a character wg-quick does not allow (use a-z, A-Z, 0-9, _ = + . -)`;
  }
  return null;
}

/** True when {@link ifnameProblem} finds nothing wrong with `name`. */
export function isValidIfname(name: string, rule: IfnameRule = {}): boolean {
  return ifnameProblem(name, rule) === null;
}
