// The store of a replica that shares its metadata through PostgreSQL (database.url): blob content
// from the configured driver (an S3 bucket, or the filesystem under storage.root: one volume all
// replicas mount, or a single process), metadata in the database (metadata/postgres.ts), and a
// GC guard that re-checks in the database what other replicas did (database/sweep.ts).
import type { Database } from '../../database/database.js';
import { ClusterReferenceGuard } from '../gc/cluster-guard.js';
import { ComposedStore } from './composed-store.js';
import type { S3Config } from '../../config/config.js';
import { contentFactory } from './content/open-content.js';
import { PostgresMetadata } from './metadata/postgres.js';

export async function openSharedStore(root: string, database: Database, now?: () => number, s3?: S3Config): Promise<ComposedStore> {
  const metadata = new PostgresMetadata(database);
  const guard = new ClusterReferenceGuard(now, (before) => metadata.purgeTombstones(before));
  const content = await (await contentFactory(root, s3))({ beforePublish: (digest) => guard.use(digest) });
  await metadata.open();
  return new ComposedStore(root, content, metadata, guard, now);
}
