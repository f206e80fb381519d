import { defineConfig } from 'vitest/config';

// The browser tests (test/browser/): a real server and Debian's Chromium, one file at a time.
export default defineConfig({
  test: {
    name: 'browser',
    include: ['test/browser/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
