// One upstream blob download shared by every client that asks for it meanwhile: the body is
// written to a temporary file (the store's BlobWriter) and each client reads that file, following
// it as it grows, so a client that arrives late streams what has arrived and then keeps pace
// with the download instead of waiting for the end. The last byte is released only after the
// digest is verified and the blob committed: a client can never receive a complete response of
// corrupt bytes; on a mismatch every reader is destroyed, which cuts its connection.
import { open, type FileHandle } from 'node:fs/promises';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobStat, BlobWriter, ByteRange } from '../storage/store.js';

const READ_CHUNK = 512 * 1024;
const MIN_BATCH = 256 * 1024;
const WRITE_BUFFER = 4 * 1024 * 1024;

type State = { kind: 'running' } | { kind: 'committed'; stat: BlobStat } | { kind: 'failed'; error: Error };

export interface DownloadHooks {
  /** Counts body bytes as they arrive. */
  onBytes?(n: number): void;
  /** Runs after the verified commit and before the last byte is released (link the repository). */
  onCommitted?(stat: BlobStat): Promise<void>;
}

export class BlobDownload {
  private state: State = { kind: 'running' };
  private wake: () => void = () => undefined;
  private tick: Promise<void>;
  /** One descriptor shared by every reader (positional reads); it outlives the rename on commit. */
  private readHandle: FileHandle | undefined;
  private users = 1; // the download itself
  /** Settles when the download is committed or has failed (it never rejects; see `error`). */
  settled: Promise<void> = Promise.resolve();

  private constructor(readonly size: number, private readonly writer: BlobWriter) {
    this.tick = new Promise((resolve) => (this.wake = resolve));
  }

  /** Starts writing `source` (the upstream body, `size` bytes) and returns at once. */
  static async start(source: Readable, size: number, writer: BlobWriter, hooks: DownloadHooks = {}): Promise<BlobDownload> {
    const download = new BlobDownload(size, writer);
    try {
      download.readHandle = await open(writer.path, 'r');
    } catch (err) {
      source.on('error', () => undefined);
      source.destroy();
      await writer.abort();
      throw err;
    }
    download.settled = download.run(source, hooks);
    return download;
  }

  get error(): Error | undefined {
    return this.state.kind === 'failed' ? this.state.error : undefined;
  }

  get committed(): boolean {
    return this.state.kind === 'committed';
  }

  private async run(source: Readable, hooks: DownloadHooks): Promise<void> {
    const writer = this.writer;
    const sink = new Writable({
      highWaterMark: WRITE_BUFFER,
      // Chunks that arrive while a write is in progress are written together with the next writev.
      writev: (chunks, done) => {
        writer.write(chunks.map((c) => c.chunk as Buffer)).then(() => {
          this.notify();
          done();
        }, done);
      },
      write: (chunk: Buffer, _enc, done) => {
        writer.write([chunk]).then(() => {
          this.notify();
          done();
        }, done);
      },
    });
    const counter = hooks.onBytes;
    if (counter) source.on('data', (chunk: Buffer) => counter(chunk.length));
    try {
      await pipeline(source, sink);
      const stat = await writer.commit();
      await hooks.onCommitted?.(stat);
      this.state = { kind: 'committed', stat };
    } catch (err) {
      await writer.abort().catch(() => undefined);
      this.state = { kind: 'failed', error: err instanceof Error ? err : new Error(String(err)) };
    }
    this.notify();
    this.release();
  }

  private notify(): void {
    const wake = this.wake;
    this.tick = new Promise((resolve) => (this.wake = resolve));
    wake();
  }

  private release(): void {
    this.users -= 1;
    if (this.users === 0) void this.readHandle?.close().catch(() => undefined);
  }

  /** How many bytes from the start readers may take now. */
  private available(): number {
    if (this.state.kind === 'committed') return this.size;
    return Math.max(0, Math.min(this.writer.written, this.size - 1));
  }

  /** A stream of the blob (or an inclusive range of it) that follows the download. */
  open(range?: ByteRange): Readable {
    if (this.state.kind === 'failed') throw this.state.error;
    const handle = this.readHandle as FileHandle;
    this.users += 1;
    const start = range?.start ?? 0;
    const end = range?.end ?? this.size - 1;
    let pos = start;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.release();
    };
    const download = this;
    const pump = async (stream: Readable): Promise<void> => {
      for (;;) {
        if (pos > end) {
          stream.push(null);
          return;
        }
        if (download.state.kind === 'failed') throw download.state.error;
        const available = download.available();
        // At the download's heels, wait for a worthwhile batch: many tiny reads cost more than the wait.
        const batchReady = available - pos >= MIN_BATCH || available >= Math.min(end + 1, download.size - 1) || download.state.kind !== 'running';
        if (pos < available && batchReady) {
          const length = Math.min(READ_CHUNK, available - pos, end + 1 - pos);
          const buffer = Buffer.allocUnsafe(length);
          const { bytesRead } = await handle.read(buffer, 0, length, pos);
          if (bytesRead === 0) throw new Error('cached download ended early');
          pos += bytesRead;
          stream.push(bytesRead === length ? buffer : buffer.subarray(0, bytesRead));
          return;
        }
        await download.tick;
        if (stream.destroyed) return;
      }
    };
    return new Readable({
      highWaterMark: READ_CHUNK,
      read() {
        pump(this).catch((err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))));
      },
      destroy(err, callback) {
        release();
        callback(err);
      },
      // 'end' without destroy (autoDestroy covers it, but be explicit about the reference).
      emitClose: true,
      autoDestroy: true,
    });
  }
}
