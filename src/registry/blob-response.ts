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
import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { BlobReader } from './storage/store.js';

/** One blob response: the route sets status and headers on the reply; the content source sends the bytes. */
export class BlobResponse {
  private res: ServerResponse | undefined;
  private gone = false;
  /** Rejections of the waits in progress, run when the client goes away. */
  private readonly waiters = new Set<(err: Error) => void>();

  constructor(private readonly reply: FastifyReply) {}

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
    // A write to a connection that closes may never call back: every wait ends when it closes.
    res.once('close', () => {
      this.gone = true;
      const err = new Error('client went away');
      for (const reject of this.waiters) reject(err);
      this.waiters.clear();
    });
    this.res = res;
  }

  private get raw(): ServerResponse {
    if (!this.res) throw new Error('BlobResponse: begin() first');
    return this.res;
  }

  /**
   * Settles as `promise` does, or rejects as soon as the client goes away. (Not Promise.race with
   * one long-lived "closed" promise: every race would leave a reaction on it until the response
   * ends, thousands per large blob.)
   */
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

  /** Writes `chunks` in one system call; resolves when the socket has taken all of them. */
  write(chunks: Buffer[]): Promise<void> {
    const res = this.raw;
    if (this.gone || res.destroyed) return Promise.reject(new Error('client went away'));
    const written = new Promise<void>((resolve, reject) => {
      res.cork();
      const last = chunks.length - 1;
      chunks.forEach((chunk, i) => {
        if (i < last) res.write(chunk);
        else res.write(chunk, (err) => (err ? reject(err) : resolve()));
      });
      res.uncork();
    });
    // until() reports the outcome; a write failing after the client went away is expected.
    written.catch(() => undefined);
    return this.until(written);
  }

  end(): void {
    this.raw.end();
  }

  /** Cuts the connection: the client sees a short body, never a complete wrong one. */
  abort(): void {
    this.res?.destroy();
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
