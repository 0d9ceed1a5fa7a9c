// What size a mirror expects a blob to have: the size in the descriptor of a manifest this mirror
// fetched or served for the repository. An upstream that declares another length for the blob is
// lying (the bytes could never verify), and is refused before anything is written. Kept per
// repository, so that one repository's manifest cannot vouch for (or spoil) another's blobs; a
// bounded record (an entry evicted costs only the check, never correctness).
import { LRUCache } from 'lru-cache';
import { parseDigest, type Digest } from '../digest.js';

/** The blobs a manifest lists with their sizes: config and layers, or an artifact's blobs. */
function blobSizes(bytes: Buffer): [Digest, number][] {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    return [];
  }
  if (typeof doc !== 'object' || doc === null) return [];
  const { config, layers, blobs } = doc as Record<string, unknown>;
  const out: [Digest, number][] = [];
  for (const d of [config, ...(Array.isArray(layers) ? layers : []), ...(Array.isArray(blobs) ? blobs : [])]) {
    if (typeof d !== 'object' || d === null) continue;
    const { digest, size } = d as Record<string, unknown>;
    if (typeof digest === 'string' && parseDigest(digest) && typeof size === 'number' && Number.isSafeInteger(size) && size >= 0) out.push([digest as Digest, size]);
  }
  return out;
}

export class ExpectedSizes {
  private readonly sizes = new LRUCache<string, number>({ max: 20_000 });
  /** Manifests already read, so a manifest pulled again is not parsed again. */
  private readonly learned = new LRUCache<string, true>({ max: 5_000 });

  /** Records the blob sizes of a manifest that was fetched or served for `repository`. */
  learn(repository: string, manifest: Digest, bytes: Buffer): void {
    const key = `${repository}@${manifest}`;
    if (this.learned.has(key)) return;
    this.learned.set(key, true);
    for (const [digest, size] of blobSizes(bytes)) this.sizes.set(`${repository}@${digest}`, size);
  }

  /** The size a manifest of `repository` gives `digest`, if one was seen. */
  get(repository: string, digest: Digest): number | undefined {
    return this.sizes.get(`${repository}@${digest}`);
  }
}
