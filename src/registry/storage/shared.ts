// The store of a replica that shares its metadata through PostgreSQL (database.url): blob content
// from the configured driver (the filesystem under storage.root here: one volume all replicas
// mount, or a single process), metadata in the database (metadata/postgres.ts).
import type { Database } from '../../database/database.js';
import { composeStore, type ComposedStore } from './composed-store.js';
import { FilesystemContent } from './content/filesystem.js';
import { PostgresMetadata } from './metadata/postgres.js';

export function openSharedStore(root: string, database: Database): Promise<ComposedStore> {
  return composeStore(root, (options) => new FilesystemContent(root, options).init(), new PostgresMetadata(database));
}
