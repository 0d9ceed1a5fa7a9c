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

export interface MetadataStore {
  /** Runs pending migrations (metadata/schema.ts); idempotent. */
  open(): Promise<void>;
  close(): Promise<void>;

  // ---- blobs (content-addressed, global) ----
  getBlob(digest: Digest): Promise<BlobRecord | undefined>;
  /** Inserts or keeps the record (a second publication of the same digest keeps createdAt). */
  putBlob(blob: BlobRecord): Promise<void>;
  /** Removes the record and its provenance. Links stay (GC and eviction unlink what they sweep). */
  deleteBlob(digest: Digest): Promise<void>;
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
  /** Tag and manifest counts and size per repository, for a page of repositories (one statement). */
  repositorySummaries(page?: Page & { namespace?: string }): Promise<RepositorySummary[]>;
  /** Removes the repository's own tags, revisions, links (a nested repository stays). */
  deleteRepository(repository: string): Promise<boolean>;
  /** Removes `namespace` and every `namespace/...` repository; returns their names. */
  deleteNamespace(namespace: string): Promise<string[]>;

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
}
