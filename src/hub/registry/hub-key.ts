/**
 * The hub's private key file (`DATA_DIR/hub.key`). Every hub of a fleet has
 * its own key, also when they share one registry.
 * @module
 */

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { getCrypto } from '../../crypto/index.js';
import { isZeroKey, keyFromBase64, keyToBase64 } from '../../crypto/keys.js';
import { createSecretFileExclusiveSync, readSecretFileSync } from '../../os/fsutil.js';
import { HUB_KEY_FILE, RegistryError } from './types.js';

function ioError(e: unknown, what: string): RegistryError {
  return new RegistryError('STORE_UNAVAILABLE', `${what}: ${e instanceof Error ? e.message : String(e)}; check that the data directory is writable and not full`, undefined, { cause: e });
}

/**
 * Read the hub's private key from `DATA_DIR/hub.key` (base64), creating it
 * on first use: a new key is written to a temporary file (mode 0600,
 * fsynced) and hard-linked into place, so a concurrent creator never
 * overwrites a key the other already returned, and a reader never sees a
 * partial file. A key file readable by others is tightened to 0600. (This is
 * synchronous; `writeFileAtomic0600` is asynchronous and would replace an
 * existing key.)
 * @throws RegistryError `NOT_INITIALIZED` when the data directory is missing,
 *   `INVALID_KEY` when the file is corrupt, `STORE_UNAVAILABLE` on I/O errors.
 */
export function loadOrCreateHubKey(dataDir: string): Uint8Array {
  const path = join(dataDir, HUB_KEY_FILE);
  if (!existsSync(dataDir)) {
    throw new RegistryError(
      'NOT_INITIALIZED',
      `data directory ${dataDir} does not exist; run "tsguard hub up <ifname> --subnet <cidr> --data-dir ${dataDir}" first`,
    );
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    let text: string | null;
    try {
      text = readSecretFileSync(path);
    } catch (e) {
      throw ioError(e, `cannot read ${path}`);
    }
    if (text !== null) {
      let key: Uint8Array;
      try {
        key = keyFromBase64(text, `hub private key in ${path}`);
      } catch (e) {
        throw new RegistryError(
          'INVALID_KEY',
          `${(e as Error).message}; restore ${HUB_KEY_FILE} from a backup (every peer is configured with the hub's public key) or delete it to generate a new one`,
        );
      }
      if (isZeroKey(key)) throw new RegistryError('INVALID_KEY', `${path} holds the all-zero key; restore it from a backup or delete it`);
      return key;
    }
    const key = getCrypto().generatePrivateKey();
    try {
      if (createSecretFileExclusiveSync(path, keyToBase64(key) + '\n')) return key;
    } catch (e) {
      key.fill(0);
      throw ioError(e, `cannot create ${path}`);
    }
    key.fill(0); // another process created it first: use theirs
  }
  throw new RegistryError('STORE_UNAVAILABLE', `cannot read or create ${path}`);
}
