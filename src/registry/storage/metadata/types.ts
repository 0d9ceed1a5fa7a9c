// Metadata: every name and relation of the registry (repositories, tags, manifest revisions,
// blob records and repository links, referrers, pull times, provenance, upload sessions), kept
// in SQL so that listings are paged by index and GC's mark phase is a handful of scans.
// Engines: metadata/sqlite.ts (embedded default, <root>/metadata.db) and PostgreSQL; both run
// the schema in metadata/schema.ts. Times are milliseconds since the epoch.
import type { Digest } from '../../digest.js';
import type { Descriptor } from '../../manifest.js';
import type { UploadDriverState } from '../content/types.js';

export interface BlobRecord {
  digest: Digest;
  size: number;
  createdAt: number;
}

export interface RevisionRecord {
  repository: string;
  digest: Digest;
  mediaType: string;
  size: number;
  subject?: Digest;
  artifactType?: string;
  annotations?: Record<string, string>;
  /** When the revision was last written (pushed or cached). */
  createdAt: number;
  /** When it was last recorded as pulled; undefined when never. */
  pulledAt?: number;
}

/**
 * What a manifest references, by kind: `blob` (config, layers) or `child` (an index's
 * manifests); `unreadable` marks a manifest whose bytes could not be parsed when imported (GC
 * refuses to sweep while one is kept).
 */
export interface ManifestRef {
  manifest: Digest;
  kind: 'blob' | 'child' | 'unreadable';
  ref: Digest;
}

export interface TagRecord {
  tag: string;
  digest: Digest;
  /** When the tag was last set. */
  updatedAt: number;
}

export interface UploadRecord {
  id: string;
  repository: string;
  size: number;
  startedAt: number;
  /** Last append (or the start): what idle sweeps compare. */
  updatedAt: number;
  /** The content driver's opaque per-session state (content/types.ts). */
  driverState?: UploadDriverState;
}

/** Lexical paging: entries strictly after `after`, at most `limit` of them (all when undefined). */
export interface Page {
  after?: string;
  limit?: number;
}

export interface RepositorySummary {
  name: string;
  tags: number;
  manifests: number;
  /** Bytes of the distinct stored blobs its manifests hold (themselves, their children, configs, layers). */
  size: number;
  /** Newest tag update; undefined when the repository has no tag. */
  pushedAt?: number;
}

export interface PullTime {
  repository: string;
  digest: Digest;
  at: number;
}

/** One entry of the audit trail: who did what to which target, and whether it worked. */
export interface AuditEvent {
  at: number;
  /** A user's name, `namespace:NAME` (a Kubernetes namespace's token), `anonymous`, or `cli:OSUSER`. */
  actor: string;
  /** push, delete, login, user.add, user.passwd, user.rm, team.add, team.rm, team.add-member, team.rm-member, key.rotate, token.namespace */
  action: string;
  /** What it acted on: `repo:tag`, `repo@digest`, a repository, a namespace, a user, a team, a key id. */
  target: string;
  outcome: 'ok' | 'failed';
  /** The client's address, when it came over HTTP. */
  client?: string;
  detail?: Record<string, unknown>;
}

export interface AuditRecord extends AuditEvent {
  id: number;
}

export interface AuditQuery {
  /** At most this many, newest first. */
  limit: number;
  /** Only entries older than this id (the next page). */
  before?: number;
  /** Only this action, or its sub-actions (`user` matches `user.add`). */
  action?: string;
}

/** One garbage collection run as kept for its history: the collector's report, or the failure. */
export interface GcRunRecord {
  id: number;
  finishedAt: number;
  dryRun: boolean;
  outcome: 'ok' | 'failed';
  /** JSON: a GcReport for `ok`, `{ message }` for `failed`. */
  report: unknown;
}

/** Blob records by provenance: `mirrored` ones were delivered by an upstream (blob_sources), the rest were pushed. */
export interface StorageTotals {
  pushed: { blobs: number; bytes: number };
  mirrored: { blobs: number; bytes: number };
}

/** What `du` shows, aggregated by the engine in one statement (MetadataStore.storageUsage). */
export interface UsageAggregate {
  /** Per namespace: its repositories, and the bytes of the distinct stored blobs their manifests hold. */
  namespaces: { namespace: string; repositories: number; bytes: number }[];
  /** Bytes of blobs held by more than one of the repositories counted. */
  sharedBytes: number;
  /** Bytes of blobs held only by repositories of mirror namespaces. */
  cacheBytes: number;
  /** Every blob record, counted once. */
  storedBytes: number;
  blobs: number;
}

export interface MetadataStore {
  /** Runs pending migrations (metadata/schema.ts); idempotent. */
  open(): Promise<void>;
  close(): Promise<void>;

  // ---- blobs (content-addressed, global) ----
  getBlob(digest: Digest): Promise<BlobRecord | undefined>;
  /** Inserts or keeps the record (a second publication of the same digest keeps createdAt). */
  putBlob(blob: BlobRecord): Promise<void>;
  /**
   * Removes the record and its provenance, then runs `removeContent` (the bytes). Links stay (GC
   * and eviction unlink what they sweep). On a shared database the bytes go before the delete
   * commits, while the row is still locked and visible: a client that finds the blob missing can
   * only push it again after its old bytes are gone, so a re-push is never deleted with them.
   */
  deleteBlob(digest: Digest, removeContent?: () => Promise<void>): Promise<void>;
  /** Every blob record, ordered by digest. */
  scanBlobs(): AsyncIterable<BlobRecord>;
  /** Provenance: which upstream (an opaque source id) delivered the verified bytes. */
  addBlobSource(digest: Digest, source: string): Promise<void>;
  hasBlobSource(digest: Digest, source: string): Promise<boolean>;

  // ---- repository links (a repository may serve the blob) ----
  /** Creates the repository when needed. */
  link(repository: string, digest: Digest, at: number): Promise<void>;
  linked(repository: string, digest: Digest): Promise<boolean>;
  unlink(repository: string, digest: Digest): Promise<boolean>;
  listLinks(repository: string): Promise<Digest[]>;
  /** The repositories that link `digest`, sorted lexically (an indexed lookup: links_by_digest). */
  repositoriesLinking(digest: Digest): Promise<string[]>;
  /** Every (repository, digest) link. */
  scanLinks(): AsyncIterable<{ repository: string; digest: Digest }>;

  // ---- manifest revisions ----
  /**
   * In one transaction: creates the repository when needed, writes (or rewrites) the revision
   * with its references (global, by manifest digest) and, when given, its referrer descriptor.
   */
  putManifest(revision: RevisionRecord, refs: ManifestRef[], referrer?: Descriptor): Promise<void>;
  getManifest(repository: string, digest: Digest): Promise<RevisionRecord | undefined>;
  /** Removes the revision, every tag of the repository pointing at it, its referrer entry and pull time. */
  deleteManifest(repository: string, digest: Digest): Promise<boolean>;
  listManifests(repository: string): Promise<RevisionRecord[]>;
  /** Every revision of every repository, ordered by repository then digest. */
  scanManifests(): AsyncIterable<RevisionRecord>;
  /** Every reference of every stored manifest (global, by manifest digest). */
  scanManifestRefs(): AsyncIterable<ManifestRef>;
  /** References of the given manifests. */
  manifestRefs(digests: Digest[]): Promise<ManifestRef[]>;
  /** Records pull times (batched by the caller); revisions that do not exist are ignored. */
  recordPulls(pulls: PullTime[]): Promise<void>;
  forgetPull(repository: string, digest: Digest): Promise<void>;

  // ---- tags ----
  resolveTag(repository: string, tag: string): Promise<Digest | undefined>;
  /** Creates the repository when needed. */
  setTag(repository: string, tag: string, digest: Digest, at: number): Promise<void>;
  deleteTag(repository: string, tag: string): Promise<boolean>;
  /** A page of tags, sorted lexically; undefined when the repository does not exist. */
  listTags(repository: string, page?: Page): Promise<TagRecord[] | undefined>;
  /** Distinct (repository, digest) pairs that some tag points at. */
  scanTagTargets(): AsyncIterable<{ repository: string; digest: Digest }>;

  // ---- referrers ----
  /** Descriptors of the repository's manifests whose subject is `subject`, ordered by digest. */
  listReferrers(repository: string, subject: Digest): Promise<Descriptor[]>;

  // ---- repositories ----
  repositoryExists(repository: string): Promise<boolean>;
  /** A page of repository names, sorted lexically (prefix: only `ns` and `ns/...`). */
  listRepositories(page?: Page & { namespace?: string }): Promise<string[]>;
  /**
   * Tag and manifest counts and size per repository, for a page of repositories: their maintained
   * rows (repository_summaries, kept exact by every write), recomputing only those a write has
   * marked stale since they were last read.
   */
  repositorySummaries(page?: Page & { namespace?: string }): Promise<RepositorySummary[]>;
  /** Removes the repository's own tags, revisions, links (a nested repository stays). */
  deleteRepository(repository: string): Promise<boolean>;
  /** Removes `namespace` and every `namespace/...` repository; returns their names. */
  deleteNamespace(namespace: string): Promise<string[]>;

  // ---- history: the audit trail, garbage collection runs, totals for the metrics ----
  appendAudit(events: AuditEvent[]): Promise<void>;
  listAudit(query: AuditQuery): Promise<AuditRecord[]>;
  /** Removes entries older than `before`; returns how many. */
  pruneAudit(before: number): Promise<number>;
  /** Appends a run and keeps only the newest `keep` runs. */
  recordGcRun(run: Omit<GcRunRecord, 'id'>, keep: number): Promise<void>;
  /** The newest runs first. */
  listGcRuns(limit: number): Promise<GcRunRecord[]>;
  /** One aggregate query over the blob records. */
  storageTotals(): Promise<StorageTotals>;
  /**
   * Bytes by namespace, shared and cache-only bytes over `repositories` (every one when
   * undefined), in one statement: what `du` shows. A blob counts once per namespace holding it.
   * Reads the maintained holdings (schema.ts migration 5), first recomputing those of the
   * repositories whose summary version moved since they were computed.
   */
  storageUsage(query: { repositories?: string[]; mirrorNamespaces: string[] }): Promise<UsageAggregate>;

  // ---- upload sessions ----
  createUpload(upload: UploadRecord): Promise<void>;
  getUpload(id: string): Promise<UploadRecord | undefined>;
  /**
   * Compare-and-set after an append: succeeds only while the session still holds
   * `expectedSize` bytes (another replica's append or a cancel makes it fail: false).
   */
  updateUpload(id: string, expectedSize: number, size: number, driverState: UploadDriverState | undefined, at: number): Promise<boolean>;
  deleteUpload(id: string): Promise<boolean>;
  listUploads(): Promise<UploadRecord[]>;

  // ---- usage history (the web page's charts) ----
  /** Adds a sample and drops every sample taken before `keepAfter` (any replica's). */
  addUsageSample(sample: UsageSample, keepAfter: number): Promise<void>;
  /** Samples taken at or after `since`, oldest first; the newest `limit` when there are more. */
  listUsageSamples(since: number, limit: number): Promise<UsageSample[]>;
}

/** What the registry held and moved at one moment, as one replica measured it. */
export interface UsageSample {
  replica: string;
  at: number;
  mirrorBytes: number;
  pushedBytes: number;
  storedBytes: number;
  /** Bytes this replica served to clients from its cache since its previous sample. */
  servedFromCacheBytes: number;
  /** Bytes this replica fetched from upstreams since its previous sample. */
  fetchedUpstreamBytes: number;
  /** Bytes per namespace (a blob shared by two namespaces counts in both). */
  namespaces: Record<string, number>;
}
