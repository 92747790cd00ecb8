/**
 * Small helpers of the registry and registration tests: fresh public keys,
 * expected refusals of `registerWithHub`, and a process that holds the write
 * lock of a SQLite registry.
 */
import { spawn } from 'node:child_process';
import { JoinError } from '../../src/agent/join.js';
import { getCrypto } from '../../src/crypto/index.js';
import { keyToBase64 } from '../../src/crypto/keys.js';

/** A new random public key, base64. */
export function newKey(): string {
  const c = getCrypto();
  return keyToBase64(c.publicKey(c.generatePrivateKey()));
}

/** The JoinError `p` rejects with (anything else fails the test). */
export async function refusal(p: Promise<unknown>): Promise<JoinError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof JoinError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

/**
 * Start a process that holds the write lock of the SQLite file `path`
 * (`BEGIN IMMEDIATE` and a write) until the returned function is called,
 * which rolls back and waits for the process to exit.
 */
export async function holdLock(path: string): Promise<() => Promise<void>> {
  const script = `
    const Database = require('better-sqlite3');
    const db = new Database(process.argv[1]);
    db.exec('BEGIN IMMEDIATE');
    db.prepare("INSERT INTO meta (key, value) VALUES ('locked-by-test', '1') ON CONFLICT (key) DO NOTHING").run();
    process.stdout.write('locked\\n');
    process.stdin.resume();
    process.stdin.on('end', () => { db.exec('ROLLBACK'); db.close(); process.exit(0); });`;
  const child = spawn(process.execPath, ['-e', script, path], { cwd: process.cwd(), stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`the lock holder exited with ${c}`)));
  });
  return async () => {
    child.stdin.end();
    await new Promise((r) => child.once('exit', r));
  };
}
