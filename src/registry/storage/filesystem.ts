// The filesystem driver: blobs are files named by digest, repositories are directories of small
// link files. Every write lands in a temporary file first and is renamed into place, so a crash
// at any moment leaves either the old state or the new one, never a torn file.
import { randomUUID, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, rmdir, stat, statfs, truncate, unlink, utimes, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { hashOf, parseDigest, type Algorithm, type Digest } from '../digest.js';
import { RegistryError } from '../errors.js';
import type { Descriptor } from '../manifest.js';
import { isRepositoryName } from '../names.js';
import { ReferenceGuard } from '../gc/guard.js';
import { fsyncs, makeDirs, noSyncs, type Syncs } from './durable.js';
import { FileHasher } from './file-hasher.js';
import { isSourceId, isUploadId, Layout } from './layout.js';
import type { BlobReader, BlobStat, BlobWriter, ByteRange, Store, StoredManifest, UploadState } from './store.js';

/** Large reads and writes: fewer syscalls per byte than the 64 KiB default. */
const IO_CHUNK = 512 * 1024;

class HashingTransform extends Transform {
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

function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** The result of a filesystem call, or `missing` when the path (or a parent) does not exist. */
async function unlessMissing<T, M>(op: Promise<T>, missing: M): Promise<T | M> {
  try {
    return await op;
  } catch (err) {
    if (isNotFound(err)) return missing;
    throw err;
  }
}

const readIfExists = (file: string): Promise<Buffer | undefined> => unlessMissing(readFile(file), undefined);
const existsFile = (file: string): Promise<boolean> => unlessMissing(stat(file).then(() => true), false);
const listDir = (dir: string): Promise<string[]> => unlessMissing(readdir(dir), []);
const removeFile = (file: string): Promise<boolean> => unlessMissing(unlink(file).then(() => true), false);

/** The digests named by a `<base>/<algorithm>/<hex>` tree (repository links and revisions); stray names are skipped. */
async function digestsUnder(base: string): Promise<Digest[]> {
  const out: Digest[] = [];
  for (const algorithm of await listDir(base)) {
    for (const hex of await listDir(path.join(base, algorithm))) {
      const digest = `${algorithm}:${hex}`;
      if (parseDigest(digest)) out.push(digest as Digest);
    }
  }
  return out;
}

/** Bytes an upload session holds; a session cancelled or swept meanwhile is gone, not a server fault. */
async function uploadedSize(dataFile: string): Promise<number> {
  const info = await unlessMissing(stat(dataFile), undefined);
  if (!info) throw new RegistryError('BLOB_UPLOAD_UNKNOWN');
  return info.size;
}

interface UploadHashState { hash: Hash; size: number }

class FileBlobWriter implements BlobWriter {
  written = 0;
  private closed = false;

  constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    private readonly hasher: FileHasher,
    private readonly expected: { digest: Digest; size?: number },
    private readonly commitFile: (file: string) => Promise<void>,
  ) {}

  async write(chunks: Buffer[]): Promise<void> {
    if (this.closed) throw new Error('blob writer is closed');
    let total = 0;
    for (const chunk of chunks) total += chunk.length;
    let done = 0;
    while (done < total) {
      // writev may write less than asked; continue from where it stopped.
      const rest = done === 0 ? chunks : sliceChunks(chunks, done);
      const { bytesWritten } = await this.handle.writev(rest, this.written);
      done += bytesWritten;
      this.written += bytesWritten;
    }
    this.hasher.advance(this.written);
  }

  async commit(): Promise<BlobStat> {
    await this.close();
    try {
      if (this.expected.size !== undefined && this.written !== this.expected.size) {
        throw new RegistryError('SIZE_INVALID', `expected ${this.expected.size} bytes, received ${this.written}`);
      }
      const algorithm = this.expected.digest.slice(0, this.expected.digest.indexOf(':'));
      const actual = `${algorithm}:${await this.hasher.digest(this.written)}`;
      if (actual !== this.expected.digest) throw new RegistryError('DIGEST_INVALID', 'content did not match its digest', { expected: this.expected.digest, actual });
      await this.commitFile(this.path);
      return { digest: this.expected.digest, size: this.written };
    } catch (err) {
      this.hasher.abort();
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
    await this.handle.close();
  }
}

function sliceChunks(chunks: Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = [];
  for (const chunk of chunks) {
    if (skip >= chunk.length) {
      skip -= chunk.length;
      continue;
    }
    out.push(skip ? chunk.subarray(skip) : chunk);
    skip = 0;
  }
  return out;
}

export class FilesystemStore implements Store {
  private readonly layout: Layout;
  /** Makes GC safe against concurrent writers: see gc/guard.ts. */
  readonly guard = new ReferenceGuard();
  /** sha256 state of uploads in progress, so completing a chunked upload needs no re-read. */
  private readonly uploadHashes = new Map<string, UploadHashState>();
  /** One queue per upload session in use (see withUploadLock). */
  private readonly uploadLocks = new Map<string, Promise<unknown>>();

  constructor(
    readonly root: string,
    private readonly syncs: Syncs = fsyncs,
  ) {
    this.layout = new Layout(root);
  }

  async init(): Promise<this> {
    await Promise.all([this.layout.blobs, this.layout.repositories, this.layout.uploads, this.layout.tmp].map((d) => mkdir(d, { recursive: true })));
    // Temporary files are never referenced after a restart: whatever a crash left is garbage.
    for (const name of await listDir(this.layout.tmp)) await rm(path.join(this.layout.tmp, name), { force: true, recursive: true });
    return this;
  }

  private tmpFile(): string {
    return path.join(this.layout.tmp, randomUUID());
  }

  /**
   * Writes a small file atomically (temporary file, then rename) and durably: synced before the
   * rename, its directory after (durable.ts says why and what it costs). `syncs` = noSyncs for
   * what may be lost with the power.
   */
  private async writeAtomic(file: string, data: string | Buffer, syncs = this.syncs): Promise<void> {
    const tmp = this.tmpFile();
    try {
      await writeFile(tmp, data);
      await syncs.file(tmp);
    } catch (err) {
      // A full disk creates the file and then refuses its bytes: leave nothing behind.
      await rm(tmp, { force: true });
      throw err;
    }
    try {
      await rename(tmp, file);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await makeDirs(path.dirname(file), syncs);
      await rename(tmp, file);
    }
    await syncs.dir(path.dirname(file));
  }

  /** Moves a verified file into the blob store, durably; a blob already there is the same bytes. */
  private async commitBlob(file: string, digest: Digest): Promise<void> {
    // The data sync (seconds for a large blob on a slow disk) comes before the guard's use, which
    // must stay a few filesystem calls from the rename it protects (gc/guard.ts).
    await this.syncs.file(file);
    await this.guard.use(digest);
    const target = this.layout.blob(digest);
    await makeDirs(path.dirname(target), this.syncs);
    await rename(file, target);
    await this.syncs.dir(path.dirname(target));
  }

  // ---- blobs ----

  async statBlob(digest: Digest): Promise<BlobStat | undefined> {
    await this.guard.use(digest);
    const info = await unlessMissing(stat(this.layout.blob(digest)), undefined);
    return info && { digest, size: info.size };
  }

  async openBlob(digest: Digest, range?: ByteRange, signal?: AbortSignal): Promise<Readable | undefined> {
    const handle = await unlessMissing(open(this.layout.blob(digest), 'r'), undefined);
    if (!handle) return undefined;
    // Reading through the open handle keeps serving the bytes even if GC unlinks the file meanwhile.
    const stream = handle.createReadStream({ start: range?.start, end: range?.end, highWaterMark: IO_CHUNK, autoClose: true });
    if (signal) signal.addEventListener('abort', () => stream.destroy(), { once: true });
    return stream;
  }

  async openBlobReader(digest: Digest): Promise<BlobReader | undefined> {
    const handle = await unlessMissing(open(this.layout.blob(digest), 'r'), undefined);
    if (!handle) return undefined;
    return {
      read: async (target, length, position) => (await handle.read(target, 0, length, position)).bytesRead,
      close: () => handle.close(),
    };
  }

  async ingestBlob(source: Readable, expected: { digest: Digest; size?: number }, signal?: AbortSignal): Promise<BlobStat> {
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
      await this.commitBlob(tmp, expected.digest);
      return { digest: expected.digest, size: hashing.size };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async deleteBlob(digest: Digest): Promise<void> {
    await removeFile(this.layout.blob(digest));
    for (const source of await listDir(this.layout.sources)) if (isSourceId(source)) await removeFile(this.layout.blobSource(source, digest));
  }

  async freeBytes(): Promise<number | undefined> {
    const info = await statfs(this.root);
    return info.bavail * info.bsize;
  }

  async recordBlobSource(digest: Digest, source: string): Promise<void> {
    const marker = this.layout.blobSource(source, digest);
    if (!(await existsFile(marker))) await this.writeAtomic(marker, '');
  }

  async blobFromSource(digest: Digest, source: string): Promise<boolean> {
    return existsFile(this.layout.blobSource(source, digest));
  }

  async openBlobWriter(expected: { digest: Digest; size?: number }): Promise<BlobWriter> {
    const parsed = parseDigest(expected.digest);
    if (!parsed) throw new RegistryError('DIGEST_INVALID');
    const file = this.tmpFile();
    const handle = await open(file, 'w+');
    return new FileBlobWriter(file, handle, new FileHasher(file, parsed.algorithm), expected, async (f) => {
      await this.guard.use(expected.digest);
      await this.commitBlob(f, expected.digest);
    });
  }

  async *listBlobs(): AsyncIterable<BlobStat & { modified: Date }> {
    for (const algorithm of await listDir(this.layout.blobs)) {
      if (algorithm !== 'sha256' && algorithm !== 'sha512') continue;
      for (const prefix of await listDir(path.join(this.layout.blobs, algorithm))) {
        for (const hex of await listDir(path.join(this.layout.blobs, algorithm, prefix))) {
          const digest = `${algorithm}:${hex}`;
          if (!parseDigest(digest)) continue;
          try {
            const info = await stat(path.join(this.layout.blobs, algorithm, prefix, hex));
            yield { digest: digest as Digest, size: info.size, modified: info.mtime };
          } catch (err) {
            if (!isNotFound(err)) throw err;
          }
        }
      }
    }
  }

  // ---- repository links ----

  async linkBlob(repository: string, digest: Digest): Promise<void> {
    await this.guard.use(digest);
    const link = this.layout.layerLink(repository, digest);
    if (await existsFile(link)) return;
    await this.writeAtomic(link, digest);
  }

  async blobLinked(repository: string, digest: Digest): Promise<boolean> {
    await this.guard.use(digest);
    return existsFile(this.layout.layerLink(repository, digest));
  }

  async unlinkBlob(repository: string, digest: Digest): Promise<boolean> {
    return removeFile(this.layout.layerLink(repository, digest));
  }

  async listBlobLinks(repository: string): Promise<Digest[]> {
    return digestsUnder(this.layout.layerLinks(repository));
  }

  // ---- manifests ----

  async putManifest(repository: string, bytes: Buffer, meta: Omit<StoredManifest, 'size'>, referrer?: Descriptor): Promise<void> {
    if (!(await this.statBlob(meta.digest))) await this.ingestBlob(Readable.from([bytes]), { digest: meta.digest, size: bytes.length });
    const stored: StoredManifest = { ...meta, size: bytes.length };
    await this.writeAtomic(this.layout.revision(repository, meta.digest), JSON.stringify(stored));
    if (meta.subject && referrer) {
      await this.writeAtomic(this.layout.referrer(repository, meta.subject, meta.digest), JSON.stringify(referrer));
    }
  }

  async statManifest(repository: string, digest: Digest): Promise<StoredManifest | undefined> {
    await this.guard.use(digest);
    return this.readRevision(repository, digest);
  }

  /** A revision's metadata without counting as a use (GC, listings, deletion). */
  private async readRevision(repository: string, digest: Digest): Promise<StoredManifest | undefined> {
    const raw = await readIfExists(this.layout.revision(repository, digest));
    if (!raw) return undefined;
    return JSON.parse(raw.toString('utf8')) as StoredManifest;
  }

  async getManifest(repository: string, digest: Digest): Promise<{ meta: StoredManifest; bytes: Buffer } | undefined> {
    const meta = await this.statManifest(repository, digest);
    if (!meta) return undefined;
    const bytes = await readIfExists(this.layout.blob(digest));
    if (!bytes) return undefined;
    return { meta, bytes };
  }

  async deleteManifest(repository: string, digest: Digest): Promise<boolean> {
    const meta = await this.readRevision(repository, digest);
    if (!meta) return false;
    const tagsDir = this.layout.tags(repository);
    for (const tag of await listDir(tagsDir)) {
      const current = await readIfExists(path.join(tagsDir, tag));
      if (current?.toString('utf8') === digest) await removeFile(path.join(tagsDir, tag));
    }
    if (meta.subject) await removeFile(this.layout.referrer(repository, meta.subject, digest));
    return removeFile(this.layout.revision(repository, digest));
  }

  async listManifests(repository: string): Promise<StoredManifest[]> {
    const out: StoredManifest[] = [];
    for (const digest of await digestsUnder(this.layout.revisions(repository))) {
      const meta = await this.readRevision(repository, digest);
      if (meta) out.push(meta);
    }
    return out;
  }

  /** Pull times live beside the revisions (a `_manifests/pulled/<alg>/<hex>` file's mtime), so deleting the repository drops them. */
  private pullMarker(repository: string, digest: Digest): string {
    const parsed = parseDigest(digest);
    if (!parsed) throw new Error('storage: refusing invalid digest');
    return path.join(this.layout.repository(repository), '_manifests', 'pulled', parsed.algorithm, parsed.hex);
  }

  async recordPull(repository: string, digest: Digest, at = new Date()): Promise<void> {
    const marker = this.pullMarker(repository, digest);
    try {
      await utimes(marker, at, at);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await this.writeAtomic(marker, '', noSyncs); // a hint for eviction: not worth a sync
      await utimes(marker, at, at);
    }
  }

  async lastPulled(repository: string, digest: Digest): Promise<Date | undefined> {
    return (await unlessMissing(stat(this.pullMarker(repository, digest)), undefined))?.mtime;
  }

  async forgetPull(repository: string, digest: Digest): Promise<void> {
    await removeFile(this.pullMarker(repository, digest));
  }

  // ---- tags ----

  async resolveTag(repository: string, tag: string): Promise<Digest | undefined> {
    const raw = await readIfExists(this.layout.tag(repository, tag));
    const digest = raw?.toString('utf8');
    return digest && parseDigest(digest) ? (digest as Digest) : undefined;
  }

  async setTag(repository: string, tag: string, digest: Digest): Promise<void> {
    await this.guard.use(digest);
    await this.writeAtomic(this.layout.tag(repository, tag), digest);
  }

  async deleteTag(repository: string, tag: string): Promise<boolean> {
    return removeFile(this.layout.tag(repository, tag));
  }

  async listTags(repository: string): Promise<string[] | undefined> {
    if (!(await this.repositoryExists(repository))) return undefined;
    return (await listDir(this.layout.tags(repository))).sort();
  }

  /** Every tag with its digest and when it was last set (the file's mtime); undefined when the repository does not exist. */
  async listTagDetails(repository: string): Promise<{ tag: string; digest: Digest; modified: Date }[] | undefined> {
    const tags = await this.listTags(repository);
    if (!tags) return undefined;
    const out: { tag: string; digest: Digest; modified: Date }[] = [];
    for (const tag of tags) {
      const file = this.layout.tag(repository, tag);
      const [raw, info] = await Promise.all([readIfExists(file), stat(file).catch(() => undefined)]);
      const digest = raw?.toString('utf8');
      if (digest && parseDigest(digest) && info) out.push({ tag, digest: digest as Digest, modified: info.mtime });
    }
    return out;
  }

  /** When the revision was last written (pushed or cached); undefined when absent. */
  async revisionModified(repository: string, digest: Digest): Promise<Date | undefined> {
    return (await stat(this.layout.revision(repository, digest)).catch(() => undefined))?.mtime;
  }

  // ---- referrers ----

  async listReferrers(repository: string, subject: Digest): Promise<Descriptor[]> {
    const dir = this.layout.referrers(repository, subject);
    const out: Descriptor[] = [];
    for (const name of (await listDir(dir)).sort()) {
      const raw = await readIfExists(path.join(dir, name));
      if (raw) out.push(JSON.parse(raw.toString('utf8')) as Descriptor);
    }
    return out;
  }

  // ---- repositories ----

  async repositoryExists(repository: string): Promise<boolean> {
    const dir = this.layout.repository(repository);
    return (await existsFile(path.join(dir, '_manifests'))) || (await existsFile(path.join(dir, '_layers')));
  }

  async listRepositories(): Promise<string[]> {
    const out: string[] = [];
    const walk = async (dir: string, prefix: string): Promise<void> => {
      const entries = await listDir(dir);
      if (prefix && (entries.includes('_manifests') || entries.includes('_layers'))) out.push(prefix);
      for (const entry of entries) {
        if (entry.startsWith('_')) continue;
        const name = prefix ? `${prefix}/${entry}` : entry;
        if (isRepositoryName(name)) await walk(path.join(dir, entry), name);
      }
    };
    await walk(this.layout.repositories, '');
    return out.sort();
  }

  async deleteRepository(repository: string): Promise<boolean> {
    const dir = this.layout.repository(repository);
    if (!(await this.repositoryExists(repository))) return false;
    // Only this repository's own data: a nested repository (name/child) stays.
    for (const part of ['_manifests', '_layers', '_referrers']) await rm(path.join(dir, part), { recursive: true, force: true });
    await this.pruneEmptyParents(dir);
    return true;
  }

  async deleteNamespace(namespace: string): Promise<string[]> {
    if (!isRepositoryName(namespace) || namespace.includes('/')) throw new Error('storage: refusing invalid namespace');
    const removed = (await this.listRepositories()).filter((r) => r === namespace || r.startsWith(`${namespace}/`));
    await rm(this.layout.repository(namespace), { recursive: true, force: true });
    return removed;
  }

  private async pruneEmptyParents(dir: string): Promise<void> {
    let current = dir;
    while (current.startsWith(this.layout.repositories + path.sep)) {
      try {
        await rmdir(current);
      } catch {
        return; // not empty (or gone): stop climbing
      }
      current = path.dirname(current);
    }
  }

  // ---- uploads ----

  /**
   * Serialises everything that changes one upload session: append, completion, cancel and the
   * sweep. Without it a cancel could remove the directory while a completion was renaming its
   * data (a 500 and a lost blob), or the sweep could take a session mid-chunk.
   */
  private async withUploadLock<T>(id: string, work: () => Promise<T>): Promise<T> {
    const previous = this.uploadLocks.get(id) ?? Promise.resolve();
    const next = previous.then(work, work);
    const settled = next.catch(() => undefined);
    this.uploadLocks.set(id, settled);
    void settled.then(() => {
      if (this.uploadLocks.get(id) === settled) this.uploadLocks.delete(id);
    });
    return next;
  }

  /**
   * Removes a session directory in one step: it is renamed into _tmp/ (which start-up empties)
   * before being deleted, so nobody, not even after a crash, sees a session with its data gone
   * but its info.json still there.
   */
  private async discardUpload(dir: string): Promise<void> {
    const doomed = this.tmpFile();
    if (await unlessMissing(rename(dir, doomed).then(() => true), false)) await rm(doomed, { recursive: true, force: true });
  }

  async createUpload(repository: string): Promise<UploadState> {
    const id = randomUUID();
    const dir = this.layout.upload(id);
    const startedAt = new Date();
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'data'), '');
    // Session state is not synced, nor are its chunks until completion: a client restarts a session lost with the power.
    await this.writeAtomic(path.join(dir, 'info.json'), JSON.stringify({ repository, startedAt: startedAt.toISOString() }), noSyncs);
    this.uploadHashes.set(id, { hash: hashOf('sha256'), size: 0 });
    return { id, repository, size: 0, startedAt };
  }

  async getUpload(repository: string, id: string): Promise<UploadState | undefined> {
    if (!isUploadId(id)) return undefined;
    const dir = this.layout.upload(id);
    const raw = await readIfExists(path.join(dir, 'info.json'));
    if (!raw) return undefined;
    const info = JSON.parse(raw.toString('utf8')) as { repository: string; startedAt: string };
    // An upload belongs to the repository it was started in; another name cannot reach it.
    if (info.repository !== repository) return undefined;
    const data = await unlessMissing(stat(path.join(dir, 'data')), undefined);
    return data && { id, repository, size: data.size, startedAt: new Date(info.startedAt) };
  }

  async appendUpload(upload: UploadState, source: Readable, offset?: number, signal?: AbortSignal): Promise<UploadState> {
    return this.withUploadLock(upload.id, async () => {
      const file = path.join(this.layout.upload(upload.id), 'data');
      const size = await uploadedSize(file);
      if (offset !== undefined && offset !== size) {
        source.resume();
        throw new RegistryError('RANGE_INVALID', `chunk starts at ${offset}, upload has ${size} bytes`, undefined, {
          headers: { Range: `0-${Math.max(0, size - 1)}`, 'Docker-Upload-UUID': upload.id },
        });
      }
      let state = this.uploadHashes.get(upload.id);
      if (state && state.size !== size) state = undefined;
      const saved = state?.hash.copy();
      const hashing = new HashingTransform(state?.hash ?? hashOf('sha256'));
      try {
        await pipeline(source, hashing, createWriteStream(file, { flags: 'a', highWaterMark: IO_CHUNK }), { signal });
      } catch (err) {
        // A chunk that did not arrive whole is undone, so the session stays consistent for a retry.
        await truncate(file, size).catch(() => undefined);
        if (state && saved) this.uploadHashes.set(upload.id, { hash: saved, size });
        throw err;
      }
      if (state) this.uploadHashes.set(upload.id, { hash: hashing.hash, size: size + hashing.size });
      else this.uploadHashes.delete(upload.id);
      return { ...upload, size: size + hashing.size };
    });
  }

  async completeUpload(upload: UploadState, digest: Digest): Promise<BlobStat> {
    return this.withUploadLock(upload.id, async () => {
      const parsed = parseDigest(digest);
      if (!parsed) throw new RegistryError('DIGEST_INVALID');
      const dir = this.layout.upload(upload.id);
      const file = path.join(dir, 'data');
      const size = await uploadedSize(file);
      const state = this.uploadHashes.get(upload.id);
      let actual: string;
      if (parsed.algorithm === 'sha256' && state && state.size === size) actual = `sha256:${state.hash.digest('hex')}`;
      else actual = await this.hashFile(file, parsed.algorithm);
      this.uploadHashes.delete(upload.id);
      if (actual !== digest) {
        await this.discardUpload(dir);
        throw new RegistryError('DIGEST_INVALID', 'provided digest did not match uploaded content', { expected: digest, actual });
      }
      await this.commitBlob(file, digest);
      await this.discardUpload(dir);
      return { digest, size };
    });
  }

  private async hashFile(file: string, algorithm: Algorithm): Promise<string> {
    const handle = await open(file, 'r');
    const hashing = new HashingTransform(hashOf(algorithm));
    await pipeline(handle.createReadStream({ highWaterMark: IO_CHUNK }), hashing, async (chunks: AsyncIterable<Buffer>) => {
      for await (const chunk of chunks) void chunk;
    });
    return `${algorithm}:${hashing.hash.digest('hex')}`;
  }

  async cancelUpload(repository: string, id: string): Promise<boolean> {
    if (!isUploadId(id)) return false;
    // Under the lock: a completion in flight either finishes first (and the session is gone) or
    // runs after the cancel and finds nothing; whichever loses answers BLOB_UPLOAD_UNKNOWN.
    return this.withUploadLock(id, async () => {
      if (!(await this.getUpload(repository, id))) return false;
      this.uploadHashes.delete(id);
      await this.discardUpload(this.layout.upload(id));
      return true;
    });
  }

  async listUploads(): Promise<UploadState[]> {
    const out: UploadState[] = [];
    for (const id of await listDir(this.layout.uploads)) {
      if (!isUploadId(id)) continue;
      const raw = await readIfExists(path.join(this.layout.upload(id), 'info.json'));
      if (!raw) continue;
      const info = JSON.parse(raw.toString('utf8')) as { repository: string; startedAt: string };
      const upload = await this.getUpload(info.repository, id);
      if (upload) out.push(upload);
    }
    return out;
  }

  async purgeUploads(olderThan: Date): Promise<number> {
    let removed = 0;
    for (const id of await listDir(this.layout.uploads)) {
      if (!isUploadId(id)) {
        // Debris a crash or a stranger left: nothing can be appending to it.
        const debris = path.join(this.layout.uploads, id);
        if (await this.uploadIdleSince(debris, olderThan)) {
          await rm(debris, { recursive: true, force: true });
          removed += 1;
        }
        continue;
      }
      // A session with an append or completion under way is in use, whatever its timestamps
      // say (a slow client streaming one long PATCH): skip it rather than wait behind it.
      if (this.uploadLocks.has(id)) continue;
      const swept = await this.withUploadLock(id, async () => {
        const dir = this.layout.upload(id);
        if (!(await this.uploadIdleSince(dir, olderThan))) return false;
        this.uploadHashes.delete(id);
        await this.discardUpload(dir);
        return true;
      });
      if (swept) removed += 1;
    }
    return removed;
  }

  /** Whether a session directory has seen nothing (start, chunk) since `olderThan`. */
  private async uploadIdleSince(dir: string, olderThan: Date): Promise<boolean> {
    const entry = await unlessMissing(stat(dir), undefined);
    if (!entry) return false; // gone meanwhile: nothing to sweep
    const raw = await readIfExists(path.join(dir, 'info.json'));
    const started = raw ? new Date((JSON.parse(raw.toString('utf8')) as { startedAt: string }).startedAt) : entry.mtime;
    // Abandoned means idle: a slow upload that is still receiving chunks is not swept.
    const written = (await stat(path.join(dir, 'data')).catch(() => undefined))?.mtime;
    const lastActive = written && written > started ? written : started;
    return lastActive < olderThan;
  }
}

export async function openFilesystemStore(root: string, syncs?: Syncs): Promise<FilesystemStore> {
  return new FilesystemStore(root, syncs).init();
}
