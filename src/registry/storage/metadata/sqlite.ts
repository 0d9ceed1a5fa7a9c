// The embedded metadata engine: SQLite through better-sqlite3, one file <root>/metadata.db in WAL
// mode (readers never wait for the writer; several processes on one host may open it, as the CLI
// and tests do). Calls are synchronous underneath; each is a prepared statement on an indexed
// key, so they take microseconds and the async interface costs nothing real.
import Database from 'better-sqlite3';
import type { Digest } from '../../digest.js';
import type { Descriptor } from '../../manifest.js';
import type { UploadDriverState } from '../content/types.js';
import { auditOf, auditParams, auditWhere, freshSummariesSql, gcRunOf, HOLDINGS_STALE, holdingsRefreshSql, namespaceEnd, repositorySummaryOf, servedSummaries, storedSummariesSql, summaryIsCurrent, summaryMarks, SUMMARY_STORE_COLUMNS, SUMMARY_STORE_CONFLICT, revisionOf, revisionParams, revisionUpsert, STORAGE_TOTALS_SQL, storageUsageOf, storageUsageSql, totalsOf, type UsageDialect, uploadOf, uploadParams, usageSampleOf, usageSampleParams, type Row } from './rows.js';
import { HOLDINGS_BACKFILL, MIGRATIONS, namespaceOfIn, namespaceOfSql, SCHEMA_VERSION_TABLE, statementsFor, SUMMARY_BACKFILL } from './schema.js';
import type { AuditEvent, AuditQuery, AuditRecord, BlobRecord, GcRunRecord, ManifestRef, MetadataStore, Page, PullTime, RepositorySummary, RevisionRecord, StorageTotals, TagRecord, UploadRecord, UsageAggregate, UsageSample } from './types.js';

const SUMMARY_STORE = `INSERT INTO repository_summaries ${SUMMARY_STORE_COLUMNS} SELECT ?, ?, ?, ?, ?, ?, ? FROM repositories WHERE name = ? ${SUMMARY_STORE_CONFLICT}`;
const MARKS = summaryMarks('sqlite');
const FRESH_SUMMARIES = freshSummariesSql('r.name IN (SELECT value FROM json_each(?))', '-1');

type Statement = Database.Statement<unknown[], Row>;

const REVISION_UPSERT = revisionUpsert(() => '?');

/** Lists arrive as one JSON array parameter (json_each): one prepared statement for any length. */
const USAGE_DIALECT: UsageDialect = {
  namespaceOf: (column) => namespaceOfSql(column, 'sqlite'),
  inList: (column) => `${column} IN (SELECT value FROM json_each(?))`,
};
const HOLDINGS_REFRESH = holdingsRefreshSql(USAGE_DIALECT);

export interface SqliteOptions {
  /**
   * Makes the log durable before a write resolves (an acknowledged push survives a power loss):
   * `syncFile(<db>-wal)` runs after the commit, off the event loop, one sync for every write
   * committed meanwhile. Omitted: no sync (tests, benchmarks). Pull times and upload-session state
   * are never synced (a hint; a session lost with the power is restarted by its client).
   */
  syncFile?: (file: string) => Promise<void>;
}

export class SqliteMetadata implements MetadataStore {
  private db: Database.Database | undefined;
  private readonly cache = new Map<string, Statement>();

  constructor(
    readonly file: string,
    private readonly options: SqliteOptions = {},
  ) {}

  /** The open database (for the legacy importer, which writes in one transaction). */
  get database(): Database.Database {
    if (!this.db) throw new Error('metadata: database is not open');
    return this.db;
  }

  private sql(text: string): Statement {
    let s = this.cache.get(text);
    if (!s) {
      s = this.database.prepare(text) as Statement;
      this.cache.set(text, s);
    }
    return s;
  }

  async open(): Promise<void> {
    this.openSync();
  }

  /** better-sqlite3 opens synchronously: a store can be constructed on a live data directory. */
  openSync(): void {
    if (this.db) return;
    const db = new Database(this.file);
    db.pragma('journal_mode = WAL');
    // NORMAL: a commit does not fsync on the event loop (better-sqlite3 is synchronous); the
    // durable writes sync the log themselves, asynchronously and grouped (syncLog).
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 10000');
    // The page cache may grow to 64 MiB (SQLite's default is 2 MiB): at 50,000 repositories the
    // database is ~120 MB, and ls/du read its indexes by digest, in no useful order; with the
    // default cache every such read is a pread of the OS page cache, which doubled their CPU
    // (test/bench/metadata.ts). Pages are allocated as they are read, so a small registry
    // stays small.
    db.pragma('cache_size = -65536');
    this.db = db;
    db.exec(SCHEMA_VERSION_TABLE);
    const migrate = db.transaction(() => {
      const current = Number((db.prepare('SELECT MAX(version) AS v FROM schema_version').get() as Row).v ?? 0);
      for (const migration of MIGRATIONS) {
        if (migration.version <= current) continue;
        for (const statement of statementsFor(migration, 'sqlite')) db.exec(statement);
        db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(migration.version);
      }
    });
    migrate.immediate();
  }

  async close(): Promise<void> {
    this.cache.clear();
    this.db?.close();
    this.db = undefined;
  }

  private syncRunning: Promise<void> | undefined;
  private syncQueued: Promise<void> | undefined;

  /**
   * Resolves once everything committed before the call is on disk. A sync already running may
   * have started before this commit, so a new one is queued behind it, shared by every caller
   * that arrives meanwhile (group commit).
   */
  private syncLog(): Promise<void> {
    const syncFile = this.options.syncFile;
    if (!syncFile) return Promise.resolve();
    if (this.syncQueued) return this.syncQueued;
    const run = async (): Promise<void> => {
      this.syncQueued = undefined;
      const sync = syncFile(`${this.file}-wal`);
      this.syncRunning = sync;
      try {
        await sync;
      } finally {
        if (this.syncRunning === sync) this.syncRunning = undefined;
      }
    };
    const queued = (this.syncRunning ?? Promise.resolve()).then(run, run);
    this.syncQueued = queued;
    return queued;
  }

  /** `value`, once the log holding it is durable. */
  private async durable<T>(value: T): Promise<T> {
    await this.syncLog();
    return value;
  }

  /** Runs `work` in one write transaction (BEGIN IMMEDIATE: no upgrade deadlock between processes). */
  transaction<T>(work: () => T): T {
    return this.database.transaction(work).immediate();
  }

  private ensureRepository(name: string, at: number): void {
    // A new repository's summary starts stale (rows.ts summaryMark): a reader that computed the
    // figures of a former repository of the same name can then never store them over it.
    if (this.sql('INSERT INTO repositories (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING').run(name, at).changes > 0) this.sql(MARKS.repository).run(name);
  }

  // ---- blobs ----

  async getBlob(digest: Digest): Promise<BlobRecord | undefined> {
    const row = this.sql('SELECT size, created_at FROM blobs WHERE digest = ?').get(digest);
    return row && { digest, size: Number(row.size), createdAt: Number(row.created_at) };
  }

  async putBlob(blob: BlobRecord): Promise<void> {
    this.transaction(() => {
      // A manifest may be stored before its blobs (a mirror caches layers as they are pulled): the
      // sizes of the repositories holding it change.
      if (this.sql('INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?) ON CONFLICT (digest) DO NOTHING').run(blob.digest, blob.size, blob.createdAt).changes > 0) {
        this.sql(MARKS.holders).run(blob.digest, blob.digest);
      }
    });
    await this.syncLog();
  }

  async deleteBlob(digest: Digest, removeContent?: () => Promise<void>): Promise<void> {
    // One process: its ReferenceGuard (gc/guard.ts) already keeps pushes of this digest out.
    this.transaction(() => {
      if (this.sql('DELETE FROM blobs WHERE digest = ?').run(digest).changes > 0) this.sql(MARKS.holders).run(digest, digest);
      this.sql('DELETE FROM blob_sources WHERE digest = ?').run(digest);
    });
    await this.syncLog();
    await removeContent?.();
  }

  async *scanBlobs(): AsyncIterable<BlobRecord> {
    const rows = this.sql('SELECT digest, size, created_at FROM blobs ORDER BY digest').all();
    for (const row of rows) yield { digest: row.digest as Digest, size: Number(row.size), createdAt: Number(row.created_at) };
  }

  async addBlobSource(digest: Digest, source: string): Promise<void> {
    this.sql('INSERT INTO blob_sources (digest, source) VALUES (?, ?) ON CONFLICT (digest, source) DO NOTHING').run(digest, source);
    await this.syncLog();
  }

  async hasBlobSource(digest: Digest, source: string): Promise<boolean> {
    return this.sql('SELECT 1 AS x FROM blob_sources WHERE digest = ? AND source = ?').get(digest, source) !== undefined;
  }

  // ---- links ----

  async link(repository: string, digest: Digest, at: number): Promise<void> {
    this.transaction(() => {
      this.ensureRepository(repository, at);
      this.sql('INSERT INTO links (repository, digest, created_at) VALUES (?, ?, ?) ON CONFLICT (repository, digest) DO NOTHING').run(repository, digest, at);
    });
    await this.syncLog();
  }

  async linked(repository: string, digest: Digest): Promise<boolean> {
    return this.sql('SELECT 1 AS x FROM links WHERE repository = ? AND digest = ?').get(repository, digest) !== undefined;
  }

  async repositoriesLinking(digest: Digest): Promise<string[]> {
    return this.sql('SELECT repository FROM links WHERE digest = ? ORDER BY repository').all(digest).map((row) => row.repository as string);
  }

  async unlink(repository: string, digest: Digest): Promise<boolean> {
    return this.durable(this.sql('DELETE FROM links WHERE repository = ? AND digest = ?').run(repository, digest).changes > 0);
  }

  async listLinks(repository: string): Promise<Digest[]> {
    return this.sql('SELECT digest FROM links WHERE repository = ? ORDER BY digest')
      .all(repository)
      .map((r) => r.digest as Digest);
  }

  async *scanLinks(): AsyncIterable<{ repository: string; digest: Digest }> {
    for (const row of this.sql('SELECT repository, digest FROM links').all()) yield { repository: row.repository as string, digest: row.digest as Digest };
  }

  // ---- manifests ----

  async putManifest(revision: RevisionRecord, refs: ManifestRef[], referrer?: Descriptor): Promise<void> {
    this.transaction(() => this.putManifestNow(revision, refs, referrer));
    await this.syncLog();
  }

  /** putManifest inside a caller's transaction (the legacy importer). */
  putManifestNow(revision: RevisionRecord, refs: ManifestRef[], referrer?: Descriptor): void {
    this.ensureRepository(revision.repository, revision.createdAt);
    this.sql(REVISION_UPSERT).run(...revisionParams(revision, referrer));
    const insertRef = this.sql('INSERT INTO manifest_refs (manifest, kind, ref) VALUES (?, ?, ?) ON CONFLICT (manifest, kind, ref) DO NOTHING');
    for (const r of refs) insertRef.run(r.manifest, r.kind, r.ref);
    // References are global: every repository holding this manifest may have changed size.
    this.sql(MARKS.manifestHolders).run(revision.digest);
  }

  async getManifest(repository: string, digest: Digest): Promise<RevisionRecord | undefined> {
    const row = this.sql('SELECT * FROM manifests WHERE repository = ? AND digest = ?').get(repository, digest);
    return row && revisionOf(row);
  }

  async deleteManifest(repository: string, digest: Digest): Promise<boolean> {
    return this.durable(
      this.transaction(() => {
        const gone = this.sql('DELETE FROM manifests WHERE repository = ? AND digest = ?').run(repository, digest).changes > 0;
        if (gone) {
          this.sql('DELETE FROM tags WHERE repository = ? AND digest = ?').run(repository, digest);
          this.sql(MARKS.repository).run(repository);
        }
        return gone;
      }),
    );
  }

  async listManifests(repository: string): Promise<RevisionRecord[]> {
    return this.sql('SELECT * FROM manifests WHERE repository = ? ORDER BY digest').all(repository).map(revisionOf);
  }

  async *scanManifests(): AsyncIterable<RevisionRecord> {
    for (const row of this.sql('SELECT * FROM manifests ORDER BY repository, digest').all()) yield revisionOf(row);
  }

  async *scanManifestRefs(): AsyncIterable<ManifestRef> {
    for (const row of this.sql('SELECT manifest, kind, ref FROM manifest_refs').all()) yield { manifest: row.manifest as Digest, kind: row.kind as ManifestRef['kind'], ref: row.ref as Digest };
  }

  async manifestRefs(digests: Digest[]): Promise<ManifestRef[]> {
    const out: ManifestRef[] = [];
    const query = this.sql('SELECT kind, ref FROM manifest_refs WHERE manifest = ?');
    for (const manifest of new Set(digests)) for (const row of query.all(manifest)) out.push({ manifest, kind: row.kind as ManifestRef['kind'], ref: row.ref as Digest });
    return out;
  }

  async recordPulls(pulls: PullTime[]): Promise<void> {
    const update = this.sql('UPDATE manifests SET pulled_at = ? WHERE repository = ? AND digest = ?');
    this.transaction(() => {
      for (const p of pulls) update.run(p.at, p.repository, p.digest);
    });
  }

  async forgetPull(repository: string, digest: Digest): Promise<void> {
    this.sql('UPDATE manifests SET pulled_at = NULL WHERE repository = ? AND digest = ?').run(repository, digest);
  }

  // ---- tags ----

  async resolveTag(repository: string, tag: string): Promise<Digest | undefined> {
    return this.sql('SELECT digest FROM tags WHERE repository = ? AND tag = ?').get(repository, tag)?.digest as Digest | undefined;
  }

  async setTag(repository: string, tag: string, digest: Digest, at: number): Promise<void> {
    this.transaction(() => {
      this.ensureRepository(repository, at);
      this.sql('INSERT INTO tags (repository, tag, digest, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at').run(
        repository,
        tag,
        digest,
        at,
      );
      this.sql(MARKS.repository).run(repository);
    });
    await this.syncLog();
  }

  async deleteTag(repository: string, tag: string): Promise<boolean> {
    return this.durable(
      this.transaction(() => {
        const gone = this.sql('DELETE FROM tags WHERE repository = ? AND tag = ?').run(repository, tag).changes > 0;
        if (gone) this.sql(MARKS.repository).run(repository);
        return gone;
      }),
    );
  }

  async listTags(repository: string, page: Page = {}): Promise<TagRecord[] | undefined> {
    return this.database
      .transaction(() => {
        if (!this.sql('SELECT 1 AS x FROM repositories WHERE name = ?').get(repository)) return undefined;
        const rows = this.sql('SELECT tag, digest, updated_at FROM tags WHERE repository = ? AND tag > ? ORDER BY tag LIMIT ?').all(repository, page.after ?? '', page.limit ?? -1);
        return rows.map((r) => ({ tag: r.tag as string, digest: r.digest as Digest, updatedAt: Number(r.updated_at) }));
      })
      .deferred();
  }

  async *scanTagTargets(): AsyncIterable<{ repository: string; digest: Digest }> {
    for (const row of this.sql('SELECT DISTINCT repository, digest FROM tags').all()) yield { repository: row.repository as string, digest: row.digest as Digest };
  }

  // ---- referrers ----

  async listReferrers(repository: string, subject: Digest): Promise<Descriptor[]> {
    return this.sql('SELECT referrer FROM manifests WHERE repository = ? AND subject = ? AND referrer IS NOT NULL ORDER BY digest')
      .all(repository, subject)
      .map((r) => JSON.parse(r.referrer as string) as Descriptor);
  }

  // ---- repositories ----

  async repositoryExists(repository: string): Promise<boolean> {
    return this.sql('SELECT 1 AS x FROM repositories WHERE name = ?').get(repository) !== undefined;
  }

  /** WHERE clause and parameters of a (namespace-restricted) page of names. */
  private namePage(column: string, page: Page & { namespace?: string }): { where: string; params: unknown[] } {
    const clauses = [`${column} > ?`];
    const params: unknown[] = [page.after ?? ''];
    if (page.namespace !== undefined) {
      clauses.push(`(${column} = ? OR (${column} > ? AND ${column} < ?))`);
      params.push(page.namespace, `${page.namespace}/`, namespaceEnd(page.namespace));
    }
    return { where: clauses.join(' AND '), params };
  }

  async listRepositories(page: Page & { namespace?: string } = {}): Promise<string[]> {
    const { where, params } = this.namePage('name', page);
    return this.sql(`SELECT name FROM repositories WHERE ${where} ORDER BY name LIMIT ?`)
      .all(...params, page.limit ?? -1)
      .map((r) => r.name as string);
  }

  async repositorySummaries(page: Page & { namespace?: string } = {}): Promise<RepositorySummary[]> {
    const { where, params } = this.namePage('r.name', page);
    const stored = this.sql(storedSummariesSql(where, '?')).all(...params, page.limit ?? -1);
    return servedSummaries(stored, async (names) => {
      const fresh = this.sql(FRESH_SUMMARIES).all(JSON.stringify(names));
      this.transaction(() => {
        for (const f of fresh) this.sql(SUMMARY_STORE).run(f.name, f.version, f.version, f.tags ?? 0, f.manifests ?? 0, f.size ?? 0, f.pushed_at ?? null, f.name);
      });
      return fresh;
    });
  }

  /**
   * Recomputes every repository's maintained summary and holdings (migrations 4 and 5's
   * backfills), for data written straight into the tables.
   */
  async backfillSummaries(): Promise<void> {
    this.transaction(() => {
      this.database.exec('DELETE FROM repository_summaries');
      this.database.exec(SUMMARY_BACKFILL);
      this.database.exec('DELETE FROM repository_holdings');
      this.database.exec('DELETE FROM holdings_versions');
      for (const statement of HOLDINGS_BACKFILL) this.database.exec(namespaceOfIn(statement, 'sqlite'));
    });
  }

  /** The maintained summary rows as stored, current or not (tests compare them with a computation from scratch). */
  async storedSummaries(): Promise<{ name: string; current: boolean; summary: RepositorySummary }[]> {
    return this.sql('SELECT name, version, computed_version, tags, manifests, size, pushed_at FROM repository_summaries ORDER BY name')
      .all()
      .map((row) => ({ name: row.name as string, current: summaryIsCurrent(row), summary: repositorySummaryOf(row) }));
  }

  async deleteRepository(repository: string): Promise<boolean> {
    return this.durable(this.sql('DELETE FROM repositories WHERE name = ?').run(repository).changes > 0);
  }

  async deleteNamespace(namespace: string): Promise<string[]> {
    return this.durable(
      this.transaction(() => {
        const names = this.sql('SELECT name FROM repositories WHERE name = ? OR (name > ? AND name < ?) ORDER BY name')
          .all(namespace, `${namespace}/`, namespaceEnd(namespace))
          .map((r) => r.name as string);
        this.sql('DELETE FROM repositories WHERE name = ? OR (name > ? AND name < ?)').run(namespace, `${namespace}/`, namespaceEnd(namespace));
        return names;
      }),
    );
  }

  // ---- history ----

  async appendAudit(events: AuditEvent[]): Promise<void> {
    if (!events.length) return;
    const insert = this.sql('INSERT INTO audit_events (at, actor, action, target, outcome, client, detail) VALUES (?, ?, ?, ?, ?, ?, ?)');
    this.transaction(() => {
      for (const e of events) insert.run(...auditParams(e));
    });
    await this.syncLog();
  }

  async listAudit(query: AuditQuery): Promise<AuditRecord[]> {
    const { where, params } = auditWhere(query);
    return this.sql(`SELECT * FROM audit_events ${where} ORDER BY id DESC LIMIT ?`).all(...params, query.limit).map(auditOf);
  }

  async pruneAudit(before: number): Promise<number> {
    return this.sql('DELETE FROM audit_events WHERE at < ?').run(before).changes;
  }

  async recordGcRun(run: Omit<GcRunRecord, 'id'>, keep: number): Promise<void> {
    this.transaction(() => {
      this.sql('INSERT INTO gc_runs (finished_at, dry_run, outcome, report) VALUES (?, ?, ?, ?)').run(run.finishedAt, run.dryRun ? 1 : 0, run.outcome, JSON.stringify(run.report));
      this.sql('DELETE FROM gc_runs WHERE id NOT IN (SELECT id FROM gc_runs ORDER BY id DESC LIMIT ?)').run(keep);
    });
    await this.syncLog();
  }

  async listGcRuns(limit: number): Promise<GcRunRecord[]> {
    return this.sql('SELECT * FROM gc_runs ORDER BY id DESC LIMIT ?').all(limit).map(gcRunOf);
  }

  async storageTotals(): Promise<StorageTotals> {
    return totalsOf(this.sql(STORAGE_TOTALS_SQL).all());
  }

  async storageUsage(query: { repositories?: string[]; mirrorNamespaces: string[] }): Promise<UsageAggregate> {
    this.refreshHoldings();
    const restricted = query.repositories !== undefined;
    const params = [...(restricted ? [JSON.stringify(query.repositories)] : []), JSON.stringify(query.mirrorNamespaces)];
    return storageUsageOf(this.sql(storageUsageSql(USAGE_DIALECT, restricted)).all(...params));
  }

  /**
   * Brings the maintained holdings of every stale repository up to date (rows.ts HOLDINGS_STALE):
   * a read finds them first, and only then is the write lock taken, where they are read again.
   */
  private refreshHoldings(): void {
    if (!this.sql(HOLDINGS_STALE).get()) return;
    this.transaction(() => {
      const names = JSON.stringify(this.sql(HOLDINGS_STALE).all().map((row) => row.name));
      for (const { sql, lists } of HOLDINGS_REFRESH) this.sql(sql).run(...Array.from({ length: lists }, () => names));
    });
  }

  /** The maintained holdings as stored (tests compare them with the migration's backfill): repository, digest, size. */
  async storedHoldings(): Promise<{ repository: string; digest: string; namespace: string; size: number | null }[]> {
    return this.sql('SELECT repository, digest, namespace, size FROM repository_holdings ORDER BY repository, digest')
      .all()
      .map((row) => ({ repository: row.repository as string, digest: row.digest as string, namespace: row.namespace as string, size: row.size === null ? null : Number(row.size) }));
  }

  // ---- uploads ----

  async createUpload(upload: UploadRecord): Promise<void> {
    this.sql('INSERT INTO uploads (id, repository, size, started_at, updated_at, driver_state) VALUES (?, ?, ?, ?, ?, ?)').run(...uploadParams(upload));
  }

  async getUpload(id: string): Promise<UploadRecord | undefined> {
    const row = this.sql('SELECT * FROM uploads WHERE id = ?').get(id);
    return row && uploadOf(row);
  }

  async updateUpload(id: string, expectedSize: number, size: number, driverState: UploadDriverState | undefined, at: number): Promise<boolean> {
    return (
      this.sql('UPDATE uploads SET size = ?, driver_state = ?, updated_at = ? WHERE id = ? AND size = ?').run(size, driverState ? JSON.stringify(driverState) : null, at, id, expectedSize).changes > 0
    );
  }

  async deleteUpload(id: string): Promise<boolean> {
    return this.sql('DELETE FROM uploads WHERE id = ?').run(id).changes > 0;
  }

  async listUploads(): Promise<UploadRecord[]> {
    return this.sql('SELECT * FROM uploads ORDER BY id').all().map(uploadOf);
  }

  // ---- usage history ----

  async addUsageSample(sample: UsageSample, keepAfter: number): Promise<void> {
    this.transaction(() => {
      // A replica samples once per moment; a repeat (a clock stepped back) is dropped, not an error.
      this.sql('INSERT INTO usage_samples (replica, at, mirror_bytes, pushed_bytes, stored_bytes, served_from_cache_bytes, fetched_upstream_bytes, namespaces) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (replica, at) DO NOTHING').run(...usageSampleParams(sample));
      this.sql('DELETE FROM usage_samples WHERE at < ?').run(keepAfter);
    });
  }

  async listUsageSamples(since: number, limit: number): Promise<UsageSample[]> {
    return this.sql('SELECT * FROM (SELECT * FROM usage_samples WHERE at >= ? ORDER BY at DESC, replica DESC LIMIT ?) AS recent ORDER BY at, replica').all(since, limit).map(usageSampleOf);
  }
}
