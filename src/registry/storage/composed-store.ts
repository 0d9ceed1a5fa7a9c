// The Store callers use, composed of blob content (content/types.ts) and metadata
// (metadata/types.ts). Order of writes, so that a crash at any point leaves nothing half-visible:
// content is published (verified) before its metadata record is written, and a record is removed
// before its content. Content without a record is invisible to listings and swept by GC; a
// record whose content is gone (deleted outside) reads as absent where the bytes are needed.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { parseDigest, type Digest } from '../digest.js';
import { RegistryError } from '../errors.js';
import { ReferenceGuard } from '../gc/guard.js';
import { parseManifest, type Descriptor, type ManifestInfo } from '../manifest.js';
import { isRepositoryName, isTag } from '../names.js';
import type { BlobContent, ContentOptions, UploadData } from './content/types.js';
import { isSourceId, isUploadId } from './layout.js';
import type { ManifestRef, MetadataStore, Page, RevisionRecord, UploadRecord } from './metadata/types.js';
import type { BlobReader, BlobStat, BlobWriter, ByteRange, Store, StoredManifest, UploadState } from './store.js';

export function toStored(r: RevisionRecord): StoredManifest {
  return {
    digest: r.digest,
    mediaType: r.mediaType,
    size: r.size,
    ...(r.subject ? { subject: r.subject } : {}),
    ...(r.artifactType ? { artifactType: r.artifactType } : {}),
    ...(r.annotations ? { annotations: r.annotations } : {}),
  };
}

function toUploadState(r: UploadRecord): UploadState {
  return { id: r.id, repository: r.repository, size: r.size, startedAt: new Date(r.startedAt) };
}

function toUploadData(r: UploadRecord): UploadData {
  return { id: r.id, size: r.size, ...(r.driverState ? { driverState: r.driverState } : {}) };
}

/** What a manifest references, for the metadata's index (GC's mark phase reads it, not the bytes). */
export function manifestRefs(digest: Digest, bytes: Buffer, mediaType: string, parsed?: Pick<ManifestInfo, 'blobs' | 'manifests'>): ManifestRef[] {
  const info = parsed ?? parseManifest(bytes, mediaType);
  const refs: ManifestRef[] = [];
  const seen = new Set<string>();
  for (const ref of info.blobs) if (!seen.has(`b${ref}`)) seen.add(`b${ref}`), refs.push({ manifest: digest, kind: 'blob', ref });
  for (const ref of info.manifests) if (!seen.has(`c${ref}`)) seen.add(`c${ref}`), refs.push({ manifest: digest, kind: 'child', ref });
  return refs;
}

function checkRepository(name: string): void {
  if (!isRepositoryName(name)) throw new Error(`storage: refusing invalid repository name ${name.slice(0, 80)}`);
}

function checkTag(tag: string): void {
  if (!isTag(tag)) throw new Error(`storage: refusing invalid tag ${tag.slice(0, 80)}`);
}

function checkDigest(digest: string): void {
  if (!parseDigest(digest)) throw new Error(`storage: refusing invalid digest ${String(digest).slice(0, 80)}`);
}

export class ComposedStore implements Store {
  /** One queue per upload session in use on this replica (see withUploadLock). */
  private readonly uploadLocks = new Map<string, Promise<unknown>>();
  /** Commits running behind the client that got the bytes (commitBehind), by digest. */
  private readonly committing = new Map<Digest, Promise<void>>();

  constructor(
    readonly root: string,
    readonly content: BlobContent,
    readonly metadata: MetadataStore,
    /** Makes GC safe against concurrent writers: see gc/guard.ts. The content's beforePublish must call its `use`. */
    readonly guard: ReferenceGuard,
    private readonly now: () => number = Date.now,
  ) {}

  async close(): Promise<void> {
    await this.metadata.close();
    await this.content.close();
  }

  // ---- blobs ----

  /**
   * A blob whose verified bytes a client already has while its commit (publish, records, links)
   * still runs behind: this replica's reads of that digest wait for `done`, so what a client
   * does next with the blob it just pulled (a mount, a manifest push, another repository's GET)
   * sees it stored, as if the commit had come first.
   */
  commitBehind(digest: Digest, done: Promise<unknown>): void {
    const settled = done.then(() => undefined, () => undefined);
    this.committing.set(digest, settled);
    void settled.then(() => {
      if (this.committing.get(digest) === settled) this.committing.delete(digest);
    });
  }

  /** Waits for a commit that runs behind its client (commitBehind), if any. */
  private async committed(digest: Digest): Promise<void> {
    const pending = this.committing.get(digest);
    if (pending) await pending;
  }

  async statBlob(digest: Digest): Promise<BlobStat | undefined> {
    await this.committed(digest);
    await this.guard.use(digest);
    const record = await this.metadata.getBlob(digest);
    if (record) return { digest, size: record.size };
    // Published but not recorded (a crash in between): the bytes are verified, so record them.
    const found = await this.content.stat(digest);
    if (!found) return undefined;
    await this.metadata.putBlob({ digest, size: found.size, createdAt: found.modified.getTime() });
    return { digest, size: found.size };
  }

  openBlob(digest: Digest, range?: ByteRange, signal?: AbortSignal): Promise<Readable | undefined> {
    return this.content.open(digest, range, signal);
  }

  openBlobReader(digest: Digest): Promise<BlobReader | undefined> {
    return this.content.openReader(digest);
  }

  async ingestBlob(source: Readable, expected: { digest: Digest; size?: number }, signal?: AbortSignal): Promise<BlobStat> {
    const stat = await this.content.ingest(source, expected, signal);
    await this.metadata.putBlob({ digest: stat.digest, size: stat.size, createdAt: this.now() });
    return stat;
  }

  async openBlobWriter(expected: { digest: Digest; size?: number }): Promise<BlobWriter> {
    const writer = await this.content.openWriter(expected);
    const record = async (stat: BlobStat) => this.metadata.putBlob({ digest: stat.digest, size: stat.size, createdAt: this.now() });
    return {
      get path() {
        return writer.path;
      },
      get written() {
        return writer.written;
      },
      write: (chunks) => writer.write(chunks),
      ...(writer.verify && { verify: () => (writer.verify as () => Promise<void>).call(writer) }),
      commit: async () => {
        const stat = await writer.commit();
        await record(stat);
        return stat;
      },
      abort: () => writer.abort(),
    };
  }

  async deleteBlob(digest: Digest): Promise<void> {
    await this.metadata.deleteBlob(digest, () => this.content.delete(digest));
  }

  async *listBlobs(): AsyncIterable<BlobStat & { modified: Date }> {
    for await (const b of this.metadata.scanBlobs()) yield { digest: b.digest, size: b.size, modified: new Date(b.createdAt) };
  }

  async *listUnrecordedBlobs(): AsyncIterable<BlobStat & { modified: Date }> {
    const recorded = new Set<string>();
    for await (const b of this.metadata.scanBlobs()) recorded.add(b.digest);
    for await (const digest of this.content.list()) {
      if (recorded.has(digest)) continue;
      const found = await this.content.stat(digest);
      if (found) yield found;
    }
  }

  async pingContent(signal: AbortSignal): Promise<void> {
    await this.content.ping?.(signal);
  }

  async blobUrl(digest: Digest): Promise<string | undefined> {
    return this.content.presignedUrl?.(digest);
  }

  freeBytes(): Promise<number | undefined> {
    return this.content.freeBytes();
  }

  async recordBlobSource(digest: Digest, source: string): Promise<void> {
    if (!isSourceId(source)) throw new Error('storage: refusing invalid source id');
    checkDigest(digest);
    await this.metadata.addBlobSource(digest, source);
  }

  async blobFromSource(digest: Digest, source: string): Promise<boolean> {
    if (!isSourceId(source)) throw new Error('storage: refusing invalid source id');
    await this.committed(digest);
    return this.metadata.hasBlobSource(digest, source);
  }

  // ---- repository links ----

  async linkBlob(repository: string, digest: Digest): Promise<void> {
    checkRepository(repository);
    checkDigest(digest);
    await this.guard.use(digest);
    await this.metadata.link(repository, digest, this.now());
  }

  async blobLinked(repository: string, digest: Digest): Promise<boolean> {
    checkRepository(repository);
    await this.committed(digest);
    await this.guard.use(digest);
    return this.metadata.linked(repository, digest);
  }

  async unlinkBlob(repository: string, digest: Digest): Promise<boolean> {
    checkRepository(repository);
    return this.metadata.unlink(repository, digest);
  }

  async listBlobLinks(repository: string): Promise<Digest[]> {
    checkRepository(repository);
    return this.metadata.listLinks(repository);
  }

  // ---- manifests ----

  async putManifest(repository: string, bytes: Buffer, meta: Omit<StoredManifest, 'size'>, referrer?: Descriptor, parsed?: Pick<ManifestInfo, 'blobs' | 'manifests'>): Promise<void> {
    checkRepository(repository);
    checkDigest(meta.digest);
    const refs = manifestRefs(meta.digest, bytes, meta.mediaType, parsed);
    if (!(await this.statBlob(meta.digest))) await this.ingestBlob(Readable.from([bytes]), { digest: meta.digest, size: bytes.length });
    const revision: RevisionRecord = {
      repository,
      digest: meta.digest,
      mediaType: meta.mediaType,
      size: bytes.length,
      createdAt: this.now(),
      ...(meta.subject ? { subject: meta.subject } : {}),
      ...(meta.artifactType ? { artifactType: meta.artifactType } : {}),
      ...(meta.annotations ? { annotations: meta.annotations } : {}),
    };
    await this.metadata.putManifest(revision, refs, meta.subject ? referrer : undefined);
  }

  async statManifest(repository: string, digest: Digest): Promise<StoredManifest | undefined> {
    checkRepository(repository);
    await this.guard.use(digest);
    const r = await this.metadata.getManifest(repository, digest);
    return r && toStored(r);
  }

  async getManifest(repository: string, digest: Digest): Promise<{ meta: StoredManifest; bytes: Buffer } | undefined> {
    const meta = await this.statManifest(repository, digest);
    if (!meta) return undefined;
    const stream = await this.content.open(digest);
    if (!stream) return undefined;
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return { meta, bytes: Buffer.concat(chunks) };
  }

  async deleteManifest(repository: string, digest: Digest): Promise<boolean> {
    checkRepository(repository);
    return this.metadata.deleteManifest(repository, digest);
  }

  async listManifests(repository: string): Promise<StoredManifest[]> {
    checkRepository(repository);
    return (await this.metadata.listManifests(repository)).map(toStored);
  }

  async recordPull(repository: string, digest: Digest, at = new Date()): Promise<void> {
    await this.metadata.recordPulls([{ repository, digest, at: at.getTime() }]);
  }

  async lastPulled(repository: string, digest: Digest): Promise<Date | undefined> {
    const at = (await this.metadata.getManifest(repository, digest))?.pulledAt;
    return at === undefined ? undefined : new Date(at);
  }

  async forgetPull(repository: string, digest: Digest): Promise<void> {
    return this.metadata.forgetPull(repository, digest);
  }

  // ---- tags ----

  async resolveTag(repository: string, tag: string): Promise<Digest | undefined> {
    checkRepository(repository);
    checkTag(tag);
    return this.metadata.resolveTag(repository, tag);
  }

  async setTag(repository: string, tag: string, digest: Digest): Promise<void> {
    checkRepository(repository);
    checkTag(tag);
    checkDigest(digest);
    await this.guard.use(digest);
    await this.metadata.setTag(repository, tag, digest, this.now());
  }

  async deleteTag(repository: string, tag: string): Promise<boolean> {
    checkRepository(repository);
    checkTag(tag);
    return this.metadata.deleteTag(repository, tag);
  }

  async listTags(repository: string, page?: Page): Promise<string[] | undefined> {
    checkRepository(repository);
    return (await this.metadata.listTags(repository, page))?.map((t) => t.tag);
  }

  async listTagDetails(repository: string, page?: Page): Promise<{ tag: string; digest: Digest; modified: Date }[] | undefined> {
    checkRepository(repository);
    return (await this.metadata.listTags(repository, page))?.map((t) => ({ tag: t.tag, digest: t.digest, modified: new Date(t.updatedAt) }));
  }

  async revisionModified(repository: string, digest: Digest): Promise<Date | undefined> {
    const r = await this.metadata.getManifest(repository, digest);
    return r && new Date(r.createdAt);
  }

  // ---- referrers ----

  async listReferrers(repository: string, subject: Digest): Promise<Descriptor[]> {
    checkRepository(repository);
    return this.metadata.listReferrers(repository, subject);
  }

  // ---- repositories ----

  async repositoryExists(repository: string): Promise<boolean> {
    checkRepository(repository);
    return this.metadata.repositoryExists(repository);
  }

  async repositoriesLinking(digest: Digest): Promise<string[]> {
    if (!parseDigest(digest)) return [];
    await this.committed(digest);
    return this.metadata.repositoriesLinking(digest);
  }

  async listRepositories(page?: Page & { namespace?: string }): Promise<string[]> {
    return this.metadata.listRepositories(page);
  }

  async deleteRepository(repository: string): Promise<boolean> {
    checkRepository(repository);
    return this.metadata.deleteRepository(repository);
  }

  async deleteNamespace(namespace: string): Promise<string[]> {
    if (!isRepositoryName(namespace) || namespace.includes('/')) throw new Error('storage: refusing invalid namespace');
    return this.metadata.deleteNamespace(namespace);
  }

  // ---- uploads ----

  /**
   * Serialises what changes one upload session on this replica: append, completion, cancel and
   * the sweep. Across replicas the metadata's compare-and-set on the size (updateUpload) decides.
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

  async createUpload(repository: string): Promise<UploadState> {
    checkRepository(repository);
    const id = randomUUID();
    const at = this.now();
    const driverState = await this.content.createUpload(id);
    await this.metadata.createUpload({ id, repository, size: 0, startedAt: at, updatedAt: at, ...(driverState ? { driverState } : {}) });
    return { id, repository, size: 0, startedAt: new Date(at) };
  }

  async getUpload(repository: string, id: string): Promise<UploadState | undefined> {
    if (!isUploadId(id)) return undefined;
    const record = await this.metadata.getUpload(id);
    // An upload belongs to the repository it was started in; another name cannot reach it.
    if (!record || record.repository !== repository) return undefined;
    return toUploadState(record);
  }

  async appendUpload(upload: UploadState, source: Readable, offset?: number, signal?: AbortSignal): Promise<UploadState> {
    return this.withUploadLock(upload.id, async () => {
      const record = await this.metadata.getUpload(upload.id);
      if (!record) {
        source.resume();
        throw new RegistryError('BLOB_UPLOAD_UNKNOWN');
      }
      if (offset !== undefined && offset !== record.size) {
        source.resume();
        throw new RegistryError('RANGE_INVALID', `chunk starts at ${offset}, upload has ${record.size} bytes`, undefined, {
          headers: { Range: `0-${Math.max(0, record.size - 1)}`, 'Docker-Upload-UUID': upload.id },
        });
      }
      const result = await this.content.appendUpload(toUploadData(record), source, signal);
      const driverState = result.driverState ?? record.driverState;
      if (!(await this.metadata.updateUpload(upload.id, record.size, result.size, driverState, this.now()))) {
        // Another replica appended or the session was cancelled meanwhile: this chunk does not count.
        throw new RegistryError('BLOB_UPLOAD_INVALID', 'the upload changed while this chunk was written; retry from its current offset');
      }
      return { ...upload, size: result.size };
    });
  }

  async completeUpload(upload: UploadState, digest: Digest): Promise<BlobStat> {
    return this.withUploadLock(upload.id, async () => {
      if (!parseDigest(digest)) throw new RegistryError('DIGEST_INVALID');
      const record = await this.metadata.getUpload(upload.id);
      if (!record) throw new RegistryError('BLOB_UPLOAD_UNKNOWN');
      let stat: BlobStat;
      try {
        stat = await this.content.finishUpload(toUploadData(record), digest);
      } catch (err) {
        if (err instanceof RegistryError && err.code === 'DIGEST_INVALID') await this.metadata.deleteUpload(upload.id);
        throw err;
      }
      await this.metadata.putBlob({ digest, size: stat.size, createdAt: this.now() });
      await this.metadata.deleteUpload(upload.id);
      return stat;
    });
  }

  async cancelUpload(repository: string, id: string): Promise<boolean> {
    if (!isUploadId(id)) return false;
    // Under the lock: a completion in flight either finishes first (and the session is gone) or
    // runs after the cancel and finds nothing; whichever loses answers BLOB_UPLOAD_UNKNOWN.
    return this.withUploadLock(id, async () => {
      const record = await this.metadata.getUpload(id);
      if (!record || record.repository !== repository) return false;
      await this.metadata.deleteUpload(id);
      await this.content.discardUpload(toUploadData(record));
      return true;
    });
  }

  async listUploads(): Promise<UploadState[]> {
    return (await this.metadata.listUploads()).map(toUploadState);
  }

  async purgeUploads(olderThan: Date): Promise<number> {
    const cutoff = olderThan.getTime();
    let removed = 0;
    const known = new Set<string>();
    for (const record of await this.metadata.listUploads()) {
      known.add(record.id);
      // A session with an append or completion under way is in use, whatever its timestamps say.
      if (this.uploadLocks.has(record.id) || record.updatedAt >= cutoff) continue;
      const swept = await this.withUploadLock(record.id, async () => {
        const current = await this.metadata.getUpload(record.id);
        if (!current || current.updatedAt >= cutoff) return false;
        await this.metadata.deleteUpload(record.id);
        await this.content.discardUpload(toUploadData(current));
        return true;
      });
      if (swept) removed += 1;
    }
    // Storage no record names (a crash between the two, or debris): idle long enough, it goes.
    for await (const stray of this.content.listUploads()) {
      if (known.has(stray.id) || this.uploadLocks.has(stray.id) || stray.modified.getTime() >= cutoff) continue;
      if (isUploadId(stray.id) && (await this.metadata.getUpload(stray.id))) continue;
      await this.content.discardUpload({ id: stray.id, size: 0 });
      removed += 1;
    }
    return removed;
  }
}

/** Builds a store from a content driver factory (given the guard's hook) and a metadata store. */
export async function composeStore(
  root: string,
  content: (options: ContentOptions) => Promise<BlobContent>,
  metadata: MetadataStore,
  now?: () => number,
): Promise<ComposedStore> {
  const guard = new ReferenceGuard();
  const driver = await content({ beforePublish: (digest) => guard.use(digest) });
  await metadata.open();
  return new ComposedStore(root, driver, metadata, guard, now);
}
