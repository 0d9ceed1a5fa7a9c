// The rows both SQL engines return, as the metadata types: one mapping, so that SQLite and
// PostgreSQL can never disagree on what a stored row means (the schema is shared: schema.ts).
import type { Digest } from '../../digest.js';
import type { Descriptor } from '../../manifest.js';
import type { UploadDriverState } from '../content/types.js';
import type { AuditEvent, AuditQuery, AuditRecord, GcRunRecord, RevisionRecord, StorageTotals, UploadRecord, UsageSample } from './types.js';

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

/** The values of a revision row, in the column order both engines' upserts name them. */
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
