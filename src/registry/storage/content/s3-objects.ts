// The S3 operations the s3 content driver is built from: streaming uploads, ranged reads,
// server-side copies (one CopyObject up to 5 GiB, UploadPartCopy beyond or to join objects),
// listings and prefix deletion. Nothing here knows about digests or sessions.
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3ServiceException,
  UploadPartCopyCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Agent, request } from 'undici';
import { ObjectStoreUnavailableError } from '../errors.js';
import { asObjectStoreOutage } from './s3-client.js';

/** Part size of streamed uploads: memory per upload is about partSize × (queueSize + 1). */
export const PART_SIZE = 8 * 2 ** 20;
const QUEUE_SIZE = 2;
/** S3's smallest part (all but the last) and largest single copy. */
export const MIN_PART = 5 * 2 ** 20;
export const MAX_COPY = 5 * 2 ** 30;
/** Pieces of a server-side multipart copy of one large object. */
const COPY_PART = 2 * 2 ** 30;

export function isNotFound(err: unknown): boolean {
  if (!(err instanceof S3ServiceException)) return false;
  return err.$metadata.httpStatusCode === 404 || err.name === 'NoSuchKey' || err.name === 'NotFound';
}

export interface ObjectInfo { key: string; size: number; modified: Date }

export class S3Objects {
  /**
   * Object bodies are read with undici from a locally presigned URL rather than through the
   * SDK's node:http handler: measured on a 256 MiB GET from RGW, the SDK path added ~50% to the
   * object store's own time, undici ~10%.
   */
  private readonly reads = new Agent({ connections: 64, keepAliveTimeout: 30_000, bodyTimeout: 120_000, headersTimeout: 60_000 });

  constructor(readonly client: S3Client, readonly bucket: string) {}

  async close(): Promise<void> {
    await this.reads.close();
  }

  async head(key: string): Promise<{ size: number; modified: Date } | undefined> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: res.ContentLength ?? 0, modified: res.LastModified ?? new Date(0) };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** A short-lived presigned GET of `key`. */
  presign(key: string): Promise<string> {
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn: 300 });
  }

  /** The object's bytes (an inclusive range of them); undefined when absent. */
  async get(key: string, range?: { start: number; end?: number }, signal?: AbortSignal): Promise<Readable | undefined> {
    const url = await this.presign(key);
    signal?.throwIfAborted();
    const res = await request(url, {
      dispatcher: this.reads,
      headers: range ? { range: `bytes=${range.start}-${range.end ?? ''}` } : {},
      highWaterMark: 512 * 1024,
    }).catch((err: unknown) => Promise.reject(asObjectStoreOutage(err, 'GetObject') ?? err));
    // A body destroyed before its end (a reader that stops early) emits undici's AbortError;
    // consumers attach their own listeners, this one only keeps the error from being unhandled.
    res.body.on('error', () => undefined);
    // Not undici's own signal option: it fails the body with an AbortError that nobody may be
    // listening for once the response is done. A client gone just ends the read quietly.
    if (signal) {
      if (signal.aborted) res.body.destroy();
      else signal.addEventListener('abort', () => res.body.destroy(), { once: true });
    }
    if (res.statusCode === 404) {
      await res.body.dump();
      return undefined;
    }
    if (res.statusCode !== 200 && res.statusCode !== 206) {
      const text = (await res.body.text().catch(() => '')).slice(0, 300);
      const err = new Error(`S3 GET ${key}: HTTP ${res.statusCode} ${text}`);
      throw res.statusCode >= 500 ? new ObjectStoreUnavailableError(`GetObject: HTTP ${res.statusCode}`, err) : err;
    }
    return res.body;
  }

  /** Streams `body` to `key` (multipart when larger than one part); the object exists only once it resolves. */
  async upload(key: string, body: Readable, signal?: AbortSignal): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: body },
      partSize: PART_SIZE,
      queueSize: QUEUE_SIZE,
      leavePartsOnError: false,
    });
    // Upload.abort() alone leaves done() waiting for a body that may never end: end it too.
    const stop = () => {
      body.destroy(new Error('upload aborted'));
      void upload.abort().catch(() => undefined);
    };
    if (signal?.aborted) stop();
    signal?.addEventListener('abort', stop, { once: true });
    try {
      await upload.done();
    } finally {
      signal?.removeEventListener('abort', stop);
    }
  }

  async put(key: string, bytes: Buffer): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: bytes, ContentLength: bytes.length }));
  }

  /** Server-side copy of `from` (of `size` bytes) to `to`. */
  async copy(from: string, to: string, size: number): Promise<void> {
    if (size <= MAX_COPY) {
      await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: to, CopySource: this.source(from) }));
      return;
    }
    await this.join([{ key: from, size }], to);
  }

  /**
   * Joins objects into `to` server-side, in order, as one multipart upload of UploadPartCopy
   * parts. Every source but the last must hold at least MIN_PART bytes (an S3 rule for parts).
   */
  async join(sources: { key: string; size: number }[], to: string): Promise<void> {
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: to }));
    try {
      const parts: { ETag: string; PartNumber: number }[] = [];
      for (const source of sources) {
        for (let start = 0; start < source.size; start += COPY_PART) {
          const end = Math.min(source.size, start + COPY_PART) - 1;
          const PartNumber = parts.length + 1;
          const res = await this.client.send(new UploadPartCopyCommand({
            Bucket: this.bucket,
            Key: to,
            UploadId,
            PartNumber,
            CopySource: this.source(source.key),
            CopySourceRange: `bytes=${start}-${end}`,
          }));
          const ETag = res.CopyPartResult?.ETag;
          if (!ETag) throw new Error(`S3 UploadPartCopy of ${source.key}: no ETag`);
          parts.push({ ETag, PartNumber });
        }
      }
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: to, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: to, UploadId })).catch(() => undefined);
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let ContinuationToken: string | undefined;
    do {
      const res = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken }));
      for (const o of res.Contents ?? []) if (o.Key) yield { key: o.Key, size: o.Size ?? 0, modified: o.LastModified ?? new Date(0) };
      ContinuationToken = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  /** Deletes every object under `prefix` (1000 per request). */
  async deletePrefix(prefix: string): Promise<void> {
    let batch: { Key: string }[] = [];
    const flush = async () => {
      if (!batch.length) return;
      await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch, Quiet: true } }));
      batch = [];
    };
    for await (const o of this.list(prefix)) {
      batch.push({ Key: o.key });
      if (batch.length === 1000) await flush();
    }
    await flush();
  }

  /** Aborts multipart uploads under `prefix` started before `olderThan` (what a crashed writer left). */
  async abortStaleMultipart(prefix: string, olderThan: Date): Promise<number> {
    let aborted = 0;
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    do {
      const res = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker, UploadIdMarker }));
      for (const u of res.Uploads ?? []) {
        if (!u.Key || !u.UploadId || !u.Initiated || u.Initiated >= olderThan) continue;
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId })).catch(() => undefined);
        aborted += 1;
      }
      KeyMarker = res.IsTruncated ? res.NextKeyMarker : undefined;
      UploadIdMarker = res.IsTruncated ? res.NextUploadIdMarker : undefined;
    } while (KeyMarker);
    return aborted;
  }

  private source(key: string): string {
    // Keys are made of [A-Za-z0-9._-/] only (s3-keys.ts): nothing to escape.
    return `${this.bucket}/${key}`;
  }
}
