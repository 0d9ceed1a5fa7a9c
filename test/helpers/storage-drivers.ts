// The (content, metadata) pairs the storage contract suite (test/integration/storage-contract.test.ts)
// runs against. Each driver gives a fresh, empty data space per test and can open it again (a
// restart, or another replica on the same storage). Add a driver by appending to STORAGE_DRIVERS.
import path from 'node:path';
import type { BlobContent, ContentOptions } from '../../src/registry/storage/content/types.js';
import { FilesystemContent } from '../../src/registry/storage/content/filesystem.js';
import { noSyncs } from '../../src/registry/storage/durable.js';
import { SqliteMetadata } from '../../src/registry/storage/metadata/sqlite.js';
import type { MetadataStore } from '../../src/registry/storage/metadata/types.js';
import { createS3Client } from '../../src/registry/storage/content/s3-client.js';
import { S3Content } from '../../src/registry/storage/content/s3.js';
import { startCephRgw, type CephRgw } from './ceph-rgw.js';
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

/** Blob content in a bucket of a real Ceph RGW (one cluster per test file, a bucket per space). */
export function s3Sqlite(): StorageDriver {
  let rgw: CephRgw | undefined;
  return {
    name: 's3 (Ceph RGW) + sqlite',
    async setup() {
      rgw = await startCephRgw();
    },
    async teardown() {
      await rgw?.close();
    },
    async space() {
      if (!rgw) throw new Error('s3 driver: setup() first');
      const cluster = rgw;
      const tmp: TempDir = makeTempDir('layover-contract-s3-');
      const bucket = await cluster.createBucket('contract');
      const config = { endpoint: cluster.endpoint, region: cluster.region, bucket, prefix: 'layover/', forcePathStyle: true, redirect: false, redirectTTLMs: 60_000 };
      // The driver's default credentials chain reads the standard variables.
      process.env.AWS_ACCESS_KEY_ID = cluster.accessKeyId;
      process.env.AWS_SECRET_ACCESS_KEY = cluster.secretAccessKey;
      let spools = 0;
      return {
        root: path.join(tmp.path, 'data'),
        content: async (options) => new S3Content(createS3Client(config), { ...options, bucket, prefix: config.prefix, spoolDir: path.join(tmp.path, `spool-${spools++}`) }).init(),
        metadata: async () => new SqliteMetadata(path.join(tmp.path, 'metadata.db')),
        cleanup: async () => tmp.cleanup(),
      };
    },
  };
}

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

export const STORAGE_DRIVERS: StorageDriver[] = [filesystemSqlite, s3Sqlite(), filesystemPostgres()];
