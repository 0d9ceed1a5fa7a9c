// The metadata schema, shared by SQLite (metadata/sqlite.ts) and PostgreSQL: plain TEXT, BIGINT
// (milliseconds since the epoch for times), ON CONFLICT upserts, no engine-only syntax. The only
// dialect difference is the collation of names: listings page by `name > $after ORDER BY name`,
// which must compare bytes as JavaScript's sort does (SQLite's default BINARY does; PostgreSQL
// needs COLLATE "C", whatever the database's locale).
//
// Migrations run in order, each in one transaction with the schema_version update, so a crash
// leaves the database at one version or the next. Never edit a released migration: append one.

export type Dialect = 'sqlite' | 'postgres';

export interface Migration {
  version: number;
  /**
   * Statements, in order; `NAME` stands for the column type of sortable names, `AUTO_ID` for an
   * assigned integer key, `NAMESPACE_OF(column)` for the namespace of a name (namespaceOfSql).
   */
  statements: string[];
}

export const SCHEMA_VERSION_TABLE = 'CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)';

/**
 * Every repository's summary from scratch, current (version 0): migration 4's backfill, also run
 * by the metadata benchmark after it seeds the tables directly. The same figures as rows.ts
 * repositorySummariesSql, spelt out here so that the migration never changes with it, and
 * set-based (one pass per table, grouped): per-repository subqueries let PostgreSQL, on tables
 * without statistics, scan every blob for each repository (minutes at 50,000 repositories).
 */
export const SUMMARY_BACKFILL = `WITH held AS (
    SELECT repository, digest FROM manifests
    UNION
    SELECT m.repository, x.ref FROM manifests m JOIN manifest_refs x ON x.manifest = m.digest WHERE x.kind <> 'unreadable'
  ),
  sized AS (SELECT h.repository, SUM(b.size) AS size FROM held h JOIN blobs b ON b.digest = h.digest GROUP BY h.repository),
  tagged AS (SELECT repository, COUNT(*) AS tags, MAX(updated_at) AS pushed_at FROM tags GROUP BY repository),
  revised AS (SELECT repository, COUNT(*) AS manifests FROM manifests GROUP BY repository)
  INSERT INTO repository_summaries (name, version, computed_version, tags, manifests, size, pushed_at)
  SELECT r.name, 0, 0, COALESCE(t.tags, 0), COALESCE(v.manifests, 0), COALESCE(z.size, 0), t.pushed_at
  FROM repositories r LEFT JOIN tagged t ON t.repository = r.name LEFT JOIN revised v ON v.repository = r.name LEFT JOIN sized z ON z.repository = r.name`;

/**
 * Every repository's holdings from scratch (migration 5's backfill, also run by backfillSummaries
 * after the tables were written directly): the digests its manifests hold (the manifests and what
 * they reference, except unreadable ones: rows.ts repositorySummariesSql's set), each with the
 * repository's namespace and the blob's size (NULL when not stored), and the summary version they
 * were computed at. Spelt out here, set-based, so that the migration never changes with rows.ts.
 * `NAMESPACE_OF(column)` is the engine's namespace expression (statementsFor).
 */
export const HOLDINGS_BACKFILL = [
  `INSERT INTO repository_holdings (repository, digest, namespace, size)
    SELECT h.repository, h.digest, NAMESPACE_OF(h.repository), b.size
    FROM (
      SELECT repository, digest FROM manifests
      UNION
      SELECT m.repository, x.ref FROM manifests m JOIN manifest_refs x ON x.manifest = m.digest WHERE x.kind <> 'unreadable'
    ) AS h LEFT JOIN blobs b ON b.digest = h.digest`,
  // Every repository gets a row (one without manifests holds nothing, and is current).
  `INSERT INTO holdings_versions (name, version)
    SELECT r.name, COALESCE(s.version, 0) FROM repositories r LEFT JOIN repository_summaries s ON s.name = r.name`,
];

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    statements: [
      `CREATE TABLE repositories (
        name NAME PRIMARY KEY,
        created_at BIGINT NOT NULL
      )`,
      `CREATE TABLE blobs (
        digest TEXT PRIMARY KEY,
        size BIGINT NOT NULL,
        created_at BIGINT NOT NULL
      )`,
      // Provenance of cached blobs: which upstream delivered them (proxy/source-id.ts).
      `CREATE TABLE blob_sources (
        digest TEXT NOT NULL,
        source TEXT NOT NULL,
        PRIMARY KEY (digest, source)
      )`,
      `CREATE TABLE links (
        repository NAME NOT NULL REFERENCES repositories (name) ON DELETE CASCADE,
        digest TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (repository, digest)
      )`,
      'CREATE INDEX links_by_digest ON links (digest)',
      // One row per (repository, manifest). `referrer` is the descriptor JSON served by the
      // referrers API when the manifest has a subject.
      `CREATE TABLE manifests (
        repository NAME NOT NULL REFERENCES repositories (name) ON DELETE CASCADE,
        digest TEXT NOT NULL,
        media_type TEXT NOT NULL,
        size BIGINT NOT NULL,
        subject TEXT,
        artifact_type TEXT,
        annotations TEXT,
        referrer TEXT,
        created_at BIGINT NOT NULL,
        pulled_at BIGINT,
        PRIMARY KEY (repository, digest)
      )`,
      'CREATE INDEX manifests_by_subject ON manifests (repository, subject)',
      'CREATE INDEX manifests_by_digest ON manifests (digest)',
      // What each manifest references, parsed once when it is stored: GC's mark phase reads this
      // instead of every manifest's bytes. Global (content-addressed), like blobs.
      `CREATE TABLE manifest_refs (
        manifest TEXT NOT NULL,
        kind TEXT NOT NULL,
        ref TEXT NOT NULL,
        PRIMARY KEY (manifest, kind, ref)
      )`,
      'CREATE INDEX manifest_refs_by_ref ON manifest_refs (ref)',
      `CREATE TABLE tags (
        repository NAME NOT NULL REFERENCES repositories (name) ON DELETE CASCADE,
        tag NAME NOT NULL,
        digest TEXT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (repository, tag)
      )`,
      'CREATE INDEX tags_by_digest ON tags (repository, digest)',
      `CREATE TABLE uploads (
        id TEXT PRIMARY KEY,
        repository NAME NOT NULL,
        size BIGINT NOT NULL,
        started_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        driver_state TEXT
      )`,
    ],
  },
  {
    // The web page's charts over time (api/usage-sampler.ts): one row per replica and sample.
    // Storage figures are the same whoever measures them; traffic is what this replica served
    // since its previous sample, so readers add the replicas' rows of one moment up.
    version: 2,
    statements: [
      `CREATE TABLE usage_samples (
        replica TEXT NOT NULL,
        at BIGINT NOT NULL,
        mirror_bytes BIGINT NOT NULL,
        pushed_bytes BIGINT NOT NULL,
        stored_bytes BIGINT NOT NULL,
        served_from_cache_bytes BIGINT NOT NULL,
        fetched_upstream_bytes BIGINT NOT NULL,
        namespaces TEXT NOT NULL,
        PRIMARY KEY (replica, at)
      )`,
      'CREATE INDEX usage_samples_by_at ON usage_samples (at)',
    ],
  },
  {
    version: 3,
    statements: [
      // The audit trail (audit/audit-log.ts): who pushed, deleted, logged in, changed accounts or keys.
      // `detail` is JSON; times are milliseconds since the epoch, as everywhere.
      `CREATE TABLE audit_events (
        id AUTO_ID,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL,
        client TEXT,
        detail TEXT
      )`,
      'CREATE INDEX audit_events_by_at ON audit_events (at)',
      // Garbage collection's last runs (gc/scheduler.ts keeps gc.history of them): the report as JSON.
      `CREATE TABLE gc_runs (
        id AUTO_ID,
        finished_at BIGINT NOT NULL,
        dry_run BIGINT NOT NULL,
        outcome TEXT NOT NULL,
        report TEXT NOT NULL
      )`,
    ],
  },
  {
    // `ls` reads one maintained row per repository (its figures as repositorySummariesSql in
    // rows.ts computes them) instead of computing them per request. Exact, never stale: every
    // write that can change a repository's figures bumps `version` in its own transaction, and a
    // reader recomputes the rows whose computed_version lags, storing the result only while
    // `version` has not moved (rows.ts summaryMark, SUMMARY_STORE_CONFLICT). The backfill
    // computes every existing repository's row, current (version 0).
    version: 4,
    statements: [
      `CREATE TABLE repository_summaries (
        name NAME PRIMARY KEY REFERENCES repositories (name) ON DELETE CASCADE,
        version BIGINT NOT NULL,
        computed_version BIGINT NOT NULL,
        tags BIGINT NOT NULL DEFAULT 0,
        manifests BIGINT NOT NULL DEFAULT 0,
        size BIGINT NOT NULL DEFAULT 0,
        pushed_at BIGINT
      )`,
      SUMMARY_BACKFILL,
    ],
  },
  {
    // `du` aggregates maintained rows instead of joining every repository's manifests and their
    // references per request: per repository, the digests it holds (repository_holdings, with its
    // namespace and the blob's size, so that per-namespace bytes, shared and cache bytes are
    // aggregates of one index), and the repository summary version they were computed at
    // (holdings_versions). No write touches them: every write that can change a repository's
    // holdings or the size of one already bumps its repository_summaries.version (rows.ts
    // summaryMark), and du first recomputes the repositories whose holdings_versions lags
    // (rows.ts HOLDINGS_STALE), storing the version it read before computing.
    version: 5,
    statements: [
      `CREATE TABLE repository_holdings (
        repository NAME NOT NULL REFERENCES repositories (name) ON DELETE CASCADE,
        digest TEXT NOT NULL,
        namespace NAME NOT NULL,
        size BIGINT,
        PRIMARY KEY (repository, digest)
      )`,
      `CREATE TABLE holdings_versions (
        name NAME PRIMARY KEY REFERENCES repositories (name) ON DELETE CASCADE,
        version BIGINT NOT NULL
      )`,
      ...HOLDINGS_BACKFILL,
      // du's aggregates: grouped by (digest, namespace) in index order (covering). Built after
      // the backfill: one sort, not an index insert per row.
      'CREATE INDEX repository_holdings_by_digest ON repository_holdings (digest, namespace, size)',
    ],
  },
];

/** The statements of a migration in the given dialect. */
export function statementsFor(migration: Migration, dialect: Dialect): string[] {
  const name = dialect === 'postgres' ? 'TEXT COLLATE "C"' : 'TEXT';
  // `AUTO_ID`: an increasing integer key the engine assigns (append-only logs page by it).
  const autoId = dialect === 'postgres' ? 'BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY' : 'INTEGER PRIMARY KEY AUTOINCREMENT';
  return migration.statements.map((s) => namespaceOfIn(s.replace(/\bNAME\b/g, name).replace(/\bAUTO_ID\b/g, autoId), dialect));
}

/**
 * The namespace of a name (the part before its first '/', names.ts namespaceOf) in SQL: the two
 * engines share no string function for it.
 */
export function namespaceOfSql(column: string, dialect: Dialect): string {
  return dialect === 'postgres'
    ? `split_part(${column}, '/', 1)`
    : `CASE WHEN instr(${column}, '/') > 0 THEN substr(${column}, 1, instr(${column}, '/') - 1) ELSE ${column} END`;
}

/** `NAMESPACE_OF(column)` in a statement, as namespaceOfSql. */
export function namespaceOfIn(statement: string, dialect: Dialect): string {
  return statement.replace(/\bNAMESPACE_OF\(([\w.]+)\)/g, (_, column: string) => namespaceOfSql(column, dialect));
}

export const LATEST_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;
