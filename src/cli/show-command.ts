/**
 * `tsguard show [IFNAME|all|interfaces] [SELECTOR]`: wg's show command over
 * the UAPI sockets, with its listing rules, separators and exit statuses.
 * @module
 */

import { UsageError } from './args.js';
import { colourWanted, formatSelector, formatShow, isShowSelector, SHOW_SELECTORS } from './show.js';
import { listLiveInterfaces, uapiGetState } from '../uapi/client.js';

const USAGE_HINT = `tsguard show { IFNAME | all | interfaces } [${SHOW_SELECTORS.join(' | ')}]`;

/** Run `tsguard show ARGS`, writing to `out`; resolves with the exit status. */
export async function showCommand(args: readonly string[], out: (s: string) => void): Promise<number> {
  const [target = 'all', selector] = args;
  if (selector !== undefined && !isShowSelector(selector)) throw new UsageError(`invalid parameter "${selector}"; usage: ${USAGE_HINT}`, 'tsguard show');
  const pretty = { colour: colourWanted(), showKeys: process.env.WG_HIDE_KEYS === 'never' };
  if (target === 'interfaces') {
    if (selector !== undefined) throw new UsageError(`"show interfaces" takes nothing after it; usage: ${USAGE_HINT}`, 'tsguard show');
    const names = await listLiveInterfaces();
    if (names.length) out(names.join(' ') + '\n');
    return 0;
  }
  if (target !== 'all') {
    const state = await uapiGetState(target);
    out(selector === undefined ? formatShow(target, state, pretty) : formatSelector(state, selector, undefined));
    return 0;
  }
  const names = await listLiveInterfaces();
  // As wg: success when there is nothing to show or at least one interface could be read.
  let code = names.length ? 1 : 0;
  for (const [i, name] of names.entries()) {
    let state;
    try {
      state = await uapiGetState(name);
    } catch (e) {
      process.stderr.write(`Unable to access interface ${name}: ${(e as Error).message}\n`);
      continue;
    }
    if (selector === undefined) out(formatShow(name, state, pretty) + (i < names.length - 1 ? '\n' : ''));
    else out(formatSelector(state, selector, name));
    code = 0;
  }
  return code;
}
