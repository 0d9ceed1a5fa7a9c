// The (content, metadata) pairs the storage contract suite (test/integration/storage-contract.test.ts)
// runs against. Each driver gives a fresh, empty data space per test and can open it again (a
// restart, or another replica on the same storage). Add a driver by appending to STORAGE_DRIVERS.
import path from 'node:path';
import type { BlobContent, ContentOptions } from '../../src/registry/storage/content/types.js';
import { FilesystemContent } from '../../src/registry/storage/content/filesystem.js';
import { noSyncs } from '../../src/registry/storage/durable.js';
import { SqliteMetadata } from '../../src/registry/storage/metadata/sqlite.js';
import type { MetadataStore } from '../../src/registry/storage/metadata/types.js';
import { makeTempDir, type TempDir } from './temp-dir.js';

/** One data space: content and metadata that belong together; each call opens new instances on it. */
export interface StorageSpace {
  /** A root directory for messages (and for drivers that keep files). */
  root: string;
  content(options: ContentOptions): Promise<BlobContent>;
  metadata(): Promise<MetadataStore>;
  /** Removes the space's data (after its stores are closed). */
  cleanup(): Promise<void>;
}

export interface StorageDriver {
  name: string;
  /** Starts what the driver needs (servers) once per test file; undefined when nothing. */
  setup?(): Promise<void>;
  teardown?(): Promise<void>;
  space(): Promise<StorageSpace>;
}

export const filesystemSqlite: StorageDriver = {
  name: 'filesystem + sqlite',
  async space() {
    const tmp: TempDir = makeTempDir('layover-contract-');
    const root = path.join(tmp.path, 'data');
    return {
      root,
      content: async (options) => new FilesystemContent(root, options, noSyncs).init(),
      metadata: async () => new SqliteMetadata(path.join(tmp.path, 'metadata.db'), { durable: false }),
      cleanup: async () => tmp.cleanup(),
    };
  },
};

export const STORAGE_DRIVERS: StorageDriver[] = [filesystemSqlite];
