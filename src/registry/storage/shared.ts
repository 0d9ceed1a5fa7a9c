// The store of a replica that shares its metadata through PostgreSQL (database.url): blob content
// from the configured driver (the filesystem under storage.root here: one volume all replicas
// mount, or a single process), metadata in the database (metadata/postgres.ts), and a GC guard
// that re-checks in the database what other replicas did (database/sweep.ts).
import type { Database } from '../../database/database.js';
import { ClusterReferenceGuard } from '../gc/cluster-guard.js';
import { ComposedStore } from './composed-store.js';
import { FilesystemContent } from './content/filesystem.js';
import { PostgresMetadata } from './metadata/postgres.js';

export async function openSharedStore(root: string, database: Database, now?: () => number): Promise<ComposedStore> {
  const metadata = new PostgresMetadata(database);
  const guard = new ClusterReferenceGuard(now, (before) => metadata.purgeTombstones(before));
  const content = await new FilesystemContent(root, { beforePublish: (digest) => guard.use(digest) }).init();
  await metadata.open();
  return new ComposedStore(root, content, metadata, guard, now);
}
