// Reads a small body (a manifest pushed to us, an upstream's manifest or token answer) into
// memory with a hard limit; blobs never come here. A body declared larger is refused before a
// byte is read, one that grows past the limit is cut off there: memory use is bounded by the
// limit, whatever the other side sends.
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { RegistryError } from './errors.js';

/** The body was (or said it would be) longer than `limit`. */
export class BodyTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`body exceeds ${limit} bytes`);
    this.name = 'BodyTooLarge';
  }
}

/**
 * `body` whole, if it is at most `limit` bytes; `declared` is its Content-Length header, if any.
 * `refuse` disposes of a body that is too large: by default it is destroyed (an upstream's
 * connection goes, rather than megabytes through it).
 */
export async function readBounded(body: Readable, declared: string | string[] | undefined, limit: number, refuse = (b: Readable) => void b.destroy()): Promise<Buffer> {
  const length = Number(Array.isArray(declared) ? declared[0] : declared);
  if (declared !== undefined && Number.isFinite(length) && length > limit) {
    refuse(body);
    throw new BodyTooLarge(limit);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      refuse(body);
      throw new BodyTooLarge(limit);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/** A client's manifest: one too large is drained (not destroyed), so that it can be told 413. */
export async function readLimited(stream: IncomingMessage, limit: number): Promise<Buffer> {
  try {
    return await readBounded(stream, stream.headers['content-length'], limit, (s) => void s.resume());
  } catch (err) {
    if (err instanceof BodyTooLarge) throw new RegistryError('SIZE_INVALID', `manifest exceeds ${limit} bytes`, undefined, { status: 413 });
    throw err;
  }
}
