// vitest globalSetup for running the whole suite on the shared-metadata configuration
// (LAYOVER_TEST_METADATA=postgres): one private PostgreSQL for the run, started here in the main
// process and stopped at its end, whatever happens to the test workers. Workers create a
// database per layover on it (layover.ts) through LAYOVER_TEST_POSTGRES_ADMIN. A no-op otherwise.
import { startPostgres, type Postgres } from './postgres.js';

let server: Postgres | undefined;

export async function setup(): Promise<void> {
  if (process.env.LAYOVER_TEST_METADATA !== 'postgres') return;
  server = await startPostgres();
  // The superuser over loopback (trust): workers only run CREATE DATABASE with it.
  process.env.LAYOVER_TEST_POSTGRES_ADMIN = server.url.replace('postgres://layover@', 'postgres://postgres@').replace(/\/layover$/, '/postgres');
}

export async function teardown(): Promise<void> {
  await server?.close();
}
