// Reproducible pseudo-random bytes: the AES-256-CTR keystream of a seed. Fast enough to make
// hundreds of MiB for benchmarks, and the same seed always gives the same layers and digests.
import { createCipheriv, createHash, randomBytes } from 'node:crypto';

const CHUNK = 1 << 20;

function keystream(seed: string) {
  const key = createHash('sha256').update(`layover-test:${seed}`).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
}

/** A fresh random seed, for callers that want different content every run. */
export function randomSeed(): string {
  return randomBytes(12).toString('hex');
}

/** `size` bytes derived from `seed`. */
export function seededBytes(seed: string, size: number): Buffer {
  return keystream(seed).update(Buffer.alloc(size));
}

/** The same bytes as `seededBytes`, in chunks of at most 1 MiB, for content too big to hold. */
export function* seededChunks(seed: string, size: number): Generator<Buffer> {
  const cipher = keystream(seed);
  const zeros = Buffer.alloc(Math.min(CHUNK, size));
  for (let left = size; left > 0; left -= CHUNK) {
    const n = Math.min(CHUNK, left);
    yield cipher.update(n === zeros.length ? zeros : zeros.subarray(0, n));
  }
}
