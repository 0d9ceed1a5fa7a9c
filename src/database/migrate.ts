// Runs schema migrations at start-up, once for the whole cluster: under an advisory lock, each
// migration in its own transaction together with its version bump, so a crash leaves the database
// at one version or the next, and replicas starting together wait for the first and find nothing
// left to do.
import type pg from 'pg';
import type { Database } from './database.js';
import { LOCK } from './locks.js';

export interface MigrationTrack {
  /** The one-row table holding the track's version (a constant, never user input). */
  table: string;
  migrations: { version: number; statements: string[] }[];
}

/** Applies every pending migration of every track; returns how many ran. */
export async function migrate(db: Database, tracks: MigrationTrack[]): Promise<number> {
  for (const t of tracks) if (!/^[a-z_]+$/.test(t.table)) throw new Error(`bad version table name ${t.table}`);
  return db.withClient(async (client) => {
    await client.query('SELECT pg_advisory_lock($1::bigint)', [LOCK.migrate]);
    try {
      let ran = 0;
      for (const track of tracks) ran += await migrateTrack(client, track);
      return ran;
    } finally {
      await client.query('SELECT pg_advisory_unlock($1::bigint)', [LOCK.migrate]);
    }
  });
}

async function migrateTrack(client: pg.PoolClient, track: MigrationTrack): Promise<number> {
  await client.query(`CREATE TABLE IF NOT EXISTS ${track.table} (version BIGINT NOT NULL)`);
  const { rows } = await client.query<{ version: number | null }>(`SELECT max(version) AS version FROM ${track.table}`);
  const current = Number(rows[0]?.version ?? 0);
  const latest = Math.max(0, ...track.migrations.map((m) => m.version));
  if (current > latest) throw new Error(`the database's ${track.table} is ${current}, newer than this layover knows (${latest}): run the newer version`);
  let ran = 0;
  for (const migration of [...track.migrations].sort((a, b) => a.version - b.version)) {
    if (migration.version <= current) continue;
    await client.query('BEGIN');
    try {
      for (const statement of migration.statements) await client.query(statement);
      await client.query(`DELETE FROM ${track.table}`);
      await client.query(`INSERT INTO ${track.table} (version) VALUES ($1)`, [migration.version]);
      await client.query('COMMIT');
      ran += 1;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw new Error(`migration ${track.table} ${migration.version} failed: ${(err as Error).message}`, { cause: err });
    }
  }
  return ran;
}
