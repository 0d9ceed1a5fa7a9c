// The database URL: checked without echoing it, read from a file at start-up, and shown in logs
// and messages only with its password replaced.
import { readFile } from 'node:fs/promises';
import type { DatabaseConfig } from '../config/config.js';

export function isPostgresUrl(url: string): boolean {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'postgres:' || parsed.protocol === 'postgresql:';
  } catch {
    return false;
  }
}

/** `url` with any password replaced by `***`, for logs and messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    // A password can also travel as a query parameter.
    if (parsed.searchParams.has('password')) parsed.searchParams.set('password', '***');
    return parsed.toString();
  } catch {
    return '(unparsable database URL)';
  }
}

export class DatabaseConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatabaseConfigError';
  }
}

/** The URL from `database.url`, or read from `database.urlFile` (trailing whitespace dropped). */
export async function databaseUrl(db: DatabaseConfig): Promise<string> {
  if (db.url !== undefined) return db.url;
  if (db.urlFile === undefined) throw new DatabaseConfigError('database: needs url or urlFile');
  let text: string;
  try {
    text = await readFile(db.urlFile, 'utf8');
  } catch (err) {
    throw new DatabaseConfigError(`database.urlFile ${db.urlFile}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const url = text.trim();
  if (!isPostgresUrl(url)) throw new DatabaseConfigError(`database.urlFile ${db.urlFile}: does not hold a postgres:// or postgresql:// URL`);
  return url;
}
