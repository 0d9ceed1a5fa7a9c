// The filesystem content driver: blobs are files named by digest under <root>/blobs, upload
// sessions' bytes are files under <root>/uploads/<id>/data. Every blob lands in a temporary file
// first and is renamed into place only once verified, so a crash at any moment leaves either no
// blob or the whole one, never a torn file.
import { randomUUID, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, statfs, truncate, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { hashOf, parseDigest, type Algorithm, type Digest } from '../../digest.js';
import { RegistryError } from '../../errors.js';
import { fsyncs, makeDirs, noSyncs, type Syncs } from '../durable.js';
import { FileHasher } from '../file-hasher.js';
import { isUploadId, Layout } from '../layout.js';
import type { BlobReader, BlobStat, BlobWriter, ByteRange } from '../store.js';
import type { AppendResult, BeforePublish, BlobContent, ContentOptions, UploadData, UploadDriverState } from './types.js';
import { writeChunksAt } from './write-chunks.js';

/** Large reads and writes: fewer syscalls per byte than the 64 KiB default. */
const IO_CHUNK = 512 * 1024;
/** Prefix directories listed at once by list(). */
const LIST_BATCH = 32;

export class HashingTransform extends Transform {
  size = 0;
  constructor(readonly hash: Hash) {
    super({ highWaterMark: IO_CHUNK });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    done(null, chunk);
  }
}

export function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** The result of a filesystem call, or `missing` when the path (or a parent) does not exist. */
export async function unlessMissing<T, M>(op: Promise<T>, missing: M): Promise<T | M> {
  try {
    return await op;
  } catch (err) {
    if (isNotFound(err)) return missing;
    throw err;
  }
}

export const listDir = (dir: string): Promise<string[]> => unlessMissing(readdir(dir), []);

interface UploadHashState {
  hash: Hash;
  size: number;
}

/**
 * A blob being written is synced behind the writer every this many bytes. The sync before the
 * rename (publish) is what makes the blob durable: left to the end, it wrote the whole blob to
 * disk then (0.2-0.3 s for 256 MiB here), while the download had long been waiting on nothing.
 * (A cache miss's client now gets its last byte on verify(), before that sync.)
 */
const SYNC_STEP = 32 * 1024 * 1024;

class FileBlobWriter implements BlobWriter {
  written = 0;
  private closed = false;
  /** The data sync behind the writer in progress, if any (never rejects). */
  private syncing: Promise<void> | undefined;
  private syncedUpTo = 0;
  /** Settles with the digest's verdict once verify() was called. */
  private verdict: Promise<void> | undefined;

  constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    private readonly hasher: FileHasher,
    private readonly expected: { digest: Digest; size?: number },
    private readonly commitFile: (file: string) => Promise<void>,
    private readonly syncAhead: boolean,
  ) {}

  async write(chunks: Buffer[]): Promise<void> {
    if (this.closed || this.verdict) throw new Error('blob writer is closed');
    this.written += await writeChunksAt(this.handle, chunks, this.written);
    this.hasher.advance(this.written);
    if (this.syncAhead && !this.syncing && this.written - this.syncedUpTo >= SYNC_STEP) {
      const upTo = this.written;
      // A failure here is the final sync's to report (publish).
      this.syncing = this.handle.datasync().then(() => {
        this.syncedUpTo = upTo;
      }, () => undefined).finally(() => {
        this.syncing = undefined;
      });
    }
  }

  /**
   * The digest of the bytes written, checked; the handle stays open (a background sync may still
   * run on it) until commit() or abort(). Checked once: commit() reuses the verdict.
   */
  verify(): Promise<void> {
    this.verdict ??= this.check().catch(async (err: unknown) => {
      this.hasher.abort();
      await this.close().catch(() => undefined);
      await rm(this.path, { force: true });
      throw err;
    });
    return this.verdict;
  }

  private async check(): Promise<void> {
    if (this.expected.size !== undefined && this.written !== this.expected.size) {
      throw new RegistryError('SIZE_INVALID', `expected ${this.expected.size} bytes, received ${this.written}`);
    }
    const algorithm = this.expected.digest.slice(0, this.expected.digest.indexOf(':'));
    const actual = `${algorithm}:${await this.hasher.digest(this.written)}`;
    if (actual !== this.expected.digest) throw new RegistryError('DIGEST_INVALID', 'content did not match its digest', { expected: this.expected.digest, actual });
  }

  async commit(): Promise<BlobStat> {
    await this.verify();
    try {
      await this.close();
      await this.commitFile(this.path);
      return { digest: this.expected.digest, size: this.written };
    } catch (err) {
      await rm(this.path, { force: true });
      throw err;
    }
  }

  async abort(): Promise<void> {
    this.hasher.abort();
    await this.close();
    await rm(this.path, { force: true });
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.syncing;
    await this.handle.close();
  }
}


export class FilesystemContent implements BlobContent {
  private readonly layout: Layout;
  private readonly beforePublish: BeforePublish;
  /** sha256 state of uploads in progress on this replica, so completing one needs no re-read. */
  private readonly uploadHashes = new Map<string, UploadHashState>();

  constructor(
    readonly root: string,
    options: ContentOptions = {},
    private readonly syncs: Syncs = fsyncs,
  ) {
    this.layout = new Layout(root);
    this.beforePublish = options.beforePublish ?? (async () => undefined);
  }

  get location(): string {
    return this.root;
  }

  async init(): Promise<this> {
    await Promise.all([this.layout.blobs, this.layout.uploads, this.layout.tmp].map((d) => mkdir(d, { recursive: true })));
    // Temporary files are never referenced after a restart: whatever a crash left is garbage.
    for (const name of await listDir(this.layout.tmp)) await rm(path.join(this.layout.tmp, name), { force: true, recursive: true });
    return this;
  }

  async close(): Promise<void> {
    this.uploadHashes.clear();
  }

  tmpFile(): string {
    return path.join(this.layout.tmp, randomUUID());
  }

  /** Moves a verified file into the blob store, durably; a blob already there is the same bytes. */
  private async publish(file: string, digest: Digest): Promise<void> {
    // The data sync (seconds for a large blob on a slow disk) comes before the guard's use, which
    // must stay a few filesystem calls from the rename it protects (gc/guard.ts).
    await this.syncs.file(file);
    await this.beforePublish(digest);
    const target = this.layout.blob(digest);
    await makeDirs(path.dirname(target), this.syncs);
    await rename(file, target);
    await this.syncs.dir(path.dirname(target));
  }

  async stat(digest: Digest): Promise<(BlobStat & { modified: Date }) | undefined> {
    const info = await unlessMissing(stat(this.layout.blob(digest)), undefined);
    return info && { digest, size: info.size, modified: info.mtime };
  }

  async open(digest: Digest, range?: ByteRange, signal?: AbortSignal): Promise<Readable | undefined> {
    const handle = await unlessMissing(open(this.layout.blob(digest), 'r'), undefined);
    if (!handle) return undefined;
    // Reading through the open handle keeps serving the bytes even if GC unlinks the file meanwhile.
    const stream = handle.createReadStream({ start: range?.start, end: range?.end, highWaterMark: IO_CHUNK, autoClose: true });
    if (signal) signal.addEventListener('abort', () => stream.destroy(), { once: true });
    return stream;
  }

  async openReader(digest: Digest): Promise<BlobReader | undefined> {
    const handle = await unlessMissing(open(this.layout.blob(digest), 'r'), undefined);
    if (!handle) return undefined;
    return {
      read: async (target, length, position) => (await handle.read(target, 0, length, position)).bytesRead,
      close: () => handle.close(),
    };
  }

  async ingest(source: Readable, expected: { digest: Digest; size?: number }, signal?: AbortSignal): Promise<BlobStat> {
    const parsed = parseDigest(expected.digest);
    if (!parsed) throw new RegistryError('DIGEST_INVALID');
    const tmp = this.tmpFile();
    const hashing = new HashingTransform(hashOf(parsed.algorithm));
    try {
      await pipeline(source, hashing, createWriteStream(tmp, { highWaterMark: IO_CHUNK }), { signal });
      if (expected.size !== undefined && hashing.size !== expected.size) {
        throw new RegistryError('SIZE_INVALID', `expected ${expected.size} bytes, received ${hashing.size}`);
      }
      const actual = `${parsed.algorithm}:${hashing.hash.digest('hex')}`;
      if (actual !== expected.digest) throw new RegistryError('DIGEST_INVALID', 'provided digest did not match uploaded content', { expected: expected.digest, actual });
      await this.publish(tmp, expected.digest);
      return { digest: expected.digest, size: hashing.size };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async openWriter(expected: { digest: Digest; size?: number }): Promise<BlobWriter> {
    const parsed = parseDigest(expected.digest);
    if (!parsed) throw new RegistryError('DIGEST_INVALID');
    const file = this.tmpFile();
    const handle = await open(file, 'w+');
    return new FileBlobWriter(file, handle, new FileHasher(file, parsed.algorithm), expected, (f) => this.publish(f, expected.digest), this.syncs !== noSyncs);
  }

  async delete(digest: Digest): Promise<void> {
    await unlessMissing(unlink(this.layout.blob(digest)), undefined);
  }

  async *list(): AsyncIterable<Digest> {
    for (const algorithm of await listDir(this.layout.blobs)) {
      if (algorithm !== 'sha256' && algorithm !== 'sha512') continue;
      const base = path.join(this.layout.blobs, algorithm);
      const prefixes = await listDir(base);
      // Up to 256 prefix directories: read several at once (the thread pool overlaps them),
      // which took a GC walk of 5,000 blobs from ~1 s to a fraction on a busy machine.
      for (let i = 0; i < prefixes.length; i += LIST_BATCH) {
        const batch = await Promise.all(prefixes.slice(i, i + LIST_BATCH).map((prefix) => listDir(path.join(base, prefix))));
        for (const names of batch) {
          for (const hex of names) {
            const digest = `${algorithm}:${hex}`;
            if (parseDigest(digest)) yield digest as Digest;
          }
        }
      }
    }
  }

  async freeBytes(): Promise<number | undefined> {
    const info = await statfs(this.root);
    return info.bavail * info.bsize;
  }

  // ---- upload data ----

  private uploadFile(id: string): string {
    return path.join(this.layout.upload(id), 'data');
  }

  async createUpload(id: string): Promise<UploadDriverState | undefined> {
    const dir = this.layout.upload(id);
    await mkdir(dir, { recursive: true });
    // Session data is not synced until completion: a client restarts a session lost with the power.
    await (await open(path.join(dir, 'data'), 'w')).close();
    this.uploadHashes.set(id, { hash: hashOf('sha256'), size: 0 });
    return undefined;
  }

  async appendUpload(upload: UploadData, source: Readable, signal?: AbortSignal): Promise<AppendResult> {
    const file = this.uploadFile(upload.id);
    const info = await unlessMissing(stat(file), undefined);
    if (!info || info.size < upload.size) {
      source.resume();
      throw new RegistryError('BLOB_UPLOAD_UNKNOWN');
    }
    // Bytes beyond the acknowledged size are a chunk whose acknowledgement never happened.
    if (info.size > upload.size) await truncate(file, upload.size);
    let state = this.uploadHashes.get(upload.id);
    if (state && state.size !== upload.size) state = undefined;
    const saved = state?.hash.copy();
    const hashing = new HashingTransform(state?.hash ?? hashOf('sha256'));
    try {
      await pipeline(source, hashing, createWriteStream(file, { flags: 'a', highWaterMark: IO_CHUNK }), { signal });
    } catch (err) {
      // A chunk that did not arrive whole is undone, so the session stays consistent for a retry.
      await truncate(file, upload.size).catch(() => undefined);
      if (state && saved) this.uploadHashes.set(upload.id, { hash: saved, size: upload.size });
      throw err;
    }
    if (state) this.uploadHashes.set(upload.id, { hash: hashing.hash, size: upload.size + hashing.size });
    else this.uploadHashes.delete(upload.id);
    return { size: upload.size + hashing.size };
  }

  async finishUpload(upload: UploadData, digest: Digest): Promise<BlobStat> {
    const parsed = parseDigest(digest);
    if (!parsed) throw new RegistryError('DIGEST_INVALID');
    const file = this.uploadFile(upload.id);
    const info = await unlessMissing(stat(file), undefined);
    if (!info || info.size < upload.size) throw new RegistryError('BLOB_UPLOAD_UNKNOWN');
    if (info.size > upload.size) await truncate(file, upload.size);
    const state = this.uploadHashes.get(upload.id);
    this.uploadHashes.delete(upload.id);
    const actual = parsed.algorithm === 'sha256' && state && state.size === upload.size ? `sha256:${state.hash.digest('hex')}` : await this.hashFile(file, parsed.algorithm);
    if (actual !== digest) {
      await this.discardUpload(upload);
      throw new RegistryError('DIGEST_INVALID', 'provided digest did not match uploaded content', { expected: digest, actual });
    }
    await this.publish(file, digest);
    await this.discardUpload(upload);
    return { digest, size: upload.size };
  }

  private async hashFile(file: string, algorithm: Algorithm): Promise<string> {
    const handle = await open(file, 'r');
    const hashing = new HashingTransform(hashOf(algorithm));
    await pipeline(handle.createReadStream({ highWaterMark: IO_CHUNK }), hashing, async (chunks: AsyncIterable<Buffer>) => {
      for await (const chunk of chunks) void chunk;
    });
    return `${algorithm}:${hashing.hash.digest('hex')}`;
  }

  /**
   * Removes a session directory in one step: renamed into _tmp/ (which start-up empties) before
   * being deleted, so nobody, not even after a crash, sees half a session.
   */
  async discardUpload(upload: Pick<UploadData, 'id'>): Promise<void> {
    this.uploadHashes.delete(upload.id);
    const doomed = this.tmpFile();
    const dir = isUploadId(upload.id) ? this.layout.upload(upload.id) : path.join(this.layout.uploads, path.basename(upload.id));
    if (await unlessMissing(rename(dir, doomed).then(() => true), false)) await rm(doomed, { recursive: true, force: true });
  }

  async *listUploads(): AsyncIterable<{ id: string; modified: Date }> {
    for (const id of await listDir(this.layout.uploads)) {
      const dir = path.join(this.layout.uploads, id);
      const info = (await unlessMissing(stat(path.join(dir, 'data')), undefined)) ?? (await unlessMissing(stat(dir), undefined));
      if (info) yield { id, modified: info.mtime };
    }
  }
}

export async function openFilesystemContent(root: string, options?: ContentOptions, syncs?: Syncs): Promise<FilesystemContent> {
  return new FilesystemContent(root, options, syncs).init();
}
