// Opens the configured PostgreSQL database for a process (server or CLI): reads the URL (or its
// file), creates the pool and brings the schema up to date. At start-up the database may still be
// coming up (a Deployment and its database started together): keep trying for a while.
import type { DatabaseConfig } from '../config/config.js';
import type { Logger } from '../log.js';
import { METADATA_TRACK } from '../registry/storage/metadata/postgres.js';
import { COORDINATION } from './coordination-schema.js';
import { Database, isDatabaseUnavailable } from './database.js';
import { migrate, type MigrationTrack } from './migrate.js';
import { databaseUrl } from './url.js';

/** Every schema a layover database holds, in the order they are migrated. */
export const TRACKS: MigrationTrack[] = [METADATA_TRACK, COORDINATION];

export interface OpenDatabaseOptions {
  logger?: Pick<Logger, 'info' | 'warn' | 'debug'>;
  /** How long to keep retrying an unreachable database at start-up (default 60 s). */
  waitMs?: number;
  applicationName?: string;
}

export async function openDatabase(config: DatabaseConfig, options: OpenDatabaseOptions = {}): Promise<Database> {
  const url = await databaseUrl(config);
  const db = new Database(url, { maxConnections: config.maxConnections, connectTimeoutMs: config.connectTimeoutMs, logger: options.logger, applicationName: options.applicationName });
  const deadline = Date.now() + (options.waitMs ?? 60_000);
  for (let attempt = 1; ; attempt++) {
    try {
      const ran = await migrate(db, TRACKS);
      options.logger?.info({ database: db.location, migrations: ran }, 'database ready');
      return db;
    } catch (err) {
      if (!isDatabaseUnavailable(err) || Date.now() >= deadline) {
        await db.close();
        throw err;
      }
      if (attempt === 1) options.logger?.warn({ database: db.location, problem: (err as Error).message }, 'database unreachable; retrying');
      await new Promise((r) => setTimeout(r, Math.min(2_000, 200 * attempt)));
    }
  }
}
