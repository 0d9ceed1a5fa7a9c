// Provenance markers of cached blobs (EmbeddedStore.recordBlobSource / blobFromSource): per
// upstream, never set by a push, forgotten with the blob, and safe against odd ids.
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestOf } from '../../src/registry/digest.js';
import { sourceId } from '../../src/registry/proxy/source-id.js';
import { EmbeddedStore, openEmbeddedStore } from '../../src/registry/storage/embedded.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';

let tmp: TempDir;
let store: EmbeddedStore;
beforeEach(async () => {
  tmp = makeTempDir('layover-blob-source-');
  store = await openEmbeddedStore(path.join(tmp.path, 'data'));
});
afterEach(() => tmp.cleanup());

describe('blob provenance', () => {
  const bytes = Buffer.from('cached layer bytes');
  const digest = digestOf(bytes, 'sha256');
  const hub = sourceId({ url: 'https://registry-1.docker.io' });
  const other = sourceId({ url: 'https://registry-1.docker.io', username: 'tenant' });

  it('an upstream id depends on the URL and the account, and is a plain hex name', () => {
    expect(hub).toMatch(/^[0-9a-f]{32}$/);
    expect(other).not.toBe(hub);
    expect(sourceId({ url: 'https://ghcr.io' })).not.toBe(hub);
  });

  it('a pushed blob is from no upstream; a recorded one is from that upstream only; deleteBlob forgets', async () => {
    await store.ingestBlob(Readable.from([bytes]), { digest });
    expect(await store.blobFromSource(digest, hub)).toBe(false);
    await store.recordBlobSource(digest, hub);
    await store.recordBlobSource(digest, hub);
    expect(await store.blobFromSource(digest, hub)).toBe(true);
    expect(await store.blobFromSource(digest, other)).toBe(false);
    await store.deleteBlob(digest);
    expect(await store.blobFromSource(digest, hub)).toBe(false);
  });

  it('refuses an id that could name a path', async () => {
    await expect(store.recordBlobSource(digest, '../x')).rejects.toThrow(/refusing/);
    await expect(store.blobFromSource(digest, 'ab/../../cd')).rejects.toThrow(/refusing/);
  });
});
