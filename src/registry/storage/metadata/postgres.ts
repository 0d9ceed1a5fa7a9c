// The metadata on PostgreSQL (`pg`, database/database.ts), shared by every replica when
// database.url is set. Same schema and semantics as the embedded SQLite engine (sqlite.ts): the
// statements of metadata/schema.ts in the postgres dialect, parameterised queries, and one
// transaction wherever several rows change together. Scans page through the table by key in
// batches, so that neither side ever holds a whole table in memory. Deletes made by a GC sweep,
// and the writes that reference blobs, follow the cross-replica rule of database/sweep.ts.
import type { Digest } from '../../digest.js';
import { RegistryError } from '../../errors.js';
import type { Descriptor } from '../../manifest.js';
import { COORDINATION } from '../../../database/coordination-schema.js';
import type { Database, Queryable } from '../../../database/database.js';
import { LOCK } from '../../../database/locks.js';
import { migrate, type MigrationTrack } from '../../../database/migrate.js';
import { StillReferencedError, sweepCutoff, TOMBSTONE_WINDOW_MS } from '../../../database/sweep.js';
import type { UploadDriverState } from '../content/types.js';
import { auditOf, auditParams, auditWhere, freshSummariesSql, gcRunOf, HOLDINGS_STALE, holdingsRefreshSql, namespaceEnd, repositorySummaryOf, revisionOf, servedSummaries, storedSummariesSql, SUMMARY_STORE_COLUMNS, SUMMARY_STORE_CONFLICT, summaryIsCurrent, summaryMark, summaryMarks, revisionParams, revisionUpsert, STORAGE_TOTALS_SQL, storageUsageOf, storageUsageSql, totalsOf, type UsageDialect, uploadOf, uploadParams, usageSampleOf, usageSampleParams, type Row } from './rows.js';
import { HOLDINGS_BACKFILL, MIGRATIONS, namespaceOfIn, namespaceOfSql, statementsFor, SUMMARY_BACKFILL } from './schema.js';
import type { AuditEvent, AuditQuery, AuditRecord, BlobRecord, GcRunRecord, ManifestRef, MetadataStore, Page, PullTime, RepositorySummary, RevisionRecord, StorageTotals, TagRecord, UploadRecord, UsageAggregate, UsageSample } from './types.js';

/** The metadata schema as a migration track (database/migrate.ts), in the postgres dialect. */
export const METADATA_TRACK: MigrationTrack = {
  table: 'schema_version',
  migrations: MIGRATIONS.map((m) => ({ version: m.version, statements: statementsFor(m, 'postgres') })),
};

const SCAN_BATCH = 1_000;

/** A clause written with `?` placeholders (rows.ts, shared with SQLite) in PostgreSQL's `$n`. */
export function numbered(clause: string, from = 1): string {
  let n = from;
  return clause.replace(/\?/g, () => `$${n++}`);
}

const REVISION_UPSERT = revisionUpsert((i) => `$${i}`);

const MARKS = summaryMarks('postgres');
const MARK_REPOSITORY_PG = numbered(MARKS.repository);
const MARK_HOLDERS_PG = numbered(MARKS.holders);
const MARK_MANIFEST_HOLDERS_PG = numbered(MARKS.manifestHolders);
const PUT_BLOB = `WITH added AS (INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3) ON CONFLICT (digest) DO NOTHING RETURNING digest)
  ${summaryMark(`SELECT m.repository FROM manifests m WHERE m.digest IN (SELECT digest FROM added)
    UNION SELECT m.repository FROM manifest_refs x JOIN manifests m ON m.digest = x.manifest WHERE x.ref IN (SELECT digest FROM added) AND x.kind <> 'unreadable'`, 'postgres')}`;
const FRESH_SUMMARIES = freshSummariesSql('r.name = ANY($1::text[])', 'ALL');
/**
 * Recomputed summaries stored in one statement, in name order (the order marks lock rows in).
 * The repositories are held with KEY SHARE first, as in summaryMark: one deleted meanwhile is
 * skipped, not a foreign key failure.
 */
const SUMMARY_STORE = `INSERT INTO repository_summaries ${SUMMARY_STORE_COLUMNS}
  SELECT u.name, u.version, u.version, u.tags, u.manifests, u.size, u.pushed_at
  FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[]) AS u (name, version, tags, manifests, size, pushed_at)
  JOIN (SELECT name FROM repositories WHERE name = ANY($1::text[]) ORDER BY name FOR KEY SHARE) AS r ON r.name = u.name ORDER BY u.name
  ${SUMMARY_STORE_CONFLICT}`;

const USAGE_DIALECT: UsageDialect = {
  namespaceOf: (column) => namespaceOfSql(column, 'postgres'),
  inList: (column) => `${column} = ANY(?::text[])`,
};
const HOLDINGS_REFRESH = holdingsRefreshSql(USAGE_DIALECT).map(({ sql, lists }) => ({ sql: numbered(sql), lists }));

function limitOf(page: Page): number | null {
  return page.limit ?? null;
}

async function ensureRepository(tx: Queryable, name: string, at: number): Promise<void> {
  // The rows written next reference the repository. Holding it with KEY SHARE, as their foreign
  // keys would, keeps a concurrent delete from committing under this write (read committed: a
  // repository seen here may otherwise be gone by the time they are inserted); one deleted
  // meanwhile is created again, as a push after a delete does.
  for (let attempt = 0; attempt < 3; attempt++) {
    if ((await tx.query('SELECT 1 FROM repositories WHERE name = $1 FOR KEY SHARE', [name])).length) return;
    const created = await tx.query('INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING 1', [name, at]);
    if (created.length) {
      // A new repository's summary starts stale (rows.ts summaryMark): a reader that computed the
      // figures of a former repository of the same name can then never store them over it.
      await tx.query(MARK_REPOSITORY_PG, [name]);
      return;
    }
  }
  throw new Error(`repository ${name} was deleted and created by others three times while being written`);
}

const NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

/**
 * A writer's side of database/sweep.ts: locks the rows of the blobs it is about to reference, so
 * a sweep of one of them waits for this transaction; returns those that a sweep deleted a moment
 * ago (gone, with a fresh tombstone): the caller's existence check is then stale.
 */
async function lockReferencedBlobs(tx: Queryable, digests: string[]): Promise<string[]> {
  if (!digests.length) return [];
  const unique = [...new Set(digests)].sort();
  const present = new Set((await tx.query<{ digest: string }>('SELECT digest FROM blobs WHERE digest = ANY($1::text[]) ORDER BY digest FOR SHARE', [unique])).map((r) => r.digest));
  const missing = unique.filter((d) => !present.has(d));
  if (!missing.length) return [];
  const swept = await tx.query<{ digest: string }>(`SELECT digest FROM gc_tombstones WHERE digest = ANY($1::text[]) AND deleted_at >= ${NOW_MS} - $2::bigint`, [missing, TOMBSTONE_WINDOW_MS]);
  return swept.map((r) => r.digest);
}

export class PostgresMetadata implements MetadataStore {
  constructor(private readonly db: Database) {}

  /** Brings the schema up to date (under the cluster's migration lock; a no-op once done). */
  async open(): Promise<void> {
    await migrate(this.db, [METADATA_TRACK, COORDINATION]);
  }

  /** Removes tombstones older than `before` (database/sweep.ts); GC calls it after a run. */
  async purgeTombstones(before: number): Promise<void> {
    await this.db.query('DELETE FROM gc_tombstones WHERE deleted_at < $1', [before]);
  }

  /** The pool belongs to the process (database/open.ts), not to this store: nothing to close. */
  async close(): Promise<void> {}

  /**
   * Yields every row of `select` in key order, SCAN_BATCH at a time: `select` takes the last
   * key seen as its parameters ($1.. in `keyOf` order) and must be ordered and limited by it.
   */
  private async *scan(first: string, next: string, keyOf: (row: Row) => unknown[]): AsyncIterable<Row> {
    let rows = await this.db.query<Row>(first, [SCAN_BATCH]);
    for (;;) {
      for (const row of rows) yield row;
      if (rows.length < SCAN_BATCH) return;
      rows = await this.db.query<Row>(next, [...keyOf(rows[rows.length - 1]!), SCAN_BATCH]);
    }
  }

  // ---- blobs ----

  async getBlob(digest: Digest): Promise<BlobRecord | undefined> {
    const [row] = await this.db.query('SELECT size, created_at FROM blobs WHERE digest = $1', [digest]);
    return row && { digest, size: Number(row.size), createdAt: Number(row.created_at) };
  }

  async putBlob(blob: BlobRecord): Promise<void> {
    // A manifest may be stored before its blobs (a mirror caches layers as they are pulled): the
    // sizes of the repositories holding it change. One statement (no transaction's round trips).
    await this.db.query(PUT_BLOB, [blob.digest, blob.size, blob.createdAt]);
  }

  async deleteBlob(digest: Digest, removeContent?: () => Promise<void>): Promise<void> {
    const cutoff = sweepCutoff();
    await this.db.transaction(async (tx) => {
      if (cutoff !== undefined) {
        // A GC sweep: lock the row, then look again with a fresh snapshot (database/sweep.ts, 1).
        // Any manifest that now is or references the blob keeps it, whatever its stamp: the run
        // already deleted the unkept revisions it marked, so one still here was written after the
        // mark, possibly stamped long before its commit (a request that waited under load).
        await tx.query('SELECT 1 FROM blobs WHERE digest = $1 FOR UPDATE', [digest]);
        const [use] = await tx.query<{ used: boolean }>(
          `SELECT EXISTS (SELECT 1 FROM blobs WHERE digest = $1 AND created_at >= $2)
              OR EXISTS (SELECT 1 FROM links WHERE digest = $1 AND created_at >= $2)
              OR EXISTS (SELECT 1 FROM manifests WHERE digest = $1)
              OR EXISTS (SELECT 1 FROM manifest_refs r JOIN manifests m ON m.digest = r.manifest WHERE r.ref = $1) AS used`,
          [digest, cutoff],
        );
        if (use?.used) throw new StillReferencedError(digest);
        await tx.query(`INSERT INTO gc_tombstones (digest, deleted_at) VALUES ($1, ${NOW_MS}) ON CONFLICT (digest) DO UPDATE SET deleted_at = excluded.deleted_at`, [digest]);
      }
      const gone = await tx.query('DELETE FROM blobs WHERE digest = $1 RETURNING 1', [digest]);
      await tx.query('DELETE FROM blob_sources WHERE digest = $1', [digest]);
      if (gone.length) await tx.query(MARK_HOLDERS_PG, [digest, digest]);
      // Before the commit (database/sweep.ts, 4): until then other replicas still see the blob, so
      // none pushes it again only to have its new bytes deleted by this sweep.
      await removeContent?.();
    });
  }

  async *scanBlobs(): AsyncIterable<BlobRecord> {
    const rows = this.scan(
      'SELECT digest, size, created_at FROM blobs ORDER BY digest LIMIT $1',
      'SELECT digest, size, created_at FROM blobs WHERE digest > $1 ORDER BY digest LIMIT $2',
      (r) => [r.digest],
    );
    for await (const row of rows) yield { digest: row.digest as Digest, size: Number(row.size), createdAt: Number(row.created_at) };
  }

  async addBlobSource(digest: Digest, source: string): Promise<void> {
    await this.db.query('INSERT INTO blob_sources (digest, source) VALUES ($1, $2) ON CONFLICT (digest, source) DO NOTHING', [digest, source]);
  }

  async hasBlobSource(digest: Digest, source: string): Promise<boolean> {
    return (await this.db.query('SELECT 1 FROM blob_sources WHERE digest = $1 AND source = $2', [digest, source])).length > 0;
  }

  // ---- links ----

  async link(repository: string, digest: Digest, at: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      if ((await lockReferencedBlobs(tx, [digest])).length) throw new RegistryError('BLOB_UNKNOWN', 'the blob was garbage-collected meanwhile; push it again', { digest });
      await ensureRepository(tx, repository, at);
      await tx.query('INSERT INTO links (repository, digest, created_at) VALUES ($1, $2, $3) ON CONFLICT (repository, digest) DO NOTHING', [repository, digest, at]);
    });
  }

  async linked(repository: string, digest: Digest): Promise<boolean> {
    return (await this.db.query('SELECT 1 FROM links WHERE repository = $1 AND digest = $2', [repository, digest])).length > 0;
  }

  async repositoriesLinking(digest: Digest): Promise<string[]> {
    return (await this.db.query('SELECT repository FROM links WHERE digest = $1 ORDER BY repository', [digest])).map((row) => row.repository as string);
  }

  async unlink(repository: string, digest: Digest): Promise<boolean> {
    return (await this.db.query('DELETE FROM links WHERE repository = $1 AND digest = $2 RETURNING 1', [repository, digest])).length > 0;
  }

  async listLinks(repository: string): Promise<Digest[]> {
    return (await this.db.query('SELECT digest FROM links WHERE repository = $1 ORDER BY digest', [repository])).map((r) => r.digest as Digest);
  }

  async *scanLinks(): AsyncIterable<{ repository: string; digest: Digest }> {
    const rows = this.scan(
      'SELECT repository, digest FROM links ORDER BY repository, digest LIMIT $1',
      'SELECT repository, digest FROM links WHERE (repository, digest) > ($1, $2) ORDER BY repository, digest LIMIT $3',
      (r) => [r.repository, r.digest],
    );
    for await (const row of rows) yield { repository: row.repository as string, digest: row.digest as Digest };
  }

  // ---- manifests ----

  async putManifest(revision: RevisionRecord, refs: ManifestRef[], referrer?: Descriptor): Promise<void> {
    await this.db.transaction(async (tx) => {
      const swept = await lockReferencedBlobs(tx, [revision.digest, ...refs.map((r) => r.ref)]);
      if (swept.length) throw new RegistryError('MANIFEST_BLOB_UNKNOWN', 'a referenced blob was garbage-collected meanwhile; push it again', { digest: swept[0] });
      await ensureRepository(tx, revision.repository, revision.createdAt);
      await tx.query(REVISION_UPSERT, revisionParams(revision, referrer));
      if (refs.length) {
        await tx.query(
          'INSERT INTO manifest_refs (manifest, kind, ref) SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT (manifest, kind, ref) DO NOTHING',
          [refs.map((r) => r.manifest), refs.map((r) => r.kind), refs.map((r) => r.ref)],
        );
      }
      // References are global: every repository holding this manifest may have changed size.
      await tx.query(MARK_MANIFEST_HOLDERS_PG, [revision.digest]);
    });
  }

  async getManifest(repository: string, digest: Digest): Promise<RevisionRecord | undefined> {
    const [row] = await this.db.query('SELECT * FROM manifests WHERE repository = $1 AND digest = $2', [repository, digest]);
    return row && revisionOf(row);
  }

  async deleteManifest(repository: string, digest: Digest): Promise<boolean> {
    const cutoff = sweepCutoff();
    return this.db.transaction(async (tx) => {
      if (cutoff !== undefined) {
        // A GC sweep of an untagged revision (database/sweep.ts, 3). An index or referrer naming
        // it counts when stamped since the cutoff or when tagged: the mark kept whatever a tag
        // reached, so a tagged one here was written after it, whenever it was stamped.
        await tx.query('SELECT 1 FROM manifests WHERE repository = $1 AND digest = $2 FOR UPDATE', [repository, digest]);
        const [use] = await tx.query<{ used: boolean }>(
          `SELECT EXISTS (SELECT 1 FROM manifests WHERE repository = $1 AND digest = $2 AND created_at >= $3)
              OR EXISTS (SELECT 1 FROM tags WHERE repository = $1 AND digest = $2)
              OR EXISTS (SELECT 1 FROM manifests m WHERE m.repository = $1 AND m.subject = $2
                         AND (m.created_at >= $3 OR EXISTS (SELECT 1 FROM tags t WHERE t.repository = $1 AND t.digest = m.digest)))
              OR EXISTS (SELECT 1 FROM manifest_refs r JOIN manifests m ON m.digest = r.manifest
                         WHERE r.ref = $2 AND r.kind = 'child' AND m.repository = $1
                         AND (m.created_at >= $3 OR EXISTS (SELECT 1 FROM tags t WHERE t.repository = $1 AND t.digest = m.digest))) AS used`,
          [repository, digest, cutoff],
        );
        if (use?.used) throw new StillReferencedError(digest);
      }
      const gone = (await tx.query('DELETE FROM manifests WHERE repository = $1 AND digest = $2 RETURNING 1', [repository, digest])).length > 0;
      if (gone) {
        await tx.query('DELETE FROM tags WHERE repository = $1 AND digest = $2', [repository, digest]);
        await tx.query(MARK_REPOSITORY_PG, [repository]);
      }
      return gone;
    });
  }

  async listManifests(repository: string): Promise<RevisionRecord[]> {
    return (await this.db.query('SELECT * FROM manifests WHERE repository = $1 ORDER BY digest', [repository])).map(revisionOf);
  }

  async *scanManifests(): AsyncIterable<RevisionRecord> {
    const rows = this.scan(
      'SELECT * FROM manifests ORDER BY repository, digest LIMIT $1',
      'SELECT * FROM manifests WHERE (repository, digest) > ($1, $2) ORDER BY repository, digest LIMIT $3',
      (r) => [r.repository, r.digest],
    );
    for await (const row of rows) yield revisionOf(row);
  }

  async *scanManifestRefs(): AsyncIterable<ManifestRef> {
    const rows = this.scan(
      'SELECT manifest, kind, ref FROM manifest_refs ORDER BY manifest, kind, ref LIMIT $1',
      'SELECT manifest, kind, ref FROM manifest_refs WHERE (manifest, kind, ref) > ($1, $2, $3) ORDER BY manifest, kind, ref LIMIT $4',
      (r) => [r.manifest, r.kind, r.ref],
    );
    for await (const row of rows) yield { manifest: row.manifest as Digest, kind: row.kind as ManifestRef['kind'], ref: row.ref as Digest };
  }

  async manifestRefs(digests: Digest[]): Promise<ManifestRef[]> {
    if (!digests.length) return [];
    const rows = await this.db.query('SELECT manifest, kind, ref FROM manifest_refs WHERE manifest = ANY($1::text[]) ORDER BY manifest, kind, ref', [[...new Set(digests)]]);
    return rows.map((row) => ({ manifest: row.manifest as Digest, kind: row.kind as ManifestRef['kind'], ref: row.ref as Digest }));
  }

  async recordPulls(pulls: PullTime[]): Promise<void> {
    if (!pulls.length) return;
    // One statement for the batch; the last time given for a revision wins, as in a loop of updates.
    const last = new Map<string, PullTime>();
    for (const p of pulls) last.set(`${p.repository}@${p.digest}`, p);
    const batch = [...last.values()];
    await this.db.query(
      `UPDATE manifests m SET pulled_at = p.at FROM unnest($1::text[], $2::text[], $3::bigint[]) AS p (repository, digest, at)
       WHERE m.repository = p.repository AND m.digest = p.digest`,
      [batch.map((p) => p.repository), batch.map((p) => p.digest), batch.map((p) => p.at)],
    );
  }

  async forgetPull(repository: string, digest: Digest): Promise<void> {
    await this.db.query('UPDATE manifests SET pulled_at = NULL WHERE repository = $1 AND digest = $2', [repository, digest]);
  }

  // ---- tags ----

  async resolveTag(repository: string, tag: string): Promise<Digest | undefined> {
    const [row] = await this.db.query('SELECT digest FROM tags WHERE repository = $1 AND tag = $2', [repository, tag]);
    return row?.digest as Digest | undefined;
  }

  async setTag(repository: string, tag: string, digest: Digest, at: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      await ensureRepository(tx, repository, at);
      await tx.query(
        'INSERT INTO tags (repository, tag, digest, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at',
        [repository, tag, digest, at],
      );
      await tx.query(MARK_REPOSITORY_PG, [repository]);
    });
  }

  async deleteTag(repository: string, tag: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const gone = (await tx.query('DELETE FROM tags WHERE repository = $1 AND tag = $2 RETURNING 1', [repository, tag])).length > 0;
      if (gone) await tx.query(MARK_REPOSITORY_PG, [repository]);
      return gone;
    });
  }

  async listTags(repository: string, page: Page = {}): Promise<TagRecord[] | undefined> {
    // One statement, so "the repository exists" and its tags are one snapshot.
    const rows = await this.db.query(
      `SELECT r.name AS repository, t.tag, t.digest, t.updated_at
       FROM repositories r
       LEFT JOIN LATERAL (
         SELECT tag, digest, updated_at FROM tags WHERE repository = r.name AND tag > $2 ORDER BY tag LIMIT $3
       ) t ON true
       WHERE r.name = $1
       ORDER BY t.tag`,
      [repository, page.after ?? '', limitOf(page)],
    );
    if (!rows.length) return undefined;
    return rows.filter((r) => r.tag !== null).map((r) => ({ tag: r.tag as string, digest: r.digest as Digest, updatedAt: Number(r.updated_at) }));
  }

  async *scanTagTargets(): AsyncIterable<{ repository: string; digest: Digest }> {
    const rows = this.scan(
      'SELECT DISTINCT repository, digest FROM tags ORDER BY repository, digest LIMIT $1',
      'SELECT DISTINCT repository, digest FROM tags WHERE (repository, digest) > ($1, $2) ORDER BY repository, digest LIMIT $3',
      (r) => [r.repository, r.digest],
    );
    for await (const row of rows) yield { repository: row.repository as string, digest: row.digest as Digest };
  }

  // ---- referrers ----

  async listReferrers(repository: string, subject: Digest): Promise<Descriptor[]> {
    const rows = await this.db.query('SELECT referrer FROM manifests WHERE repository = $1 AND subject = $2 AND referrer IS NOT NULL ORDER BY digest', [repository, subject]);
    return rows.map((r) => JSON.parse(r.referrer as string) as Descriptor);
  }

  // ---- repositories ----

  async repositoryExists(repository: string): Promise<boolean> {
    return (await this.db.query('SELECT 1 FROM repositories WHERE name = $1', [repository])).length > 0;
  }

  /** WHERE clause and parameters ($1..) of a (namespace-restricted) page of names. */
  private namePage(column: string, page: Page & { namespace?: string }): { where: string; params: unknown[] } {
    const clauses = [`${column} > $1`];
    const params: unknown[] = [page.after ?? ''];
    if (page.namespace !== undefined) {
      clauses.push(`(${column} = $2 OR (${column} > $3 AND ${column} < $4))`);
      params.push(page.namespace, `${page.namespace}/`, namespaceEnd(page.namespace));
    }
    return { where: clauses.join(' AND '), params };
  }

  async listRepositories(page: Page & { namespace?: string } = {}): Promise<string[]> {
    const { where, params } = this.namePage('name', page);
    const rows = await this.db.query(`SELECT name FROM repositories WHERE ${where} ORDER BY name LIMIT $${params.length + 1}`, [...params, limitOf(page)]);
    return rows.map((r) => r.name as string);
  }

  async repositorySummaries(page: Page & { namespace?: string } = {}): Promise<RepositorySummary[]> {
    const { where, params } = this.namePage('r.name', page);
    // Without JIT too: a 10,000-row page's join is costed past jit_above_cost (see analytical).
    const stored = await this.analytical(storedSummariesSql(where, `$${params.length + 1}`), [...params, limitOf(page)]);
    return servedSummaries(stored, async (names) => {
      // One statement: the figures and the version they are stored under are one snapshot.
      const fresh = await this.analytical(FRESH_SUMMARIES, [names]);
      const sorted = [...fresh].sort((a, b) => (String(a.name) < String(b.name) ? -1 : 1));
      const column = (key: string, orNull: boolean) => sorted.map((f) => (f[key] === null || f[key] === undefined ? (orNull ? null : 0) : String(f[key])));
      await this.db.query(SUMMARY_STORE, [sorted.map((f) => f.name), column('version', false), column('tags', false), column('manifests', false), column('size', false), column('pushed_at', true)]);
      return fresh;
    });
  }

  /**
   * Recomputes every repository's maintained summary and holdings (migrations 4 and 5's
   * backfills), for data written straight into the tables.
   */
  async backfillSummaries(): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query("SET LOCAL jit = off; SET LOCAL work_mem = '64MB'");
      await tx.query('DELETE FROM repository_summaries');
      await tx.query(SUMMARY_BACKFILL);
      await tx.query('DELETE FROM repository_holdings');
      await tx.query('DELETE FROM holdings_versions');
      for (const statement of HOLDINGS_BACKFILL) await tx.query(namespaceOfIn(statement, 'postgres'));
    });
  }

  /** The maintained holdings as stored (tests compare them with the migration's backfill). */
  async storedHoldings(): Promise<{ repository: string; digest: string; namespace: string; size: number | null }[]> {
    const rows = await this.db.query<Row>('SELECT repository, digest, namespace, size FROM repository_holdings ORDER BY repository, digest');
    return rows.map((row) => ({ repository: row.repository as string, digest: row.digest as string, namespace: row.namespace as string, size: row.size === null ? null : Number(row.size) }));
  }

  /** The maintained summary rows as stored, current or not (tests compare them with a computation from scratch). */
  async storedSummaries(): Promise<{ name: string; current: boolean; summary: RepositorySummary }[]> {
    const rows = await this.db.query<Row>('SELECT name, version, computed_version, tags, manifests, size, pushed_at FROM repository_summaries ORDER BY name');
    return rows.map((row) => ({ name: row.name as string, current: summaryIsCurrent(row), summary: repositorySummaryOf(row) }));
  }

  async deleteRepository(repository: string): Promise<boolean> {
    return (await this.db.query('DELETE FROM repositories WHERE name = $1 RETURNING 1', [repository])).length > 0;
  }

  async deleteNamespace(namespace: string): Promise<string[]> {
    const rows = await this.db.query(
      'DELETE FROM repositories WHERE name = $1 OR (name > $2 AND name < $3) RETURNING name',
      [namespace, `${namespace}/`, namespaceEnd(namespace)],
    );
    return rows.map((r) => r.name as string).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  // ---- history ----

  async appendAudit(events: AuditEvent[]): Promise<void> {
    if (!events.length) return;
    const cols = events.map(auditParams);
    await this.db.query(
      `INSERT INTO audit_events (at, actor, action, target, outcome, client, detail)
       SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])`,
      [0, 1, 2, 3, 4, 5, 6].map((i) => cols.map((c) => c[i])),
    );
  }

  async listAudit(query: AuditQuery): Promise<AuditRecord[]> {
    const { where, params } = auditWhere(query);
    return (await this.db.query<Row>(`SELECT * FROM audit_events ${numbered(where)} ORDER BY id DESC LIMIT $${params.length + 1}`, [...params, query.limit])).map(auditOf);
  }

  async pruneAudit(before: number): Promise<number> {
    const [row] = await this.db.query<{ n: string }>('WITH gone AS (DELETE FROM audit_events WHERE at < $1 RETURNING 1) SELECT COUNT(*) AS n FROM gone', [before]);
    return Number(row?.n ?? 0);
  }

  async recordGcRun(run: Omit<GcRunRecord, 'id'>, keep: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query('INSERT INTO gc_runs (finished_at, dry_run, outcome, report) VALUES ($1, $2, $3, $4)', [run.finishedAt, run.dryRun ? 1 : 0, run.outcome, JSON.stringify(run.report)]);
      await tx.query('DELETE FROM gc_runs WHERE id NOT IN (SELECT id FROM gc_runs ORDER BY id DESC LIMIT $1)', [keep]);
    });
  }

  async listGcRuns(limit: number): Promise<GcRunRecord[]> {
    return (await this.db.query<Row>('SELECT * FROM gc_runs ORDER BY id DESC LIMIT $1', [limit])).map(gcRunOf);
  }

  async storageTotals(): Promise<StorageTotals> {
    return totalsOf(await this.db.query<Row>(STORAGE_TOTALS_SQL));
  }

  async storageUsage(query: { repositories?: string[]; mirrorNamespaces: string[] }): Promise<UsageAggregate> {
    await this.refreshHoldings();
    const restricted = query.repositories !== undefined;
    const params = [...(restricted ? [query.repositories] : []), query.mirrorNamespaces];
    return storageUsageOf(await this.analytical(numbered(storageUsageSql(USAGE_DIALECT, restricted)), params));
  }

  /**
   * Brings the maintained holdings of every stale repository up to date (rows.ts HOLDINGS_STALE).
   * Refreshes run one at a time in the cluster (two would delete and insert the same rows), and
   * lock the repositories' rows first: a repository deleted meanwhile then waits for the refresh
   * (or the refresh for it), never a deadlock between the cascade and the inserts' key checks.
   */
  private async refreshHoldings(): Promise<void> {
    if (!(await this.db.query(`${HOLDINGS_STALE} LIMIT 1`)).length) return;
    await this.db.transaction(async (tx) => {
      await tx.query("SET LOCAL jit = off; SET LOCAL work_mem = '64MB'");
      await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [LOCK.holdings]);
      const names = (await tx.query<Row>(HOLDINGS_STALE)).map((row) => row.name as string);
      if (!names.length) return;
      await tx.query('SELECT name FROM repositories WHERE name = ANY($1::text[]) ORDER BY name FOR KEY SHARE', [names]);
      for (const { sql, lists } of HOLDINGS_REFRESH) await tx.query(sql, Array.from({ length: lists }, () => names));
    });
  }

  /**
   * One of the statements that read many rows (ls, du), with settings of its own: no JIT (the
   * planner's cost estimate of a page of summaries, thousands of index lookups, crosses
   * jit_above_cost, and compiling took ~0.4 s of CPU per 10,000-repository page, more than the
   * query itself) and enough work_mem for du's sorts and hashes of every (repository, blob) pair
   * to stay in memory (4 MB, the default, spilled them to disk at 50,000 repositories).
   */
  private analytical(text: string, params: unknown[]): Promise<Row[]> {
    return this.db.transaction(async (tx) => {
      await tx.query("SET LOCAL jit = off; SET LOCAL work_mem = '64MB'");
      return tx.query<Row>(text, params);
    });
  }


  // ---- uploads ----

  async createUpload(upload: UploadRecord): Promise<void> {
    await this.db.query('INSERT INTO uploads (id, repository, size, started_at, updated_at, driver_state) VALUES ($1, $2, $3, $4, $5, $6)', uploadParams(upload));
  }

  async getUpload(id: string): Promise<UploadRecord | undefined> {
    const [row] = await this.db.query('SELECT * FROM uploads WHERE id = $1', [id]);
    return row && uploadOf(row);
  }

  async updateUpload(id: string, expectedSize: number, size: number, driverState: UploadDriverState | undefined, at: number): Promise<boolean> {
    const rows = await this.db.query(
      'UPDATE uploads SET size = $1, driver_state = $2, updated_at = $3 WHERE id = $4 AND size = $5 RETURNING 1',
      [size, driverState ? JSON.stringify(driverState) : null, at, id, expectedSize],
    );
    return rows.length > 0;
  }

  async deleteUpload(id: string): Promise<boolean> {
    return (await this.db.query('DELETE FROM uploads WHERE id = $1 RETURNING 1', [id])).length > 0;
  }

  async listUploads(): Promise<UploadRecord[]> {
    return (await this.db.query('SELECT * FROM uploads ORDER BY id')).map(uploadOf);
  }

  // ---- usage history ----

  async addUsageSample(sample: UsageSample, keepAfter: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query('INSERT INTO usage_samples (replica, at, mirror_bytes, pushed_bytes, stored_bytes, served_from_cache_bytes, fetched_upstream_bytes, namespaces) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (replica, at) DO NOTHING', usageSampleParams(sample));
      // Every replica prunes; deleting rows another replica already deleted is no conflict.
      await tx.query('DELETE FROM usage_samples WHERE at < $1', [keepAfter]);
    });
  }

  async listUsageSamples(since: number, limit: number): Promise<UsageSample[]> {
    return (await this.db.query('SELECT * FROM (SELECT * FROM usage_samples WHERE at >= $1 ORDER BY at DESC, replica DESC LIMIT $2) AS recent ORDER BY at, replica', [since, limit])).map(usageSampleOf);
  }
}
