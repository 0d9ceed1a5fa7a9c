// The rows both SQL engines return, as the metadata types: one mapping, so that SQLite and
// PostgreSQL can never disagree on what a stored row means (the schema is shared: schema.ts).
import type { Digest } from '../../digest.js';
import type { Descriptor } from '../../manifest.js';
import type { UploadDriverState } from '../content/types.js';
import type { Dialect } from './schema.js';
import type { AuditEvent, AuditQuery, AuditRecord, GcRunRecord, RepositorySummary, RevisionRecord, StorageTotals, UploadRecord, UsageAggregate, UsageSample } from './types.js';

export type Row = Record<string, unknown>;

/** The end (exclusive) of the names `ns/...`: '/' + 1 is '0'. */
export function namespaceEnd(namespace: string): string {
  return `${namespace}0`;
}

export function revisionOf(row: Row): RevisionRecord {
  return {
    repository: row.repository as string,
    digest: row.digest as Digest,
    mediaType: row.media_type as string,
    size: Number(row.size),
    createdAt: Number(row.created_at),
    ...(row.subject ? { subject: row.subject as Digest } : {}),
    ...(row.artifact_type ? { artifactType: row.artifact_type as string } : {}),
    ...(row.annotations ? { annotations: JSON.parse(row.annotations as string) as Record<string, string> } : {}),
    ...(row.pulled_at !== null && row.pulled_at !== undefined ? { pulledAt: Number(row.pulled_at) } : {}),
  };
}

export function uploadOf(row: Row): UploadRecord {
  return {
    id: row.id as string,
    repository: row.repository as string,
    size: Number(row.size),
    startedAt: Number(row.started_at),
    updatedAt: Number(row.updated_at),
    ...(row.driver_state ? { driverState: JSON.parse(row.driver_state as string) as UploadDriverState } : {}),
  };
}

/**
 * The upsert of a revision row (a rewrite keeps its pull time), its values given by
 * revisionParams; `param(i)` is the engine's placeholder for the i-th (1-based) value.
 */
export function revisionUpsert(param: (i: number) => string): string {
  const values = Array.from({ length: 10 }, (_, i) => param(i + 1)).join(', ');
  return `INSERT INTO manifests (repository, digest, media_type, size, subject, artifact_type, annotations, referrer, created_at, pulled_at)
    VALUES (${values})
    ON CONFLICT (repository, digest) DO UPDATE SET media_type = excluded.media_type, size = excluded.size, subject = excluded.subject,
      artifact_type = excluded.artifact_type, annotations = excluded.annotations, referrer = excluded.referrer, created_at = excluded.created_at`;
}

/** The values of a revision row, in the column order of revisionUpsert. */
/** The values of an uploads row: id, repository, size, started_at, updated_at, driver_state. */
export function uploadParams(upload: UploadRecord): (string | number | null)[] {
  return [upload.id, upload.repository, upload.size, upload.startedAt, upload.updatedAt, upload.driverState ? JSON.stringify(upload.driverState) : null];
}

export function revisionParams(revision: RevisionRecord, referrer: Descriptor | undefined): (string | number | null)[] {
  return [
    revision.repository,
    revision.digest,
    revision.mediaType,
    revision.size,
    revision.subject ?? null,
    revision.artifactType ?? null,
    revision.annotations ? JSON.stringify(revision.annotations) : null,
    referrer ? JSON.stringify(referrer) : null,
    revision.createdAt,
    revision.pulledAt ?? null,
  ];
}

export function usageSampleOf(row: Row): UsageSample {
  let namespaces: Record<string, number> = {};
  try {
    const parsed: unknown = JSON.parse(String(row.namespaces));
    if (parsed && typeof parsed === 'object') namespaces = parsed as Record<string, number>;
  } catch {
    // A row no reader understands is shown without its namespaces rather than failing the page.
  }
  return {
    replica: String(row.replica),
    at: Number(row.at),
    mirrorBytes: Number(row.mirror_bytes),
    pushedBytes: Number(row.pushed_bytes),
    storedBytes: Number(row.stored_bytes),
    servedFromCacheBytes: Number(row.served_from_cache_bytes),
    fetchedUpstreamBytes: Number(row.fetched_upstream_bytes),
    namespaces,
  };
}

export function usageSampleParams(s: UsageSample): unknown[] {
  return [s.replica, s.at, s.mirrorBytes, s.pushedBytes, s.storedBytes, s.servedFromCacheBytes, s.fetchedUpstreamBytes, JSON.stringify(s.namespaces)];
}

export function auditOf(row: Row): AuditRecord {
  return {
    id: Number(row.id),
    at: Number(row.at),
    actor: row.actor as string,
    action: row.action as string,
    target: row.target as string,
    outcome: row.outcome as AuditRecord['outcome'],
    ...(row.client ? { client: row.client as string } : {}),
    ...(row.detail ? { detail: JSON.parse(row.detail as string) as Record<string, unknown> } : {}),
  };
}

/** The values of an audit row: at, actor, action, target, outcome, client, detail. */
export function auditParams(e: AuditEvent): (string | number | null)[] {
  return [e.at, e.actor, e.action, e.target, e.outcome, e.client ?? null, e.detail ? JSON.stringify(e.detail) : null];
}

/**
 * The WHERE clause (with `?` placeholders) and parameters of an audit query. An action filter
 * `x` matches `x` and `x.*`: the names between `x.` and `x/` ('.' + 1).
 */
export function auditWhere(query: AuditQuery): { where: string; params: (string | number)[] } {
  const clauses: string[] = [];
  const params: (string | number)[] = [];
  if (query.before !== undefined) clauses.push('id < ?'), params.push(query.before);
  if (query.action !== undefined) clauses.push('(action = ? OR (action > ? AND action < ?))'), params.push(query.action, `${query.action}.`, `${query.action}/`);
  return { where: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', params };
}

export function gcRunOf(row: Row): GcRunRecord {
  return {
    id: Number(row.id),
    finishedAt: Number(row.finished_at),
    dryRun: Number(row.dry_run) === 1,
    outcome: row.outcome as GcRunRecord['outcome'],
    report: JSON.parse(row.report as string) as unknown,
  };
}

/** Totals by provenance, from rows of (mirrored 0/1 or boolean, blobs, bytes). */
export function totalsOf(rows: Row[]): StorageTotals {
  const totals: StorageTotals = { pushed: { blobs: 0, bytes: 0 }, mirrored: { blobs: 0, bytes: 0 } };
  for (const row of rows) {
    const side = row.mirrored === true || Number(row.mirrored) === 1 ? totals.mirrored : totals.pushed;
    side.blobs += Number(row.blobs);
    side.bytes += Number(row.bytes);
  }
  return totals;
}

/** Blob counts and bytes, split by whether an upstream delivered the blob. */
export const STORAGE_TOTALS_SQL = `SELECT EXISTS (SELECT 1 FROM blob_sources s WHERE s.digest = b.digest) AS mirrored, COUNT(*) AS blobs, COALESCE(SUM(b.size), 0) AS bytes
  FROM blobs b GROUP BY 1`;

/**
 * A page of repository summaries in one statement (both engines): each count and the size is an
 * indexed lookup per repository of the page, so a page costs O(its size). `where` restricts
 * `repositories` (aliased r), `limit` is the engine's placeholder for the page size. A
 * repository's size is that of the distinct stored blobs its manifests hold: the manifests
 * themselves and what they reference (an index's children, configs, layers), as `ls` shows it.
 */
export function repositorySummariesSql(where: string, limit: string): string {
  return `SELECT r.name,
      (SELECT COUNT(*) FROM tags t WHERE t.repository = r.name) AS tags,
      (SELECT MAX(t.updated_at) FROM tags t WHERE t.repository = r.name) AS pushed_at,
      (SELECT COUNT(*) FROM manifests m WHERE m.repository = r.name) AS manifests,
      (SELECT SUM(b.size) FROM blobs b WHERE b.digest IN (
        SELECT m.digest FROM manifests m WHERE m.repository = r.name
        UNION
        SELECT x.ref FROM manifests m JOIN manifest_refs x ON x.manifest = m.digest WHERE m.repository = r.name AND x.kind <> 'unreadable'
      )) AS size
    FROM repositories r WHERE ${where} ORDER BY r.name LIMIT ${limit}`;
}

/**
 * Marks repositories' maintained summaries (repository_summaries, schema.ts migration 4) stale,
 * inside the write's own transaction: bumps each one's version, creating the row (stale) when a
 * repository has none yet. `select` yields the repository names (or is one parameter); names
 * with no repository are left out. Rows are marked in name order, so that concurrent marks lock
 * them in one order. Readers recompute stale rows and store the result only while the version has
 * not moved (summaryStore), so a write committed meanwhile, on any replica, is never lost.
 */
export function summaryMark(select: string, engine: Dialect): string {
  // PostgreSQL reads `select` in the statement's snapshot (read committed): a repository deleted by
  // a transaction that commits after it is still seen, and inserting its summary would fail the
  // whole write on the foreign key. KEY SHARE waits for such a delete and then skips the row; it
  // does not block other writers of the repository. SQLite has one writer at a time.
  const lock = engine === 'postgres' ? ' FOR KEY SHARE OF r' : '';
  return `INSERT INTO repository_summaries (name, version, computed_version)
    SELECT name, 1, 0 FROM (SELECT r.name FROM repositories r WHERE r.name IN (${select}) ORDER BY r.name${lock}) AS marked
    WHERE true ORDER BY name
    ON CONFLICT (name) DO UPDATE SET version = repository_summaries.version + 1`;
}

/** The summary marks of one engine: of one repository, and of the holders of a blob or manifest. */
export function summaryMarks(engine: Dialect): { repository: string; holders: string; manifestHolders: string } {
  return {
    /** The repository `?` (when it exists). */
    repository: summaryMark('?', engine),
    /**
     * The repositories whose summary size involves the blob or manifest `?` (given twice): those
     * holding it as a manifest, or holding a manifest that references it (repositorySummariesSql).
     */
    holders: summaryMark(`SELECT m.repository FROM manifests m WHERE m.digest = ?
    UNION SELECT m.repository FROM manifest_refs x JOIN manifests m ON m.digest = x.manifest WHERE x.ref = ? AND x.kind <> 'unreadable'`, engine),
    /** The repositories who hold the manifest `?` (its references were just written). */
    manifestHolders: summaryMark('SELECT repository FROM manifests WHERE digest = ?', engine),
  };
}

/**
 * A page of maintained summaries: each repository of the page with its stored row (absent for a
 * repository that never had one) and whether that row is current (version = computed_version).
 */
export function storedSummariesSql(where: string, limit: string): string {
  return `SELECT r.name, s.version, s.computed_version, s.tags, s.manifests, s.size, s.pushed_at
    FROM repositories r LEFT JOIN repository_summaries s ON s.name = r.name WHERE ${where} ORDER BY r.name LIMIT ${limit}`;
}

/** Whether a storedSummariesSql row can be served as it is. */
export function summaryIsCurrent(row: Row): boolean {
  return row.version !== null && row.version !== undefined && Number(row.version) === Number(row.computed_version);
}

/**
 * repositorySummariesSql over the named repositories, with the version of each one's maintained
 * row read in the same statement (one snapshot): a result stored under that version is exact.
 */
export function freshSummariesSql(inList: string, noLimit: string): string {
  return `SELECT f.*, COALESCE((SELECT s.version FROM repository_summaries s WHERE s.name = f.name), 0) AS version
    FROM (${repositorySummariesSql(inList, noLimit)}) AS f`;
}

/**
 * Stores a recomputed summary (parameters: name, version seen, tags, manifests, size, pushed_at),
 * only when the row's version is still the one seen (a missing row is created current, as
 * version 0); skipped when the repository is gone.
 */
export const SUMMARY_STORE_COLUMNS = '(name, version, computed_version, tags, manifests, size, pushed_at)';
export const SUMMARY_STORE_CONFLICT = `ON CONFLICT (name) DO UPDATE SET tags = excluded.tags, manifests = excluded.manifests, size = excluded.size,
      pushed_at = excluded.pushed_at, computed_version = repository_summaries.version
    WHERE repository_summaries.version = excluded.version`;

/**
 * A page of summaries from its stored rows and, for those not current, the recomputed ones
 * (freshSummariesSql rows), in the page's order. `recompute` gets the names of the stale rows
 * and returns their fresh figures (and stores them under the version it saw).
 */
export async function servedSummaries(stored: Row[], recompute: (names: string[]) => Promise<Row[]>): Promise<RepositorySummary[]> {
  const stale = stored.filter((row) => !summaryIsCurrent(row)).map((row) => row.name as string);
  const fresh = new Map<string, Row>();
  if (stale.length) for (const row of await recompute(stale)) fresh.set(row.name as string, row);
  // A repository deleted between the two statements has no fresh row: its stored one is shown,
  // as the page read it.
  return stored.map((row) => repositorySummaryOf(fresh.get(row.name as string) ?? row));
}

export function repositorySummaryOf(row: Row): RepositorySummary {
  return {
    name: row.name as string,
    tags: Number(row.tags ?? 0),
    manifests: Number(row.manifests ?? 0),
    size: Number(row.size ?? 0),
    ...(row.pushed_at !== null && row.pushed_at !== undefined ? { pushedAt: Number(row.pushed_at) } : {}),
  };
}

/** The engine's pieces of du's statements (the SQL is shared, these differ by dialect). */
export interface UsageDialect {
  /** The namespace of the name in `column`: the part before the first '/' (names.ts namespaceOf). */
  namespaceOf(column: string): string;
  /** A condition that `column` is in the list given as the next parameter. */
  inList(column: string): string;
}

/**
 * The repositories whose maintained holdings (repository_holdings, schema.ts migration 5) lag
 * their summary's version: every write that can change what a repository holds, or the size of
 * a blob it holds, bumps that version in its own transaction (summaryMark).
 */
export const HOLDINGS_STALE = `SELECT s.name FROM repository_summaries s LEFT JOIN holdings_versions h ON h.name = s.name
  WHERE h.version IS NULL OR h.version <> s.version ORDER BY s.name`;

/**
 * Recomputes the holdings of the repositories listed, in one transaction that no other refresh
 * runs beside: statements whose every parameter is the list (`lists` times). The versions are read first, so what is
 * computed after them includes every write they count (a write meanwhile leaves the row stale,
 * and the next du computes it again). Repositories deleted meanwhile are skipped (their rows cascade).
 */
export function holdingsRefreshSql(d: UsageDialect): { sql: string; lists: number }[] {
  const statements = [
    `INSERT INTO holdings_versions (name, version)
      SELECT s.name, s.version FROM repository_summaries s WHERE ${d.inList('s.name')} ORDER BY s.name
      ON CONFLICT (name) DO UPDATE SET version = excluded.version`,
    `DELETE FROM repository_holdings WHERE ${d.inList('repository')}`,
    // The repository's manifests and what they reference, except unreadable ones: the set that
    // repositorySummariesSql sizes, each with the blob's size when stored.
    `INSERT INTO repository_holdings (repository, digest, namespace, size)
      SELECT h.repository, h.digest, ${d.namespaceOf('h.repository')}, b.size
      FROM (
        SELECT m.repository, m.digest FROM manifests m WHERE ${d.inList('m.repository')}
        UNION
        SELECT m.repository, x.ref FROM manifests m JOIN manifest_refs x ON x.manifest = m.digest WHERE ${d.inList('m.repository')} AND x.kind <> 'unreadable'
      ) AS h LEFT JOIN blobs b ON b.digest = h.digest`,
  ];
  return statements.map((sql) => ({ sql, lists: sql.split('?').length - 1 }));
}

/**
 * `du` in one statement over the maintained holdings (current once HOLDINGS_STALE yields none):
 * per namespace the bytes of its distinct blobs, and per blob how many repositories hold it
 * (shared) and whether only mirror namespaces do (what the cache budget counts). One pass over
 * the holdings groups them by (digest, namespace) (`pairs`, in the (digest, namespace, size)
 * index's order); both aggregates read those groups, and nothing joins the blobs. Rows are
 * (section, namespace, amount, amount2): the per-blob aggregate yields shared and cache bytes in
 * one row, and the blobs table its bytes and count. The parameters, in
 * order: the repositories counted (when `restricted`; else every one) and the mirror namespaces.
 */
export function storageUsageSql(d: UsageDialect, restricted: boolean): string {
  const held = restricted
    ? '(SELECT h.digest, h.namespace, h.size FROM repository_holdings h WHERE h.repository IN (SELECT name FROM chosen)) AS held'
    : 'repository_holdings';
  return `WITH chosen AS (
      SELECT r.name, ${d.namespaceOf('r.name')} AS ns FROM repositories r${restricted ? ` WHERE ${d.inList('r.name')}` : ''}
    ),
    pairs AS MATERIALIZED (
      SELECT digest, namespace, MAX(size) AS size, COUNT(*) AS repositories FROM ${held} GROUP BY digest, namespace
    )
    SELECT 'repositories' AS section, ns AS namespace, COUNT(*) AS amount, 0 AS amount2 FROM chosen GROUP BY ns
    UNION ALL
    SELECT 'bytes', namespace, SUM(size), 0 FROM pairs GROUP BY namespace
    UNION ALL
    SELECT 'holders', NULL, SUM(CASE WHEN repositories > 1 THEN size END), SUM(CASE WHEN mirror_only = 1 THEN size END)
    FROM (
      SELECT MAX(size) AS size, SUM(repositories) AS repositories, MIN(CASE WHEN ${d.inList('namespace')} THEN 1 ELSE 0 END) AS mirror_only
      FROM pairs GROUP BY digest
    ) AS holders
    UNION ALL
    SELECT 'stored', NULL, SUM(size), COUNT(*) FROM blobs`;
}

/** storageUsageSql's rows as the aggregate (namespaces in the engine's order; the caller sorts). */
export function storageUsageOf(rows: Row[]): UsageAggregate {
  const byNamespace = new Map<string, { namespace: string; repositories: number; bytes: number }>();
  const usage: UsageAggregate = { namespaces: [], sharedBytes: 0, cacheBytes: 0, storedBytes: 0, blobs: 0 };
  const entry = (namespace: string) => {
    let e = byNamespace.get(namespace);
    if (!e) byNamespace.set(namespace, (e = { namespace, repositories: 0, bytes: 0 }));
    return e;
  };
  for (const row of rows) {
    // SUM over no row is NULL; PostgreSQL's SUM of BIGINT is NUMERIC (a string through pg).
    const amount = Number(row.amount ?? 0);
    switch (row.section) {
      case 'repositories':
        entry(String(row.namespace)).repositories = amount;
        break;
      case 'bytes':
        entry(String(row.namespace)).bytes = amount;
        break;
      case 'holders':
        usage.sharedBytes = amount;
        usage.cacheBytes = Number(row.amount2 ?? 0);
        break;
      case 'stored':
        usage.storedBytes = amount;
        usage.blobs = Number(row.amount2 ?? 0);
        break;
    }
  }
  usage.namespaces = [...byNamespace.values()];
  return usage;
}
