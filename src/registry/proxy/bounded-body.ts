// Reading an upstream body into memory, never more than a limit: a body declared larger is
// refused before a byte is read, one that grows past the limit is cut off there. Whatever the
// upstream sends, memory use is bounded by the limit, not by the upstream.
import type { Readable } from 'node:stream';

/** The body was (or said it would be) longer than `limit`. */
export class BodyTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`body exceeds ${limit} bytes`);
    this.name = 'BodyTooLarge';
  }
}

/** `body` whole, if it is at most `limit` bytes; `declared` is its Content-Length header, if any. */
export async function readBounded(body: Readable, declared: string | string[] | undefined, limit: number): Promise<Buffer> {
  const length = Number(Array.isArray(declared) ? declared[0] : declared);
  if (declared !== undefined && Number.isFinite(length) && length > limit) {
    // Not read, not drained: the connection goes, rather than megabytes through it.
    body.destroy();
    throw new BodyTooLarge(limit);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      body.destroy();
      throw new BodyTooLarge(limit);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}
