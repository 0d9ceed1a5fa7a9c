// Byte plumbing of the s3 content driver: hashing while streaming, positional reads over one
// ranged GET, and the pull-through cache's writer (a local spool file that clients on this
// replica follow while it is uploaded to S3 behind the writer).
import type { Hash } from 'node:crypto';
import { open, rm, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Digest } from '../../digest.js';
import { RegistryError } from '../../errors.js';
import { FileHasher } from '../file-hasher.js';
import type { BlobReader, BlobStat, BlobWriter } from '../store.js';
import { writeChunksAt } from './write-chunks.js';

/** Yields `source`'s chunks while hashing and counting them. */
export class Hashed {
  size = 0;
  constructor(readonly hash: Hash) {}

  async *over(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      this.hash.update(chunk);
      this.size += chunk.length;
      yield chunk;
    }
  }
}

/** Verdicts on received bytes, as the filesystem driver gives them. */
export function checkContent(expected: { digest: Digest; size?: number }, actual: { digest: string; size: number }): void {
  if (expected.size !== undefined && actual.size !== expected.size) {
    throw new RegistryError('SIZE_INVALID', `expected ${expected.size} bytes, received ${actual.size}`);
  }
  if (actual.digest !== expected.digest) {
    throw new RegistryError('DIGEST_INVALID', 'provided digest did not match uploaded content', { expected: expected.digest, actual: actual.digest });
  }
}

/**
 * Positional reads of an object through one ranged GET: sequential reads (a response copying
 * the blob out) continue the same stream; a read elsewhere opens a new one there.
 */
export class StreamingReader implements BlobReader {
  private iterator: AsyncIterator<Buffer> | undefined;
  private stream: Readable | undefined;
  private position = -1;
  private leftover: Buffer | undefined;

  constructor(private readonly size: number, private readonly openAt: (start: number) => Promise<Readable | undefined>) {}

  async read(target: Buffer, length: number, position: number): Promise<number> {
    if (position >= this.size || length <= 0) return 0;
    if (!this.iterator || position !== this.position) await this.reopen(position);
    let filled = 0;
    while (filled < length) {
      let chunk = this.leftover;
      this.leftover = undefined;
      if (!chunk) {
        const next = await (this.iterator as AsyncIterator<Buffer>).next();
        if (next.done) break;
        chunk = next.value;
      }
      const n = Math.min(chunk.length, length - filled);
      chunk.copy(target, filled, 0, n);
      filled += n;
      if (n < chunk.length) this.leftover = chunk.subarray(n);
    }
    this.position += filled;
    return filled;
  }

  private async reopen(position: number): Promise<void> {
    this.stream?.destroy();
    this.leftover = undefined;
    const stream = await this.openAt(position);
    if (!stream) throw new Error('blob is gone');
    this.stream = stream;
    this.iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    this.position = position;
  }

  async close(): Promise<void> {
    this.stream?.destroy();
    this.stream = undefined;
    this.iterator = undefined;
  }
}

/** Spool bytes the S3 upload reads at once. */
const FOLLOW_CHUNK = 1024 * 1024;

/**
 * The pull-through cache's writer on S3. Bytes land in a local spool file (`path`), which the
 * download's clients on this replica read as it grows, exactly as with the filesystem driver; an
 * upload to a temporary object follows the file; verify() checks the digest (hashed from the
 * file on the hash worker), and commit() (after verify(), or doing it) finishes the upload and
 * publishes it under the blob's key. Clients on other replicas see the blob only once it is
 * published: the verdict alone releases nothing beyond this replica's spool file, whose
 * readers are the ones the verdict is for (a cache miss's client gets its last byte on it
 * while the upload finishes behind it).
 */
export class SpoolWriter implements BlobWriter {
  written = 0;
  private closed = false;
  private sealed = false;
  private aborted = false;
  private failed: Error | undefined;
  /** Settles with the digest's verdict once verify() was called. */
  private verdict: Promise<void> | undefined;
  private wake: () => void = () => undefined;
  private readonly uploading: Promise<void>;
  private readHandle: FileHandle | undefined;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    private readonly hasher: FileHasher,
    private readonly expected: { digest: Digest; size?: number },
    private readonly tmpKey: string,
    private readonly store: {
      upload(key: string, body: AsyncIterable<Buffer>, signal: AbortSignal): Promise<void>;
      publish(key: string, digest: Digest, size: number): Promise<void>;
      discard(key: string): Promise<void>;
    },
    private readonly stopUpload: AbortController,
  ) {
    this.uploading = store.upload(tmpKey, this.follow(), stopUpload.signal);
    // Its failure is reported by write() or commit(); never unhandled.
    this.uploading.catch((err: unknown) => {
      this.failed ??= err instanceof Error ? err : new Error(String(err));
    });
  }

  static async open(file: string, algorithm: 'sha256' | 'sha512', expected: { digest: Digest; size?: number }, tmpKey: string, store: SpoolWriter['store']): Promise<SpoolWriter> {
    const handle = await open(file, 'w+');
    return new SpoolWriter(file, handle, new FileHasher(file, algorithm), expected, tmpKey, store, new AbortController());
  }

  /** The spool file's bytes as they are written, until commit() seals it. */
  private async *follow(): AsyncGenerator<Buffer> {
    this.readHandle = await open(this.path, 'r');
    let position = 0;
    for (;;) {
      if (position < this.written) {
        const buffer = Buffer.allocUnsafe(Math.min(FOLLOW_CHUNK, this.written - position));
        const { bytesRead } = await this.readHandle.read(buffer, 0, buffer.length, position);
        if (bytesRead === 0) throw new Error('spool file is shorter than written');
        position += bytesRead;
        yield bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
        continue;
      }
      if (this.aborted) throw new Error('blob writer aborted');
      if (this.sealed) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = () => undefined;
    wake();
  }

  async write(chunks: Buffer[]): Promise<void> {
    if (this.closed) throw new Error('blob writer is closed');
    if (this.failed) throw this.failed;
    this.written += await writeChunksAt(this.handle, chunks, this.written);
    this.hasher.advance(this.written);
    this.notify();
  }

  /**
   * The digest of the bytes written, checked once (commit() reuses the verdict); no more writes
   * are taken. A bad verdict aborts the writer: the upload is stopped and nothing is published.
   */
  verify(): Promise<void> {
    this.verdict ??= this.check().catch(async (err: unknown) => {
      await this.abort();
      throw err;
    });
    return this.verdict;
  }

  private async check(): Promise<void> {
    await this.close();
    const algorithm = this.expected.digest.slice(0, this.expected.digest.indexOf(':'));
    if (this.expected.size !== undefined && this.written !== this.expected.size) checkContent(this.expected, { digest: '', size: this.written });
    const digest = `${algorithm}:${await this.hasher.digest(this.written)}`;
    checkContent(this.expected, { digest, size: this.written });
    // Every byte is in the spool file: the upload may take its last part now, ahead of commit().
    this.sealed = true;
    this.notify();
  }

  async commit(): Promise<BlobStat> {
    // A bad verdict has aborted the writer already (spool file and temporary object gone).
    await this.verify();
    try {
      await this.uploading;
      await this.store.publish(this.tmpKey, this.expected.digest, this.written);
      await this.store.discard(this.tmpKey).catch(() => undefined);
      return { digest: this.expected.digest, size: this.written };
    } catch (err) {
      await this.abort();
      throw err;
    } finally {
      await this.readHandle?.close().catch(() => undefined);
      await rm(this.path, { force: true });
    }
  }

  async abort(): Promise<void> {
    this.hasher.abort();
    await this.close();
    this.aborted = true;
    this.stopUpload.abort();
    this.sealed = true;
    this.notify();
    await this.uploading.catch(() => undefined);
    await this.readHandle?.close().catch(() => undefined);
    // The upload may have completed just before the abort: its temporary object goes too.
    await this.store.discard(this.tmpKey).catch(() => undefined);
    await rm(this.path, { force: true });
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}

