// The store the configuration asks for. Blob content: files under storage.root (the default) or
// an S3 bucket (storage.driver: s3). Metadata: SQLite under storage.root (embedded), or
// PostgreSQL when database.url is set, shared by replicas (shared.ts).
import path from 'node:path';
import type { Config, S3Config } from '../../config/config.js';
import type { Database } from '../../database/database.js';
import { composeStore, type ComposedStore } from './composed-store.js';
import { fsyncs } from './durable.js';
import { contentFactory } from './content/open-content.js';
import { METADATA_FILE, openEmbeddedStore } from './embedded.js';
import { SqliteMetadata } from './metadata/sqlite.js';
import type { Store } from './store.js';

export async function openStore(config: Config, database?: Database): Promise<Store> {
  const { driver, root, s3 } = config.storage;
  const bucket = driver === 's3' ? s3 : undefined;
  // The PostgreSQL store and the S3 client are imported only by the configurations that use them.
  if (database) return (await import('./shared.js')).openSharedStore(root, database, undefined, bucket);
  if (bucket) return openS3Store(root, bucket);
  return openEmbeddedStore(root);
}

/** Blob content in S3; local files under `root` hold the metadata database and spool files only. */
export async function openS3Store(root: string, s3: S3Config): Promise<ComposedStore> {
  return composeStore(root, await contentFactory(root, s3), new SqliteMetadata(path.join(root, METADATA_FILE), { syncFile: (file) => fsyncs.file(file) }));
}
