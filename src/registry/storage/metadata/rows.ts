// The rows both SQL engines return, as the metadata types: one mapping, so that SQLite and
// PostgreSQL can never disagree on what a stored row means (the schema is shared: schema.ts).
import type { Digest } from '../../digest.js';
import type { Descriptor } from '../../manifest.js';
import type { UploadDriverState } from '../content/types.js';
import type { RepositorySummary, RevisionRecord, UploadRecord } from './types.js';

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

export function repositorySummaryOf(row: Row): RepositorySummary {
  return {
    name: row.name as string,
    tags: Number(row.tags ?? 0),
    manifests: Number(row.manifests ?? 0),
    size: Number(row.size ?? 0),
    ...(row.pushed_at !== null && row.pushed_at !== undefined ? { pushedAt: Number(row.pushed_at) } : {}),
  };
}
