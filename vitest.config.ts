import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Chooses the crypto provider as the entry points do (native by default; see src/crypto/index.ts).
    setupFiles: ['test/setup-crypto.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Network-namespace tests share /var/run/wireguard and veth names: keep files in one worker at a time.
    fileParallelism: false,
    reporters: ['default'],
  },
});
