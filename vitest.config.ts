import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 60_000,
    // Set-up starts databases and processes; on a loaded machine that takes far longer than the test.
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
