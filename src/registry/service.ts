// What the Distribution routes ask of the registry, in its own terms: manifests, blobs, tags,
// uploads. Routes parse HTTP; this decides; the store persists. Reads go through a
// ContentSource so that a mirror namespace can serve from an upstream instead (proxy/).
import type { Readable } from 'node:stream';
import type { Config } from '../config/config.js';
import { sendStoredBlob, type BlobResponse } from './blob-response.js';
import { parseDigest, digestOf, type Digest } from './digest.js';
import { RegistryError } from './errors.js';
import { MediaType, parseManifestYielding, type Descriptor, type ManifestInfo } from './manifest.js';
import { isTag } from './names.js';
import { missingReferences } from './references.js';
import type { BlobStat, ByteRange, Store, StoredManifest, UploadState } from './storage/store.js';

export interface ManifestHit {
  meta: StoredManifest;
  /** Present when the caller asked for the body. */
  bytes?: Buffer;
  /** An HTTP Warning value, e.g. when a mirror served a stale tag because upstream was down. */
  warning?: string;
}

export interface BlobHit {
  stat: BlobStat;
  open(range?: ByteRange, signal?: AbortSignal): Promise<Readable>;
  /**
   * Sends bytes start..end to the response itself, faster than a stream (blob-response.ts). It
   * calls response.begin() once the bytes are sure to be there; an error before that is the
   * route's to answer.
   */
  send?(response: BlobResponse, start: number, end: number): Promise<void>;
  /** Where the client may fetch the bytes itself instead (storage.s3.redirect): a 307 to it. */
  redirect?(): Promise<string | undefined>;
}

/** Where reads of one repository are served from: local storage, or a mirrored upstream. */
export interface ContentSource {
  getManifest(repository: string, reference: string, withBody: boolean, signal?: AbortSignal): Promise<ManifestHit | undefined>;
  /** `withBody` false (HEAD): only `stat` is wanted, so a mirror need not fetch the bytes. */
  getBlob(repository: string, digest: Digest, withBody: boolean, signal?: AbortSignal): Promise<BlobHit | undefined>;
}

export type Reference = { tag: string; digest?: undefined } | { digest: Digest; tag?: undefined };

export function parseReference(reference: string): Reference {
  if (reference.includes(':')) {
    const parsed = parseDigest(reference);
    if (!parsed) throw new RegistryError('DIGEST_INVALID', 'invalid or unsupported digest', { digest: reference.slice(0, 200) });
    return { digest: parsed.digest };
  }
  // TAG_INVALID, as for ?tag=: the same mistake gets the same code wherever the tag is written.
  if (!isTag(reference)) throw new RegistryError('TAG_INVALID', 'invalid tag', { tag: reference.slice(0, 200) });
  return { tag: reference };
}

export class LocalContent implements ContentSource {
  /** `redirect`: answer blob GETs with the content store's own URL when it has one. */
  constructor(private readonly store: Store, private readonly redirect = false) {}

  async getManifest(repository: string, reference: string, withBody: boolean): Promise<ManifestHit | undefined> {
    const ref = parseReference(reference);
    const digest = ref.digest ?? (await this.store.resolveTag(repository, ref.tag));
    if (!digest) return undefined;
    if (!withBody) {
      const meta = await this.store.statManifest(repository, digest);
      return meta && { meta };
    }
    const found = await this.store.getManifest(repository, digest);
    return found && { meta: found.meta, bytes: found.bytes };
  }

  async getBlob(repository: string, digest: Digest): Promise<BlobHit | undefined> {
    if (!(await this.store.blobLinked(repository, digest))) return undefined;
    const stat = await this.store.statBlob(digest);
    if (!stat) return undefined;
    return {
      stat,
      open: async (range, signal) => {
        const stream = await this.store.openBlob(digest, range, signal);
        if (!stream) throw new RegistryError('BLOB_UNKNOWN');
        return stream;
      },
      send: async (response, start, end) => {
        const reader = await this.store.openBlobReader(digest);
        if (!reader) throw new RegistryError('BLOB_UNKNOWN');
        await sendStoredBlob(response, reader, start, end);
      },
      redirect: this.redirect && this.store.blobUrl ? async () => this.store.blobUrl?.(digest) : undefined,
    };
  }
}

export interface PutManifestResult {
  digest: Digest;
  subject?: Digest;
}

export class RegistryService {
  readonly local: LocalContent;

  constructor(
    readonly store: Store,
    private readonly config: Config,
  ) {
    this.local = new LocalContent(store, config.storage.s3?.redirect ?? false);
  }

  /** Validates a manifest and everything it references, then stores it byte for byte. */
  async putManifest(repository: string, reference: string, bytes: Buffer, contentType: string | undefined, extraTags: string[] = []): Promise<PutManifestResult> {
    const ref = parseReference(reference);
    for (const tag of extraTags) if (!isTag(tag)) throw new RegistryError('TAG_INVALID', 'invalid tag', { tag: tag.slice(0, 200) });
    const info = await parseManifestYielding(bytes, contentType);
    const digest = digestOf(bytes, ref.digest ? (parseDigest(ref.digest)?.algorithm ?? 'sha256') : 'sha256');
    if (ref.digest && ref.digest !== digest) {
      throw new RegistryError('DIGEST_INVALID', 'manifest digest does not match the reference', { expected: ref.digest, actual: digest });
    }
    // Sparse manifests (an opt-in): a client may push an index without all its platforms, or an
    // image whose layers live elsewhere; reads of what is absent answer 404 as usual.
    if (!this.config.registry.sparseManifests) {
      const missing = await missingReferences(this.store, repository, info);
      if (missing.length) throw new RegistryError('MANIFEST_BLOB_UNKNOWN', undefined, { missing });
    }
    // A subject that is not here (yet) is accepted, as the spec asks: referrers may arrive first.
    await storeManifest(this.store, repository, bytes, digest, info);
    for (const tag of [...(ref.tag ? [ref.tag] : []), ...extraTags]) await this.store.setTag(repository, tag, digest);
    return { digest, subject: info.subject?.digest };
  }

  async deleteManifest(repository: string, reference: string): Promise<void> {
    const ref = parseReference(reference);
    const deleted = ref.digest ? await this.store.deleteManifest(repository, ref.digest) : await this.store.deleteTag(repository, ref.tag);
    if (!deleted) throw new RegistryError('MANIFEST_UNKNOWN', undefined, { reference });
  }

  async deleteBlob(repository: string, digest: Digest): Promise<void> {
    if (!(await this.store.unlinkBlob(repository, digest))) throw new RegistryError('BLOB_UNKNOWN', undefined, { digest });
  }

  async listTags(repository: string, n: number | undefined, last: string | undefined): Promise<{ tags: string[]; more: boolean }> {
    // One more than asked says whether there is a next page; the store reads O(page) by index.
    const tags = await this.store.listTags(repository, { after: last, limit: n === undefined ? undefined : n + 1 });
    if (!tags) throw new RegistryError('NAME_UNKNOWN', undefined, { name: repository });
    if (n === undefined) return { tags, more: false };
    return { tags: tags.slice(0, n), more: n > 0 && tags.length > n };
  }

  async referrers(repository: string, subject: Digest, artifactType: string | undefined): Promise<Descriptor[]> {
    const all = await this.store.listReferrers(repository, subject);
    return artifactType === undefined ? all : all.filter((d) => d.artifactType === artifactType);
  }

  /** Cross-repository mount: links a blob the caller may read elsewhere; false if it is not there. */
  async mount(repository: string, digest: Digest, from: string): Promise<BlobStat | undefined> {
    if (!(await this.store.blobLinked(from, digest))) return undefined;
    const stat = await this.store.statBlob(digest);
    if (!stat) return undefined;
    await this.store.linkBlob(repository, digest);
    return stat;
  }

  /**
   * Automatic content discovery (a mount without `from`): links the blob from the first
   * repository holding it that `readable` allows, in lexical order: one indexed lookup of the
   * repositories that link it, then the mount checks on the readable ones only, so the answer
   * says nothing about the others (their count costs microseconds of one query). A mirror repository
   * links a blob only once its upstream delivered or confirmed it there, so it mounts only what
   * pulling it would have given.
   */
  async mountFromReadable(repository: string, digest: Digest, readable: (repository: string) => boolean): Promise<BlobStat | undefined> {
    for (const candidate of await this.store.repositoriesLinking(digest)) {
      if (!readable(candidate)) continue;
      const stat = await this.mount(repository, digest, candidate);
      if (stat) return stat;
    }
    return undefined;
  }

  /** Monolithic upload in one request (POST ?digest= with a body). */
  async ingest(repository: string, body: Readable, digest: Digest, size?: number, signal?: AbortSignal): Promise<BlobStat> {
    const stat = await this.store.ingestBlob(body, { digest, size }, signal);
    await this.store.linkBlob(repository, digest);
    return stat;
  }

  async startUpload(repository: string): Promise<UploadState> {
    return this.store.createUpload(repository);
  }

  async upload(repository: string, id: string): Promise<UploadState> {
    const upload = await this.store.getUpload(repository, id);
    if (!upload) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', undefined, { id: id.slice(0, 64) });
    return upload;
  }

  async finishUpload(upload: UploadState, digest: Digest): Promise<BlobStat> {
    const stat = await this.store.completeUpload(upload, digest);
    await this.store.linkBlob(upload.repository, digest);
    return stat;
  }

  /** Removes upload sessions idle for longer than uploadIdleTimeout (or uploadMaxAge, if someone set it shorter). */
  async purgeAbandonedUploads(now = Date.now()): Promise<number> {
    const { uploadIdleTimeoutMs, uploadMaxAgeMs } = this.config.registry;
    return this.store.purgeUploads(new Date(now - Math.min(uploadIdleTimeoutMs, uploadMaxAgeMs)));
  }
}

/**
 * Stores a parsed, verified manifest byte for byte with its metadata and, when it has a subject,
 * its entry in the subject's referrers. Pushes and the mirror's cache fill both come here.
 */
export async function storeManifest(store: Store, repository: string, bytes: Buffer, digest: Digest, info: ManifestInfo): Promise<StoredManifest> {
  const optional = {
    ...(info.artifactType ? { artifactType: info.artifactType } : {}),
    ...(info.annotations ? { annotations: info.annotations } : {}),
  };
  const meta: StoredManifest = { digest, mediaType: info.mediaType, size: bytes.length, ...(info.subject ? { subject: info.subject.digest } : {}), ...optional };
  const referrer: Descriptor | undefined = info.subject && { mediaType: info.mediaType, digest, size: bytes.length, ...optional };
  await store.putManifest(repository, bytes, { digest, mediaType: meta.mediaType, subject: meta.subject, ...optional }, referrer, info);
  return meta;
}

export const REFERRERS_INDEX_TYPE = MediaType.ociIndex;
