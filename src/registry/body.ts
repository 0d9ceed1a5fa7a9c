// Reads a small request body (a manifest) into memory with a hard limit; blobs never come here.
import type { IncomingMessage } from 'node:http';
import { RegistryError } from './errors.js';

export async function readLimited(stream: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(stream.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    stream.resume();
    throw new RegistryError('SIZE_INVALID', `manifest exceeds ${limit} bytes`, undefined, { status: 413 });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      stream.resume();
      throw new RegistryError('SIZE_INVALID', `manifest exceeds ${limit} bytes`, undefined, { status: 413 });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}
