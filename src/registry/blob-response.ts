// Writing blob bytes to a client without a stream in between. A read stream allocates a fresh
// buffer for every read: for a 256 MiB layer that is 256 MiB of short-lived external memory,
// which V8 answered with a full collection every few dozen milliseconds (GC cost more CPU than
// the copy). And an upstream download arrives in 64 KiB chunks: written one by one to the
// client, each chunk is a system call and a wakeup of the reader; corked, a batch of them is
// one writev (in --cpu-prof profiles of cold pulls, time in socket writes fell by about a quarter).
//
// A stored blob goes out through two buffers that are reused for the whole response and then
// for the next ones; a buffer is filled again only after the socket has taken all of its
// previous bytes (the write callback), so a byte on the wire is never overwritten.
// Sources write to a BlobSink: the client's response, or a StreamSink for a consumer that
// wants a Readable instead.
import type { ServerResponse } from 'node:http';
import { PassThrough, type Writable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import type { BlobReader } from './storage/store.js';

/** Where blob bytes go: a client's response (BlobResponse) or a stream (StreamSink). */
export interface BlobSink {
  /**
   * True when a settled write() means the consumer holds nothing of its chunks any more (a
   * socket has copied them), so a source may refill the same buffer; a stream keeps references.
   */
  readonly releasesChunks: boolean;
  /** Called by a source once the bytes are sure to be there. */
  begin(): void;
  /** Resolves when the consumer has taken all of `chunks`. */
  write(chunks: Buffer[]): Promise<void>;
  /** Settles as `promise` does, or rejects as soon as the consumer goes away. */
  until<T>(promise: Promise<T>): Promise<T>;
  end(): void;
  /** Cuts the consumer off: it sees a short body or `err`, never a complete wrong one. */
  abort(err?: Error): void;
}

/**
 * The waits of a sink, all ended when its consumer goes away. (Not Promise.race with one
 * long-lived "closed" promise: every race would leave a reaction on it until the end, thousands
 * per large blob.)
 */
class Waits {
  gone = false;
  private readonly waiters = new Set<(err: Error) => void>();

  consumerGone(): void {
    this.gone = true;
    const err = new Error('client went away');
    for (const reject of this.waiters) reject(err);
    this.waiters.clear();
  }

  until<T>(promise: Promise<T>): Promise<T> {
    if (this.gone) return Promise.reject(new Error('client went away'));
    return new Promise<T>((resolve, reject) => {
      this.waiters.add(reject);
      promise.then(
        (value) => {
          this.waiters.delete(reject);
          resolve(value);
        },
        (err: unknown) => {
          this.waiters.delete(reject);
          reject(err);
        },
      );
    });
  }
}

/** Writes `chunks` to `out` as one batch; resolves on the last one's callback (until() reports failures). */
function writeBatch(out: Writable, chunks: Buffer[]): Promise<void> {
  const written = new Promise<void>((resolve, reject) => {
    out.cork();
    const last = chunks.length - 1;
    chunks.forEach((chunk, i) => {
      if (i < last) out.write(chunk);
      else out.write(chunk, (err) => (err ? reject(err) : resolve()));
    });
    out.uncork();
  });
  // A write failing after the consumer went away is expected; until() reports the outcome.
  written.catch(() => undefined);
  return written;
}

/** One blob response: the route sets status and headers on the reply; the content source sends the bytes. */
export class BlobResponse implements BlobSink {
  readonly releasesChunks = true;
  private res: ServerResponse | undefined;
  private readonly waits = new Waits();

  constructor(private readonly reply: FastifyReply) {
    // Watched from the start: a source may wait (for an upstream's first bytes) before begin().
    reply.raw.once('close', () => this.waits.consumerGone());
  }

  /**
   * Takes the response from fastify (its onResponse hooks still run when it finishes) and sends
   * the status line and headers. Sources call it once everything they need is open, so that a
   * blob gone meanwhile is still a clean error answer.
   */
  begin(): void {
    const reply = this.reply;
    reply.hijack();
    const res = reply.raw;
    for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) res.setHeader(name, value);
    res.writeHead(reply.statusCode);
    // A write to a connection that closes may never call back: every wait ends when it closes
    // (the listener is the constructor's).
    this.res = res;
  }

  private get raw(): ServerResponse {
    if (!this.res) throw new Error('BlobResponse: begin() first');
    return this.res;
  }

  until<T>(promise: Promise<T>): Promise<T> {
    return this.waits.until(promise);
  }

  /** Writes `chunks` in one system call (corked); resolves when the socket has taken all of them. */
  write(chunks: Buffer[]): Promise<void> {
    const res = this.raw;
    if (this.waits.gone || res.destroyed) return Promise.reject(new Error('client went away'));
    return this.until(writeBatch(res, chunks));
  }

  end(): void {
    this.raw.end();
  }

  abort(): void {
    if (this.res) return void this.res.destroy();
    // Not begun: fastify must not answer either (the client is gone, or must see a cut).
    this.reply.hijack();
    this.reply.raw.destroy();
  }
}

/** A sink that feeds a Readable, for consumers that want a stream rather than a response. */
export class StreamSink implements BlobSink {
  readonly releasesChunks = false;
  readonly stream = new PassThrough({ highWaterMark: 512 * 1024 });
  private readonly waits = new Waits();

  constructor() {
    this.stream.once('close', () => this.waits.consumerGone());
  }

  begin(): void {}

  until<T>(promise: Promise<T>): Promise<T> {
    return this.waits.until(promise);
  }

  /** Resolves once the stream has buffered `chunks` (a slow reader holds it back). */
  write(chunks: Buffer[]): Promise<void> {
    if (this.waits.gone || this.stream.destroyed) return Promise.reject(new Error('reader went away'));
    return this.until(writeBatch(this.stream, chunks));
  }

  end(): void {
    this.stream.end();
  }

  abort(err?: Error): void {
    this.stream.destroy(err);
  }
}

const BUFFER_SIZE = 512 * 1024;
/** Free buffers kept between responses: enough for a few concurrent pulls, bounded for RSS. */
const POOL_MAX = 16;

const pool: Buffer[] = [];

function take(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(BUFFER_SIZE);
}

function give(buffer: Buffer): void {
  if (pool.length < POOL_MAX) pool.push(buffer);
}

/**
 * Sends bytes start..end (inclusive) of a stored blob and closes the reader. A read error or a
 * client that goes away cuts the connection.
 */
export async function sendStoredBlob(response: BlobResponse, reader: BlobReader, start: number, end: number): Promise<void> {
  const buffers = [take(), take()] as const;
  // The write in flight from each buffer; the buffer is free again when it settles.
  const inFlight: [Promise<void>, Promise<void>] = [Promise.resolve(), Promise.resolve()];
  let intact = true;
  try {
    response.begin();
    let pos = start;
    let i: 0 | 1 = 0;
    while (pos <= end) {
      await inFlight[i];
      const buffer = buffers[i];
      const bytesRead = await reader.read(buffer, Math.min(BUFFER_SIZE, end + 1 - pos), pos);
      if (bytesRead === 0) throw new Error('stored blob is shorter than its size');
      pos += bytesRead;
      inFlight[i] = response.write([bytesRead === BUFFER_SIZE ? buffer : buffer.subarray(0, bytesRead)]);
      // Keep the other write's rejection handled while this one is awaited.
      inFlight[i].catch(() => undefined);
      i = i === 0 ? 1 : 0;
    }
    await Promise.all(inFlight);
    response.end();
  } catch {
    // A write that failed may still be held by the socket until it closes: such a buffer is
    // left to the garbage collector rather than handed to another response.
    intact = false;
    response.abort();
  } finally {
    await reader.close().catch(() => undefined);
    if (intact) for (const buffer of buffers) give(buffer);
  }
}
