// The embedded store, layover's default: blob content as files under <root>/blobs
// (content/filesystem.ts) and metadata in SQLite at <root>/metadata.db (metadata/sqlite.ts).
// A data directory written by an older layover (metadata as files under repositories/, sources/,
// uploads/) is imported into the database on first start (legacy-import.ts).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ReferenceGuard } from '../gc/guard.js';
import { ComposedStore } from './composed-store.js';
import { FilesystemContent } from './content/filesystem.js';
import { fsyncs, noSyncs, type Syncs } from './durable.js';
import { importLegacyMetadata } from './legacy-import.js';
import { SqliteMetadata } from './metadata/sqlite.js';

export const METADATA_FILE = 'metadata.db';

export class EmbeddedStore extends ComposedStore {
  declare readonly content: FilesystemContent;
  declare readonly metadata: SqliteMetadata;

  /** Opens the database synchronously; call init() before serving (it imports legacy data). */
  constructor(root: string, syncs: Syncs = fsyncs, now?: () => number) {
    const guard = new ReferenceGuard();
    const content = new FilesystemContent(root, { beforePublish: (digest) => guard.use(digest) }, syncs);
    mkdirSync(root, { recursive: true });
    // The database's log is synced like any other file this store makes durable (durable.ts).
    const metadata = new SqliteMetadata(path.join(root, METADATA_FILE), syncs === noSyncs ? {} : { syncFile: (file) => syncs.file(file) });
    metadata.openSync();
    super(root, content, metadata, guard, now);
  }

  async init(): Promise<this> {
    await this.content.init();
    await importLegacyMetadata(this.root, this.metadata);
    return this;
  }
}

export async function openEmbeddedStore(root: string, syncs?: Syncs): Promise<EmbeddedStore> {
  return new EmbeddedStore(root, syncs).init();
}
