// Layers that containerd really unpacks: a gzip-compressed tar holding one regular file of
// seeded random content. Written as a stream so a 256 MiB layer never sits in memory.
import { createHash, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename } from 'node:fs/promises';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { seededChunks } from './random-bytes.js';

const BLOCK = 512;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** A POSIX ustar header for one regular file, mode 0644, owned by root, mtime 0 (reproducible). */
export function ustarHeader(name: string, size: number): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name too long: ${name}`);
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(0o644, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(0, 12), 136, 'ascii');
  h.write(' '.repeat(8), 148, 'ascii');
  h.write('0', 156, 'ascii');
  h.write('ustar\0' + '00', 257, 'ascii');
  h.write('root', 265, 'ascii');
  h.write('root', 297, 'ascii');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

function* tarOfOneFile(name: string, size: number, seed: string): Generator<Buffer> {
  yield ustarHeader(name, size);
  yield* seededChunks(seed, size);
  const pad = (BLOCK - (size % BLOCK)) % BLOCK;
  // The file's padding and the two zero blocks that end an archive.
  yield Buffer.alloc(pad + 2 * BLOCK);
}

class Measure extends Transform {
  readonly hash: Hash = createHash('sha256');
  size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    done(null, chunk);
  }
}

export interface WrittenLayer {
  /** Digest and size of the compressed blob, as in the manifest. */
  digest: string;
  size: number;
  /** Digest of the uncompressed tar, as in the config's rootfs.diff_ids. */
  diffId: string;
  fileName: string;
  fileSize: number;
}

/**
 * Writes the layer to `blobsDir/<hex>` (through a temporary file) and returns its digests.
 * `gzipLevel` 1 by default: the content is random, so harder compression only costs time.
 */
export async function writeTarGzLayer(blobsDir: string, opts: { fileName: string; fileSize: number; seed: string; gzipLevel?: number }): Promise<WrittenLayer> {
  const tmp = `${blobsDir}/.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const raw = new Measure();
  const compressed = new Measure();
  await pipeline(
    Readable.from(tarOfOneFile(opts.fileName, opts.fileSize, opts.seed)),
    raw,
    createGzip({ level: opts.gzipLevel ?? 1 }),
    compressed,
    createWriteStream(tmp),
  );
  const hex = compressed.hash.digest('hex');
  await rename(tmp, `${blobsDir}/${hex}`);
  return {
    digest: `sha256:${hex}`,
    size: compressed.size,
    diffId: `sha256:${raw.hash.digest('hex')}`,
    fileName: opts.fileName,
    fileSize: opts.fileSize,
  };
}
