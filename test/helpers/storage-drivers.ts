// The (content, metadata) pairs the storage contract suite (test/integration/storage-contract.test.ts)
// runs against. Each driver gives a fresh, empty data space per test and can open it again (a
// restart, or another replica on the same storage). Add a driver by appending to STORAGE_DRIVERS.
import path from 'node:path';
import type { BlobContent, ContentOptions } from '../../src/registry/storage/content/types.js';
import { FilesystemContent } from '../../src/registry/storage/content/filesystem.js';
import { noSyncs } from '../../src/registry/storage/durable.js';
import { SqliteMetadata } from '../../src/registry/storage/metadata/sqlite.js';
import type { MetadataStore } from '../../src/registry/storage/metadata/types.js';
import { Database } from '../../src/database/database.js';
import { PostgresMetadata } from '../../src/registry/storage/metadata/postgres.js';
import { startPostgres, type Postgres } from './postgres.js';
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
      metadata: async () => new SqliteMetadata(path.join(tmp.path, 'metadata.db')),
      cleanup: async () => tmp.cleanup(),
    };
  },
};

/** Filesystem content with metadata in a real PostgreSQL (test/helpers/postgres.ts): one empty database per space. */
export function filesystemPostgres(): StorageDriver {
  let server: Postgres | undefined;
  let spaces = 0;
  return {
    name: 'filesystem + postgres',
    async setup() {
      server = await startPostgres();
    },
    async teardown() {
      await server?.close();
    },
    async space() {
      if (!server) throw new Error('filesystem + postgres: setup() was not run');
      const tmp: TempDir = makeTempDir('layover-contract-pg-');
      const root = path.join(tmp.path, 'data');
      const url = await server.createDatabase(`contract_${++spaces}`);
      // Each metadata() is another process's view: its own connection pool on the same database.
      const pools: Database[] = [];
      return {
        root,
        content: async (options) => new FilesystemContent(root, options, noSyncs).init(),
        metadata: async () => {
          const db = new Database(url, { maxConnections: 4 });
          pools.push(db);
          return new PostgresMetadata(db);
        },
        cleanup: async () => {
          await Promise.all(pools.map((db) => db.close()));
          tmp.cleanup();
        },
      };
    },
  };
}

export const STORAGE_DRIVERS: StorageDriver[] = [filesystemSqlite, filesystemPostgres()];
