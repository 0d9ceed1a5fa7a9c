// Reading stored manifests for GC and reports, without counting as a use (see guard.ts): the
// bytes come straight from the blob file, and references are read with the registry's parser.
import type { Digest } from '../digest.js';
import { parseManifest, type ManifestInfo } from '../manifest.js';
import type { Store } from '../storage/store.js';

/** The bytes of a stored blob (manifests are small); undefined when absent. */
export async function readBlobBytes(store: Store, digest: Digest): Promise<Buffer | undefined> {
  const stream = await store.openBlob(digest);
  if (!stream) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export interface ManifestRefs {
  info: ManifestInfo;
  bytes: Buffer;
}

/** The parsed manifest, or undefined when its bytes are gone. Throws when they cannot be parsed. */
export async function readManifest(store: Store, digest: Digest, mediaType: string): Promise<ManifestRefs | undefined> {
  const bytes = await readBlobBytes(store, digest);
  if (!bytes) return undefined;
  return { info: parseManifest(bytes, mediaType), bytes };
}
