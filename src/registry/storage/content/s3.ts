// The s3 content driver: blob bytes in an S3-compatible bucket, for registry replicas that
// share one store. What it guarantees, whatever a crash does:
// - A blob key (`blobs/<alg>/<2 hex>/<hex>`) only ever receives verified bytes. Bytes are
//   streamed to a temporary object while hashed; only once the digest matches are they copied
//   server-side to the blob key (cheap: RGW and S3 copy without moving the bytes through us) and
//   the temporary object deleted. A crash leaves at most a temporary object or an unfinished
//   multipart upload, which listUploads() sweeps after a day; a writer with bad bytes never
//   touches the blob key. Small blobs (manifests, configs) are hashed in memory and written with
//   one PUT instead.
// - An upload session's chunks are objects of their own (`uploads/<id>/<offset>-<nonce>`), named
//   in the session record's driver state, so any replica can continue or finish the session; a
//   retried or racing chunk gets a new name and never overwrites one the record names. Finishing
//   hashes the chunks (from the running hash when this replica received them all, else by
//   reading them back) and then copies them into the blob key server-side.
import { randomUUID, type Hash } from 'node:crypto';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { GetObjectCommand, HeadBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { digestOf, hashOf, parseDigest, type Algorithm, type Digest } from '../../digest.js';
import { RegistryError } from '../../errors.js';
import type { BlobReader, BlobStat, BlobWriter, ByteRange } from '../store.js';
import { isUploadId } from '../layout.js';
import { S3Keys, isChunkName } from './s3-keys.js';
import { checkContent, Hashed, SpoolWriter, StreamingReader } from './s3-io.js';
import { MIN_PART, S3Objects } from './s3-objects.js';
import { SocketObjectReader } from './s3-socket-reader.js';
import type { AppendResult, BeforePublish, BlobContent, ContentOptions, UploadData, UploadDriverState } from './types.js';

/** Objects from this size on are read with SocketObjectReader (plain-http endpoints). */
const SOCKET_READ_MIN = 1024 * 1024;

/** Content up to this size is hashed in memory and written with one PUT (no temporary object). */
const SMALL = 1024 * 1024;
/** Temporary objects and multipart uploads older than this are a crashed writer's: swept. */
const STALE_MS = 24 * 3_600_000;

interface Chunk { name: string; size: number }

/** The driver state of an upload session: its chunks, in order. */
interface SessionState { chunks: Chunk[] }

/** A running hash of a session's chunks, valid only for exactly those chunks. */
interface LocalHash { hash: Hash; names: string }

export interface S3ContentOptions extends ContentOptions {
  bucket: string;
  prefix: string;
  /** A local directory for the pull-through cache's spool files (emptied at start-up). */
  spoolDir: string;
  /** Lifetime of presigned blob URLs (redirect mode). */
  redirectTTLMs?: number;
}

export class S3Content implements BlobContent {
  private readonly keys: S3Keys;
  private readonly objects: S3Objects;
  private readonly beforePublish: BeforePublish;
  private readonly uploadHashes = new Map<string, LocalHash>();
  private plainHttp: boolean | undefined;

  constructor(private readonly client: S3Client, private readonly options: S3ContentOptions) {
    this.keys = new S3Keys(options.prefix);
    this.objects = new S3Objects(client, options.bucket);
    this.beforePublish = options.beforePublish ?? (async () => undefined);
  }

  get location(): string {
    return `s3://${this.options.bucket}/${this.options.prefix}`;
  }

  async init(): Promise<this> {
    await mkdir(this.options.spoolDir, { recursive: true });
    // Spool files are this process's alone and never referenced after a restart.
    for (const name of await readdir(this.options.spoolDir)) await rm(path.join(this.options.spoolDir, name), { force: true, recursive: true });
    return this;
  }

  /** The bucket answers (HeadBucket): what a replica needs to serve any blob. */
  async ping(signal: AbortSignal): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.options.bucket }), { abortSignal: signal });
  }

  async close(): Promise<void> {
    this.uploadHashes.clear();
    await this.objects.close();
    this.client.destroy();
  }

  // ---- blobs ----

  async stat(digest: Digest): Promise<(BlobStat & { modified: Date }) | undefined> {
    const info = await this.objects.head(this.keys.blob(digest));
    return info && { digest, size: info.size, modified: info.modified };
  }

  async open(digest: Digest, range?: ByteRange, signal?: AbortSignal): Promise<Readable | undefined> {
    return this.objects.get(this.keys.blob(digest), range, signal);
  }

  async openReader(digest: Digest): Promise<BlobReader | undefined> {
    const key = this.keys.blob(digest);
    const info = await this.objects.head(key);
    if (!info) return undefined;
    // The endpoint's scheme, as the SDK resolves it, from one presigned URL.
    this.plainHttp ??= (await this.objects.presign(key)).startsWith('http:');
    // Small objects keep undici's pooled keep-alive connections: the socket reader opens one
    // connection per GET, and at thousands of small GETs a second their closed ends would pile up
    // in TIME_WAIT, where the garbage it saves is only worth it for large bodies.
    if (this.plainHttp && info.size >= SOCKET_READ_MIN) {
      return new SocketObjectReader(info.size, () => this.objects.presign(key));
    }
    return new StreamingReader(info.size, (start) => this.objects.get(key, { start }));
  }

  /** A presigned GET of the blob for a client to fetch from the object store directly (redirect mode). */
  async presignedUrl(digest: Digest): Promise<string> {
    const expiresIn = Math.round((this.options.redirectTTLMs ?? 300_000) / 1000);
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.options.bucket, Key: this.keys.blob(digest) }), { expiresIn });
  }

  async ingest(source: Readable, expected: { digest: Digest; size?: number }, signal?: AbortSignal): Promise<BlobStat> {
    const parsed = parseDigest(expected.digest);
    if (!parsed) throw new RegistryError('DIGEST_INVALID');
    const stop = () => source.destroy(new Error('ingest aborted'));
    signal?.addEventListener('abort', stop, { once: true });
    try {
      return await this.ingestFrom(source, expected, parsed.algorithm, signal);
    } finally {
      signal?.removeEventListener('abort', stop);
    }
  }

  private async ingestFrom(source: Readable, expected: { digest: Digest; size?: number }, algorithm: Algorithm, signal?: AbortSignal): Promise<BlobStat> {
    const parsed = { algorithm };
    signal?.throwIfAborted();
    const hashed = new Hashed(hashOf(parsed.algorithm));
    const chunks = hashed.over(source);
    // Small content: hashed in memory, then one PUT straight to the blob key.
    const head: Buffer[] = [];
    let headSize = 0;
    let next = await chunks.next();
    while (!next.done && headSize <= SMALL) {
      head.push(next.value);
      headSize += next.value.length;
      next = await chunks.next();
    }
    if (next.done) {
      signal?.throwIfAborted();
      const digest = `${parsed.algorithm}:${hashed.hash.digest('hex')}`;
      checkContent(expected, { digest, size: hashed.size });
      await this.beforePublish(expected.digest);
      await this.objects.put(this.keys.blob(expected.digest), Buffer.concat(head, headSize));
      return { digest: expected.digest, size: hashed.size };
    }
    const first = next.value;
    async function* all(): AsyncGenerator<Buffer> {
      yield* head;
      yield first;
      yield* chunks;
    }
    const tmp = this.keys.newTmp();
    try {
      await this.objects.upload(tmp, Readable.from(all(), { objectMode: false }), signal);
      const digest = `${parsed.algorithm}:${hashed.hash.digest('hex')}`;
      checkContent(expected, { digest, size: hashed.size });
      await this.publish(tmp, expected.digest, hashed.size);
      return { digest: expected.digest, size: hashed.size };
    } finally {
      await this.objects.delete(tmp).catch(() => undefined);
    }
  }

  async openWriter(expected: { digest: Digest; size?: number }): Promise<BlobWriter> {
    const parsed = parseDigest(expected.digest);
    if (!parsed) throw new RegistryError('DIGEST_INVALID');
    return SpoolWriter.open(path.join(this.options.spoolDir, randomUUID()), parsed.algorithm, expected, this.keys.newTmp(), {
      upload: (key, body, signal) => this.objects.upload(key, Readable.from(body, { objectMode: false }), signal),
      publish: (key, digest, size) => this.publish(key, digest, size),
      discard: (key) => this.objects.delete(key),
    });
  }

  /** Makes verified bytes at `key` visible as the blob `digest` (a server-side copy). */
  private async publish(key: string, digest: Digest, size: number): Promise<void> {
    await this.beforePublish(digest);
    await this.objects.copy(key, this.keys.blob(digest), size);
  }

  async delete(digest: Digest): Promise<void> {
    await this.objects.delete(this.keys.blob(digest));
  }

  async *list(): AsyncIterable<Digest> {
    for await (const o of this.objects.list(this.keys.blobs)) {
      const digest = this.keys.digestOf(o.key);
      if (digest) yield digest;
    }
  }

  async freeBytes(): Promise<number | undefined> {
    return undefined; // an object store has no free space to ask for
  }

  // ---- upload sessions ----

  /** The session's chunks from its record, checked: names are ours and offsets follow on. */
  private chunksOf(upload: UploadData): Chunk[] {
    const raw = (upload.driverState as Partial<SessionState> | undefined)?.chunks ?? [];
    if (!Array.isArray(raw)) throw new Error('storage: upload session state is corrupt');
    let offset = 0;
    const chunks: Chunk[] = [];
    for (const c of raw as unknown[]) {
      const chunk = c as Partial<Chunk>;
      if (typeof chunk.name !== 'string' || !isChunkName(chunk.name) || !Number.isSafeInteger(chunk.size) || (chunk.size as number) <= 0 || Number(chunk.name.slice(0, 16)) !== offset) {
        throw new Error('storage: upload session state is corrupt');
      }
      chunks.push({ name: chunk.name, size: chunk.size as number });
      offset += chunk.size as number;
    }
    if (offset !== upload.size) throw new Error(`storage: upload session state holds ${offset} bytes, its record ${upload.size}`);
    return chunks;
  }

  private localHash(upload: UploadData, chunks: Chunk[]): LocalHash | undefined {
    const local = this.uploadHashes.get(upload.id);
    return local && local.names === chunks.map((c) => c.name).join(',') ? local : undefined;
  }

  async createUpload(id: string): Promise<UploadDriverState | undefined> {
    this.keys.upload(id); // validates the id
    this.uploadHashes.set(id, { hash: hashOf('sha256'), names: '' });
    const state: SessionState = { chunks: [] };
    return { ...state };
  }

  async appendUpload(upload: UploadData, source: Readable, signal?: AbortSignal): Promise<AppendResult> {
    let chunks: Chunk[];
    try {
      chunks = this.chunksOf(upload);
    } catch (err) {
      source.resume();
      throw err;
    }
    const local = this.localHash(upload, chunks);
    // Only a hash that covers exactly the recorded chunks continues; a copy, so a failed chunk leaves it as it was.
    const hashed = new Hashed(local ? local.hash.copy() : hashOf('sha256'));
    const name = this.keys.newChunkName(upload.size);
    const key = this.keys.chunk(upload.id, name);
    try {
      await this.objects.upload(key, Readable.from(hashed.over(source), { objectMode: false }), signal);
    } catch (err) {
      await this.objects.delete(key).catch(() => undefined);
      throw err;
    }
    if (hashed.size === 0) {
      await this.objects.delete(key).catch(() => undefined);
      return { size: upload.size, driverState: upload.driverState };
    }
    const next = [...chunks, { name, size: hashed.size }];
    if (local) this.uploadHashes.set(upload.id, { hash: hashed.hash, names: next.map((c) => c.name).join(',') });
    else this.uploadHashes.delete(upload.id);
    const state: SessionState = { chunks: next };
    return { size: upload.size + hashed.size, driverState: { ...state } };
  }

  async finishUpload(upload: UploadData, digest: Digest): Promise<BlobStat> {
    const parsed = parseDigest(digest);
    if (!parsed) throw new RegistryError('DIGEST_INVALID');
    const chunks = this.chunksOf(upload);
    const local = parsed.algorithm === 'sha256' ? this.localHash(upload, chunks) : undefined;
    this.uploadHashes.delete(upload.id);
    const keys = chunks.map((c) => ({ key: this.keys.chunk(upload.id, c.name), size: c.size }));
    const fail = async (actual: string): Promise<never> => {
      await this.discardUpload(upload);
      throw new RegistryError('DIGEST_INVALID', 'provided digest did not match uploaded content', { expected: digest, actual });
    };
    const blobKey = this.keys.blob(digest);

    if (keys.length === 0) {
      const actual = digestOf(Buffer.alloc(0), parsed.algorithm);
      if (actual !== digest) await fail(actual);
      await this.beforePublish(digest);
      await this.objects.put(blobKey, Buffer.alloc(0));
    } else if (local && keys.slice(0, -1).every((k) => k.size >= MIN_PART)) {
      // Every byte was hashed on its way in here: no read back, only server-side copies.
      const actual = `sha256:${local.hash.digest('hex')}`;
      if (actual !== digest) await fail(actual);
      await this.beforePublish(digest);
      if (keys.length === 1) await this.objects.copy(keys[0]!.key, blobKey, keys[0]!.size);
      else await this.objects.join(keys, blobKey);
    } else if (keys.length === 1) {
      const actual = await this.hashObject(keys[0]!.key, parsed.algorithm);
      if (actual !== digest) await fail(actual);
      await this.publish(keys[0]!.key, digest, keys[0]!.size);
    } else {
      // Chunks from several replicas, or too small to be parts: one pass reads them back,
      // hashing, into a temporary object that is copied into place once verified.
      const tmp = this.keys.newTmp();
      try {
        const hashed = new Hashed(hashOf(parsed.algorithm));
        await this.objects.upload(tmp, Readable.from(hashed.over(this.concat(keys.map((k) => k.key))), { objectMode: false }));
        const actual = `${parsed.algorithm}:${hashed.hash.digest('hex')}`;
        if (actual !== digest) await fail(actual);
        await this.publish(tmp, digest, hashed.size);
      } finally {
        await this.objects.delete(tmp).catch(() => undefined);
      }
    }
    await this.discardUpload(upload).catch(() => undefined);
    return { digest, size: upload.size };
  }

  private async *concat(keys: string[]): AsyncGenerator<Buffer> {
    for (const key of keys) {
      const body = await this.objects.get(key);
      if (!body) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'an upload chunk is gone');
      for await (const chunk of body) yield chunk as Buffer;
    }
  }

  private async hashObject(key: string, algorithm: Algorithm): Promise<string> {
    const hash = hashOf(algorithm);
    for await (const chunk of this.concat([key])) hash.update(chunk);
    return `${algorithm}:${hash.digest('hex')}`;
  }

  async discardUpload(upload: Pick<UploadData, 'id'>): Promise<void> {
    this.uploadHashes.delete(upload.id);
    await this.objects.deletePrefix(this.keys.upload(upload.id));
  }

  async *listUploads(): AsyncIterable<{ id: string; modified: Date }> {
    await this.sweepStale().catch(() => undefined);
    const sessions = new Map<string, Date>();
    for await (const o of this.objects.list(this.keys.uploads)) {
      const id = o.key.slice(this.keys.uploads.length).split('/')[0] ?? '';
      if (!isUploadId(id)) continue; // not ours to remove
      const seen = sessions.get(id);
      if (!seen || o.modified > seen) sessions.set(id, o.modified);
    }
    for (const [id, modified] of sessions) yield { id, modified };
  }

  /** Removes what crashed writers left: temporary objects and unfinished multipart uploads over a day old. */
  private async sweepStale(): Promise<void> {
    const before = new Date(Date.now() - STALE_MS);
    for await (const o of this.objects.list(this.keys.tmp)) if (o.modified < before) await this.objects.delete(o.key);
    await this.objects.abortStaleMultipart(this.options.prefix, before);
  }
}
