import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration tests start real servers and peers; two cores, so keep parallelism modest.
    maxWorkers: 2,
    // LAYOVER_TEST_METADATA=postgres: the whole suite with its metadata in PostgreSQL (one server per run);
    // LAYOVER_TEST_STORAGE=s3: with its blob content on one Ceph RGW per run (a prefix per layover).
    globalSetup: ['test/helpers/postgres-suite.ts', 'test/helpers/s3-suite.ts'],
    reporters: ['default'],
  },
});
