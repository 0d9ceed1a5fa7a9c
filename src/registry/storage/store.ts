// The one storage interface the registry's callers use (routes, proxy, gc, api, cli). It is
// implemented by composing two halves (composed-store.ts): blob content (content/types.ts: the
// filesystem driver, or S3) and metadata (metadata/types.ts: SQLite, or PostgreSQL).
import type { Readable } from 'node:stream';
import type { Digest } from '../digest.js';
import type { ReferenceGuard } from '../gc/guard.js';
import type { Descriptor, ManifestInfo } from '../manifest.js';
import type { MetadataStore, Page } from './metadata/types.js';

export type { Page } from './metadata/types.js';

export interface BlobStat {
  digest: Digest;
  size: number;
}

export interface StoredManifest {
  digest: Digest;
  mediaType: string;
  size: number;
  subject?: Digest;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface UploadState {
  id: string;
  repository: string;
  size: number;
  startedAt: Date;
}

export interface ByteRange { start: number; end: number }

/**
 * Positional reads of one stored blob, for a response that copies the bytes through buffers of
 * its own (registry/blob-response.ts). It keeps serving the bytes even if the blob is deleted meanwhile.
 */
export interface BlobReader {
  /** Reads up to `length` bytes at `position` into the start of `target`; 0 at the end. */
  read(target: Buffer, length: number, position: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * A blob being written while others may already read it (the pull-through cache streams an
 * upstream download to clients from the file as it grows). Nothing is visible in the blob store
 * until `commit()` has verified the digest (and size).
 */
export interface BlobWriter {
  /** The temporary file the bytes land in; readers may open it and follow `written`. */
  readonly path: string;
  /** Bytes handed to the file system so far (readable from `path`). */
  readonly written: number;
  write(chunks: Buffer[]): Promise<void>;
  /**
   * Optional: checks the size and digest of everything written, without publishing. On a
   * mismatch it throws DIGEST_INVALID/SIZE_INVALID and drops the file, as commit() would; once it
   * has resolved, no more writes are taken and commit() only publishes. (A cache miss releases
   * its client's last byte on this verdict and publishes behind it.)
   */
  verify?(): Promise<void>;
  /** Verifies (unless verify() did) and moves the file into the blob store; throws DIGEST_INVALID/SIZE_INVALID and stores nothing otherwise. */
  commit(): Promise<BlobStat>;
  /** Drops the temporary file (idempotent). */
  abort(): Promise<void>;
}

export interface Store {
  /** Where the data lives, for messages (the storage root directory). */
  readonly root: string;
  /**
   * The metadata half, for bulk read-only queries (GC's mark phase, eviction, inventory): its
   * scans are indexed and O(rows). Writes go through the Store's methods (they use the guard).
   */
  readonly metadata: MetadataStore;
  /**
   * Records every use of a digest by a writer and serialises it with GC deletions (gc/guard.ts).
   * Drivers call `guard.use(digest)` in statBlob, blobLinked, linkBlob, statManifest, setTag and
   * before a blob becomes visible; listings and deleteManifest do not count as uses.
   */
  readonly guard: ReferenceGuard;

  // Blobs: content-addressed, shared by every repository.
  statBlob(digest: Digest): Promise<BlobStat | undefined>;
  /** A stream of the blob (or an inclusive byte range of it); undefined when absent. */
  openBlob(digest: Digest, range?: ByteRange, signal?: AbortSignal): Promise<Readable | undefined>;
  /** Positional reads of the blob; undefined when absent. */
  openBlobReader(digest: Digest): Promise<BlobReader | undefined>;
  /**
   * Streams `source` into the store; the blob becomes visible only once its digest is verified
   * (and its size, when given). A mismatch stores nothing and throws DIGEST_INVALID/SIZE_INVALID.
   */
  ingestBlob(source: Readable, expected: { digest: Digest; size?: number }, signal?: AbortSignal): Promise<BlobStat>;
  deleteBlob(digest: Digest): Promise<void>;
  /** Opens a blob writer for `expected` (see BlobWriter). */
  openBlobWriter(expected: { digest: Digest; size?: number }): Promise<BlobWriter>;
  /**
   * `digest`'s verified bytes went out before its commit is done (`done` settles when it is):
   * until then this replica's statBlob, blobLinked, blobFromSource and repositoriesLinking for
   * it wait for `done`.
   */
  commitBehind(digest: Digest, done: Promise<unknown>): void;
  /** Every recorded blob (metadata: fast), with when it was stored. */
  listBlobs(): AsyncIterable<BlobStat & { modified: Date }>;
  /**
   * Blobs the content holds that no metadata record names (a crash between publishing and
   * recording, or a partial migration): GC sweeps them too once they are older than its cutoff.
   */
  listUnrecordedBlobs(): AsyncIterable<BlobStat & { modified: Date }>;
  /** Bytes that can still be written (for a cache fill to refuse what cannot fit); undefined when unknown. */
  freeBytes(): Promise<number | undefined>;
  /**
   * A URL where a client can fetch the blob from the content store itself (a presigned GET of an
   * object store); undefined when the driver cannot give one (the filesystem).
   */
  blobUrl?(digest: Digest): Promise<string | undefined>;
  /** Throws while the blob content's store (an object store) cannot be reached: see BlobContent.ping. */
  pingContent?(signal: AbortSignal): Promise<void>;
  /**
   * Where a blob's bytes came from: `source` (an opaque id of one upstream, proxy/source-id.ts)
   * delivered them, verified. Only a mirror's cache fill records it, so a pushed blob never
   * counts as an upstream's; deleteBlob forgets it.
   */
  recordBlobSource(digest: Digest, source: string): Promise<void>;
  blobFromSource(digest: Digest, source: string): Promise<boolean>;

  // Repository membership of blobs.
  linkBlob(repository: string, digest: Digest): Promise<void>;
  blobLinked(repository: string, digest: Digest): Promise<boolean>;
  unlinkBlob(repository: string, digest: Digest): Promise<boolean>;
  listBlobLinks(repository: string): Promise<Digest[]>;

  // Manifests (the bytes are a blob; the repository holds a revision with its media type).
  /**
   * Stores the bytes (a blob) and the revision. `parsed`: what the caller's parse of the bytes
   * found (its references are indexed for GC); parsed here when absent, and bytes that do not
   * parse as `meta.mediaType` are refused.
   */
  putManifest(repository: string, bytes: Buffer, meta: Omit<StoredManifest, 'size'>, referrer?: Descriptor, parsed?: Pick<ManifestInfo, 'blobs' | 'manifests'>): Promise<void>;
  statManifest(repository: string, digest: Digest): Promise<StoredManifest | undefined>;
  getManifest(repository: string, digest: Digest): Promise<{ meta: StoredManifest; bytes: Buffer } | undefined>;
  /** Removes the revision, every tag that points at it, and its referrer entry. */
  deleteManifest(repository: string, digest: Digest): Promise<boolean>;
  listManifests(repository: string): Promise<StoredManifest[]>;
  /** Records that a manifest was pulled (the cache budget evicts the least recently pulled first). */
  recordPull(repository: string, digest: Digest, at?: Date): Promise<void>;
  /** When the manifest was last recorded as pulled; undefined when never. */
  lastPulled(repository: string, digest: Digest): Promise<Date | undefined>;
  forgetPull(repository: string, digest: Digest): Promise<void>;

  // Tags.
  resolveTag(repository: string, tag: string): Promise<Digest | undefined>;
  setTag(repository: string, tag: string, digest: Digest): Promise<void>;
  deleteTag(repository: string, tag: string): Promise<boolean>;
  /** A page of tags (all without `page`), sorted lexically; undefined when the repository does not exist. */
  listTags(repository: string, page?: Page): Promise<string[] | undefined>;
  /** Tags with their digests and when each was last set; undefined when the repository does not exist. */
  listTagDetails(repository: string, page?: Page): Promise<{ tag: string; digest: Digest; modified: Date }[] | undefined>;
  /** When a manifest revision was last written; undefined when absent. */
  revisionModified(repository: string, digest: Digest): Promise<Date | undefined>;

  // Referrers of a subject digest within a repository.
  listReferrers(repository: string, subject: Digest): Promise<Descriptor[]>;

  // Repositories.
  repositoryExists(repository: string): Promise<boolean>;
  /** A page of repository names (all without `page`), sorted lexically; `namespace`: only `ns` and `ns/...`. */
  listRepositories(page?: Page & { namespace?: string }): Promise<string[]>;
  /** The repositories that link `digest`, sorted lexically (a listing: not a use of the digest). */
  repositoriesLinking(digest: Digest): Promise<string[]>;
  deleteRepository(repository: string): Promise<boolean>;
  /** Removes every repository whose first path component is `namespace`. */
  deleteNamespace(namespace: string): Promise<string[]>;

  // Upload sessions, kept on disk so they survive a restart.
  createUpload(repository: string): Promise<UploadState>;
  getUpload(repository: string, id: string): Promise<UploadState | undefined>;
  /** Appends a chunk; `offset` (when given) must equal the current size, else RANGE_INVALID. */
  appendUpload(upload: UploadState, source: Readable, offset?: number, signal?: AbortSignal): Promise<UploadState>;
  /** Verifies the whole upload against `digest` and moves it into the blob store. */
  completeUpload(upload: UploadState, digest: Digest): Promise<BlobStat>;
  cancelUpload(repository: string, id: string): Promise<boolean>;
  listUploads(): Promise<UploadState[]>;
  /** Removes uploads idle (no start, no chunk) since before `olderThan`; returns how many. */
  purgeUploads(olderThan: Date): Promise<number>;

  /** Flushes pending writes (pull times) and closes the database and connections. */
  close(): Promise<void>;
}
