// Blob content: the bytes of blobs, addressed by digest, and the bytes of upload sessions in
// progress. No names, tags or links here (that is metadata/, see metadata/types.ts): a content
// driver is a plain object store that publishes a blob only once its digest is verified.
// Drivers: content/filesystem.ts (the embedded default); an S3 driver implements the same.
import type { Readable } from 'node:stream';
import type { Digest } from '../../digest.js';
import type { BlobReader, BlobStat, BlobWriter, ByteRange } from '../store.js';

/**
 * Called with the digest right before a blob becomes visible (the rename, the final PUT or
 * CompleteMultipartUpload). The composed store passes its ReferenceGuard's `use` here, which
 * serialises publication with a GC deletion of the same digest (gc/guard.ts).
 */
export type BeforePublish = (digest: Digest) => Promise<void>;

export interface ContentOptions {
  beforePublish?: BeforePublish;
}

/**
 * Per-upload state a driver keeps between requests, stored opaquely in the metadata's upload
 * record (metadata/types.ts UploadRecord.driverState) so that any replica can continue the
 * session: e.g. an S3 multipart upload id and its part list. JSON-serialisable; at most a few
 * KiB. The filesystem driver needs none.
 */
export type UploadDriverState = Record<string, unknown>;

/** What a driver is told about an upload session: its id, its committed size, its state. */
export interface UploadData {
  id: string;
  /** Bytes the session holds according to the metadata (the last acknowledged append). */
  size: number;
  driverState?: UploadDriverState;
}

export interface AppendResult {
  /** The session's size after this chunk. */
  size: number;
  /** The new driver state to store with the session (undefined: unchanged / none). */
  driverState?: UploadDriverState;
}

export interface BlobContent {
  /** Where the driver keeps its bytes, for messages (a directory, an s3:// URL). */
  readonly location: string;

  /** The blob's size and when it was written; undefined when absent. */
  stat(digest: Digest): Promise<(BlobStat & { modified: Date }) | undefined>;
  /** A stream of the blob (or an inclusive byte range of it); undefined when absent. */
  open(digest: Digest, range?: ByteRange, signal?: AbortSignal): Promise<Readable | undefined>;
  /** Positional reads of the blob; undefined when absent. */
  openReader(digest: Digest): Promise<BlobReader | undefined>;
  /**
   * Streams `source` in; the blob becomes visible only once its digest (and size, when given)
   * is verified. A mismatch stores nothing and throws DIGEST_INVALID/SIZE_INVALID.
   */
  ingest(source: Readable, expected: { digest: Digest; size?: number }, signal?: AbortSignal): Promise<BlobStat>;
  /** A writer that others may read while it grows (see BlobWriter); publishes on commit(). */
  openWriter(expected: { digest: Digest; size?: number }): Promise<BlobWriter>;
  /** Removes the blob (idempotent). Readers that already opened it may keep reading. */
  delete(digest: Digest): Promise<void>;
  /** Every blob held, in no particular order (GC looks for content no metadata record names). */
  list(): AsyncIterable<Digest>;
  /** Bytes that can still be written; undefined when unknown or unlimited (object stores). */
  freeBytes(): Promise<number | undefined>;
  /** A short-lived URL a client can GET the blob from directly (object stores); absent when there is none. */
  presignedUrl?(digest: Digest): Promise<string>;
  /**
   * Throws while the store behind the driver cannot be reached (readiness); drivers whose bytes
   * are local have nothing to check beyond the storage root, which the health route checks.
   */
  ping?(signal: AbortSignal): Promise<void>;

  // ---- upload data (the session record itself is metadata) ----
  /** Prepares storage for a new session; the returned state goes into its record. */
  createUpload(id: string): Promise<UploadDriverState | undefined>;
  /**
   * Appends `source` to the session at `upload.size` (anything a crashed earlier attempt left
   * beyond that offset is discarded). On error nothing of the chunk counts: the caller keeps
   * the old size and state. Chunks may be of any size (an S3 driver buffers or stores parts
   * below its minimum part size as separate objects).
   */
  appendUpload(upload: UploadData, source: Readable, signal?: AbortSignal): Promise<AppendResult>;
  /**
   * Verifies the session's bytes against `digest` and publishes them as that blob, then frees
   * the session's storage. Throws DIGEST_INVALID (and discards the data) on a mismatch.
   */
  finishUpload(upload: UploadData, digest: Digest): Promise<BlobStat>;
  /** Frees a session's storage (idempotent). */
  discardUpload(upload: UploadData): Promise<void>;
  /** Sessions whose storage exists, with when last written (to sweep those no record names). */
  listUploads(): AsyncIterable<{ id: string; modified: Date }>;

  /** Releases connections or handles. */
  close(): Promise<void>;
}
