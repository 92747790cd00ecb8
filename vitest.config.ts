import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Chooses the crypto provider as the entry points do (native by default; see src/crypto/index.ts).
    setupFiles: ['test/setup-crypto.ts'],
    // Worker threads the code under test starts on its own modules (the SQLite registry's) load the
    // TypeScript sources through these hooks; vitest transforms only what it imports itself.
    execArgv: ['--disable-warning=ExperimentalWarning', '--experimental-loader', new URL('./test/ts-loader.mjs', import.meta.url).href],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Network-namespace tests share /var/run/wireguard and veth names: keep files in one worker at a time.
    fileParallelism: false,
    reporters: ['default'],
  },
});
