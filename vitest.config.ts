import { defineConfig } from 'vitest/config';

// The suite always runs on SQLite; with TEST_DATABASE_URL set it runs again on PostgreSQL.
const pg = process.env.TEST_DATABASE_URL;
const common = {
  include: ['test/**/*.test.ts'],
  exclude: ['test/browser/**', 'node_modules/**'],
  testTimeout: 60_000,
  hookTimeout: 120_000,
  pool: 'forks' as const,
};

export default defineConfig({
  test: {
    projects: [
      { test: { ...common, name: 'sqlite', env: { AYNI_TEST_DB: 'sqlite' } } },
      ...(pg ? [{ test: { ...common, name: 'postgresql', env: { AYNI_TEST_DB: 'postgresql' } } }] : []),
    ],
  },
});
