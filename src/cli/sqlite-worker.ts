/**
 * The module the SQLite registry's worker thread loads when the CLI runs from
 * its bundle: `src/hub/registry/sqlite-store.ts` starts the worker on
 * `./sqlite-worker.js` beside itself, which in the bundle is `dist/cli/`
 * (scripts/bundle-cli.mjs bundles this entry like the bins).
 * @module
 */
export { serve } from '../hub/registry/sqlite-worker.js';
