// Both metadata engines for tests of their maintained rows (repository summaries, du's holdings):
// one SQLite file or one private PostgreSQL database, any number of store instances on it (two
// instances on PostgreSQL are two replicas), and raw SQL beside them. Also the small fixture both
// tests write with: digests named by a short label, and sizes that are distinct powers of two, so
// a blob counted twice or missed changes every sum.
import { Database } from '../../src/database/database.js';
import type { Digest } from '../../src/registry/digest.js';
import { numbered, PostgresMetadata } from '../../src/registry/storage/metadata/postgres.js';
import type { Row } from '../../src/registry/storage/metadata/rows.js';
import type { Dialect } from '../../src/registry/storage/metadata/schema.js';
import { SqliteMetadata } from '../../src/registry/storage/metadata/sqlite.js';
import type { ManifestRef, MetadataStore } from '../../src/registry/storage/metadata/types.js';
import { startPostgres, type Postgres } from './postgres.js';
import { makeTempDir, type TempDir } from './temp-dir.js';

export interface MetadataEngine {
  name: Dialect;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A new store instance on the engine's one database (another replica, on PostgreSQL). */
  store(): Promise<SqliteMetadata | PostgresMetadata>;
  /** Runs raw SQL on the database, `?` placeholders. */
  query(sql: string, params: unknown[]): Promise<Row[]>;
  /** Runs raw SQL statements (to take the schema back to an earlier migration). */
  exec(sql: string): Promise<void>;
  /**
   * PostgreSQL only (SQLite has one writer): runs raw SQL in a transaction that stays open, as
   * another replica's write in flight, until the returned function commits it.
   */
  begin?(sql: string, params: unknown[]): Promise<() => Promise<void>>;
}

function sqliteEngine(label: string): MetadataEngine {
  let tmp: TempDir | undefined;
  let raw: SqliteMetadata | undefined;
  const stores: SqliteMetadata[] = [];
  const file = () => `${tmp!.path}/metadata.db`;
  return {
    name: 'sqlite',
    async setup() {
      tmp = makeTempDir(`layover-${label}-`);
    },
    async teardown() {
      for (const s of stores) await s.close();
      await raw?.close();
      tmp?.cleanup();
    },
    async store() {
      const s = new SqliteMetadata(file());
      stores.push(s);
      await s.open();
      return s;
    },
    async query(sql, params) {
      if (!raw) {
        raw = new SqliteMetadata(file());
        await raw.open();
      }
      return raw.database.prepare(sql).all(...params) as Row[];
    },
    async exec(sql) {
      const s = new SqliteMetadata(file());
      await s.open();
      s.database.exec(sql);
      await s.close();
    },
  };
}

function postgresEngine(label: string): MetadataEngine {
  let server: Postgres | undefined;
  let url = '';
  let raw: Database | undefined;
  const pools: Database[] = [];
  const pool = () => {
    const db = new Database(url, { maxConnections: 4 });
    pools.push(db);
    return db;
  };
  return {
    name: 'postgres',
    async setup() {
      server = await startPostgres();
      url = await server.createDatabase(label);
    },
    async teardown() {
      await Promise.all(pools.map((db) => db.close()));
      await server?.close();
    },
    async store() {
      const s = new PostgresMetadata(pool());
      await s.open();
      return s;
    },
    async query(sql, params) {
      raw ??= pool();
      return raw.query<Row>(numbered(sql), params);
    },
    async begin(sql, params) {
      raw ??= pool();
      let commit!: () => void;
      const told = new Promise<void>((resolve) => (commit = resolve));
      let ran!: () => void;
      const running = new Promise<void>((resolve) => (ran = resolve));
      const done = raw.transaction(async (tx) => {
        await tx.query(numbered(sql), params);
        ran();
        await told;
      });
      await Promise.race([running, done]);
      return async () => {
        commit();
        await done;
      };
    },
    async exec(sql) {
      await pool().query(sql);
    },
  };
}

/** SQLite, then PostgreSQL; `label` names the temp directory and the database. */
export function metadataEngines(label: string): MetadataEngine[] {
  return [sqliteEngine(label), postgresEngine(label)];
}

export const IMAGE = 'application/vnd.oci.image.manifest.v1+json';
export const INDEX = 'application/vnd.oci.image.index.v1+json';
export const AT = 1_700_000_000_000;
export const SIZES: Readonly<Record<string, number>> = { c1: 1, l1: 2, l2: 4, l3: 8, l4: 16, m1: 32, m2: 64, m3: 128, i1: 256, dup: 512, u1: 1024, l5: 2048, m4: 4096 };

export const d = (name: string) => `sha256:${name.padEnd(64, '0')}` as Digest;
/** An image manifest's references to its blobs. */
export const image = (m: string, blobs: string[]): ManifestRef[] => blobs.map((b) => ({ manifest: d(m), kind: 'blob', ref: d(b) }));
export const put = (meta: MetadataStore, repository: string, m: string, refs: ManifestRef[], mediaType = IMAGE, at = AT) =>
  meta.putManifest({ repository, digest: d(m), mediaType, size: SIZES[m] ?? 0, createdAt: at }, refs);
export const blob = (meta: MetadataStore, name: string) => meta.putBlob({ digest: d(name), size: SIZES[name]!, createdAt: AT });
