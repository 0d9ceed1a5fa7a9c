// Audit entries for what the CLI changes itself, without the running registry: users, teams and
// signing keys (`layover user|team|token`). They go to the same table as the registry's own
// (the metadata database: PostgreSQL with database.url, else <storage.root>/metadata.db), so
// `layover audit` shows them with the rest. Where that database does not exist (the CLI runs
// away from the registry's data), there is no trail to add to and nothing is written.
import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import path from 'node:path';
import type { Config } from '../config/config.js';
import type { Database } from '../database/database.js';
import type { AuditEntry } from './audit-log.js';

/** The person at the terminal, as far as the OS knows. */
function cliActor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

/** Writes one entry; a failure is a warning on stderr, never the command's failure. */
export async function auditFromCli(config: Config, database: Database | undefined, entry: Omit<AuditEntry, 'actor'>): Promise<void> {
  const event = { ...entry, actor: cliActor(), at: entry.at ?? Date.now() };
  try {
    if (database) {
      const { PostgresMetadata } = await import('../registry/storage/metadata/postgres.js');
      const metadata = new PostgresMetadata(database);
      await metadata.open();
      await metadata.appendAudit([event]);
      return;
    }
    const { METADATA_FILE } = await import('../registry/storage/embedded.js');
    const file = path.join(config.storage.root, METADATA_FILE);
    if (!existsSync(file)) return;
    const { SqliteMetadata } = await import('../registry/storage/metadata/sqlite.js');
    const metadata = new SqliteMetadata(file);
    try {
      await metadata.open();
      await metadata.appendAudit([event]);
    } finally {
      await metadata.close();
    }
  } catch (err) {
    process.stderr.write(`layover: warning: the audit entry (${entry.action} ${entry.target}) was not written: ${(err as Error).message}\n`);
  }
}
