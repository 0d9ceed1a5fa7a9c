// EmbeddedStore on a real temporary directory: atomic, verified blob writes; uploads that survive
// a new store instance; the sweep of abandoned uploads; refusal of paths outside the layout.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestOf, type Digest } from '../../src/registry/digest.js';
import { RegistryError } from '../../src/registry/errors.js';
import type { Syncs } from '../../src/registry/storage/durable.js';
import { EmbeddedStore, openEmbeddedStore } from '../../src/registry/storage/embedded.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';
import { seededBytes } from '../helpers/random-bytes.js';

let tmp: TempDir;
let root: string;
let store: EmbeddedStore;

beforeEach(async () => {
  tmp = makeTempDir('layover-store-');
  root = path.join(tmp.path, 'data');
  store = await openEmbeddedStore(root);
});
afterEach(() => {
  tmp.cleanup();
});

function files(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out.sort();
}

/** Every file under blobs/ hashes to the name it is stored under. */
function expectBlobsMatchNames(): number {
  const names = files(path.join(root, 'blobs'));
  for (const rel of names) {
    const [algorithm, prefix, hex] = rel.split(path.sep) as [string, string, string];
    expect(hex.slice(0, 2)).toBe(prefix);
    const actual = createHash(algorithm).update(readFileSync(path.join(root, 'blobs', rel))).digest('hex');
    expect(actual, rel).toBe(hex);
  }
  return names.length;
}

function chunked(bytes: Buffer, size: number): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) parts.push(bytes.subarray(i, i + size));
  return Readable.from(parts);
}

/** A stream that yields `good` bytes and then fails, as a client that disconnects. */
function failingAfter(good: Buffer): Readable {
  return new Readable({
    read() {
      if (good.length) {
        this.push(good);
        good = Buffer.alloc(0);
      } else {
        this.destroy(new Error('client went away'));
      }
    },
  });
}

async function readAll(stream: Readable | undefined): Promise<Buffer> {
  if (!stream) throw new Error('no stream');
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('blob writes are verified and atomic', () => {
  it('ingests a blob under its digest and reads it back whole and by range', async () => {
    const bytes = seededBytes('ingest', 1_300_000);
    const digest = digestOf(bytes);
    expect(await store.ingestBlob(chunked(bytes, 100_000), { digest, size: bytes.length })).toEqual({ digest, size: bytes.length });
    expect(await store.statBlob(digest)).toEqual({ digest, size: bytes.length });
    expect((await readAll(await store.openBlob(digest))).equals(bytes)).toBe(true);
    expect((await readAll(await store.openBlob(digest, { start: 1000, end: 1999 }))).equals(bytes.subarray(1000, 2000))).toBe(true);
    expect(expectBlobsMatchNames()).toBe(1);
  });

  it('a sha512 digest is verified with sha512', async () => {
    const bytes = seededBytes('ingest512', 10_000);
    const digest = digestOf(bytes, 'sha512');
    await store.ingestBlob(Readable.from([bytes]), { digest });
    expect(files(path.join(root, 'blobs'))).toEqual([path.join('sha512', digest.slice(7, 9), digest.slice(7))]);
    expectBlobsMatchNames();
  });

  it('a wrong digest stores nothing and leaves no temporary file', async () => {
    const bytes = seededBytes('wrong', 50_000);
    const wrong = digestOf('other');
    await expect(store.ingestBlob(Readable.from([bytes]), { digest: wrong })).rejects.toMatchObject({ code: 'DIGEST_INVALID' });
    expect(files(path.join(root, 'blobs'))).toEqual([]);
    expect(files(path.join(root, '_tmp'))).toEqual([]);
    expect(await store.statBlob(wrong)).toBeUndefined();
  });

  it('a wrong size stores nothing', async () => {
    const bytes = seededBytes('size', 5_000);
    await expect(store.ingestBlob(Readable.from([bytes]), { digest: digestOf(bytes), size: 4_999 })).rejects.toMatchObject({ code: 'SIZE_INVALID' });
    expect(files(path.join(root, 'blobs'))).toEqual([]);
    expect(files(path.join(root, '_tmp'))).toEqual([]);
  });

  it('a source that fails midway stores nothing and leaves no temporary file', async () => {
    const bytes = seededBytes('broken', 200_000);
    await expect(store.ingestBlob(failingAfter(bytes.subarray(0, 100_000)), { digest: digestOf(bytes) })).rejects.toThrow(/went away/);
    expect(files(path.join(root, 'blobs'))).toEqual([]);
    expect(files(path.join(root, '_tmp'))).toEqual([]);
  });

  it('an abort signal stops the write and stores nothing', async () => {
    const bytes = seededBytes('abort', 100_000);
    const controller = new AbortController();
    const slow = new Readable({
      read() {
        this.push(bytes.subarray(0, 1000));
        controller.abort();
      },
    });
    await expect(store.ingestBlob(slow, { digest: digestOf(bytes) }, controller.signal)).rejects.toThrow();
    expect(files(path.join(root, 'blobs'))).toEqual([]);
    expect(files(path.join(root, '_tmp'))).toEqual([]);
  });

  it('concurrent writes of the same blob leave one correct file', async () => {
    const bytes = seededBytes('same', 700_000);
    const digest = digestOf(bytes);
    await Promise.all(Array.from({ length: 6 }, () => store.ingestBlob(chunked(bytes, 65_536), { digest })));
    expect(expectBlobsMatchNames()).toBe(1);
    expect(files(path.join(root, '_tmp'))).toEqual([]);
  });

  it('a reader that opened a blob keeps its bytes while the blob is deleted', async () => {
    const bytes = seededBytes('keep', 3 * 1024 * 1024);
    const digest = digestOf(bytes);
    await store.ingestBlob(Readable.from([bytes]), { digest });
    const stream = await store.openBlob(digest);
    await store.deleteBlob(digest);
    expect(await store.statBlob(digest)).toBeUndefined();
    expect((await readAll(stream)).equals(bytes)).toBe(true);
    expect(await store.openBlob(digest)).toBeUndefined();
  });

  it('a new store clears temporary files a crash left behind', async () => {
    writeFileSync(path.join(root, '_tmp', 'leftover'), 'half a blob');
    await openEmbeddedStore(root);
    expect(files(path.join(root, '_tmp'))).toEqual([]);
  });
});

describe('manifests, links and tags', () => {
  it('keeps the manifest bytes exactly and its metadata', async () => {
    const bytes = Buffer.from(`{ "schemaVersion": 2,   "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": "${digestOf('c')}", "size": 1 },  "layers": [] }\n`);
    const digest = digestOf(bytes);
    await store.putManifest('a/b', bytes, { digest, mediaType: 'application/vnd.oci.image.manifest.v1+json' });
    const got = await store.getManifest('a/b', digest);
    expect(got?.bytes.equals(bytes)).toBe(true);
    expect(got?.meta).toMatchObject({ digest, size: bytes.length, mediaType: 'application/vnd.oci.image.manifest.v1+json' });
    await store.setTag('a/b', 'v1', digest);
    expect(await store.resolveTag('a/b', 'v1')).toBe(digest);
    expect(await store.listTags('a/b')).toEqual(['v1']);
    expect(await store.listTags('a/none')).toBeUndefined();
    expect(await store.deleteManifest('a/b', digest)).toBe(true);
    expect(await store.resolveTag('a/b', 'v1')).toBeUndefined();
    expect(await store.getManifest('a/b', digest)).toBeUndefined();
  });

  it('links are per repository', async () => {
    const bytes = seededBytes('link', 100);
    const digest = digestOf(bytes);
    await store.ingestBlob(Readable.from([bytes]), { digest });
    await store.linkBlob('one', digest);
    expect(await store.blobLinked('one', digest)).toBe(true);
    expect(await store.blobLinked('two', digest)).toBe(false);
    expect(await store.listRepositories()).toEqual(['one']);
    expect(await store.unlinkBlob('one', digest)).toBe(true);
    expect(await store.unlinkBlob('one', digest)).toBe(false);
  });
});

describe('uploads', () => {
  it('appends chunks in order and completes to a verified blob', async () => {
    const bytes = seededBytes('upload', 300_000);
    let upload = await store.createUpload('up/repo');
    upload = await store.appendUpload(upload, Readable.from([bytes.subarray(0, 100_000)]), 0);
    upload = await store.appendUpload(upload, chunked(bytes.subarray(100_000), 30_000), 100_000);
    expect(upload.size).toBe(bytes.length);
    expect(await store.completeUpload(upload, digestOf(bytes))).toEqual({ digest: digestOf(bytes), size: bytes.length });
    expect(expectBlobsMatchNames()).toBe(1);
    expect(await store.getUpload('up/repo', upload.id)).toBeUndefined();
    expect(files(path.join(root, 'uploads'))).toEqual([]);
  });

  it('a chunk at the wrong offset is RANGE_INVALID and changes nothing', async () => {
    const upload = await store.createUpload('up/repo');
    await store.appendUpload(upload, Readable.from([Buffer.alloc(10, 1)]), 0);
    await expect(store.appendUpload(upload, Readable.from([Buffer.alloc(10, 2)]), 0)).rejects.toMatchObject({ code: 'RANGE_INVALID', status: 416 });
    await expect(store.appendUpload(upload, Readable.from([Buffer.alloc(10, 2)]), 11)).rejects.toMatchObject({ code: 'RANGE_INVALID' });
    expect((await store.getUpload('up/repo', upload.id))?.size).toBe(10);
  });

  it('a chunk that fails midway is undone, and the upload still completes correctly', async () => {
    const bytes = seededBytes('retry', 200_000);
    const upload = await store.createUpload('up/repo');
    await store.appendUpload(upload, Readable.from([bytes.subarray(0, 50_000)]), 0);
    await expect(store.appendUpload(upload, failingAfter(bytes.subarray(50_000, 120_000)), 50_000)).rejects.toThrow(/went away/);
    const after = await store.getUpload('up/repo', upload.id);
    expect(after?.size).toBe(50_000);
    const done = await store.appendUpload(after!, Readable.from([bytes.subarray(50_000)]), 50_000);
    expect((await store.completeUpload(done, digestOf(bytes))).size).toBe(bytes.length);
    expectBlobsMatchNames();
  });

  it('a wrong digest on completion stores nothing and removes the session', async () => {
    const upload = await store.createUpload('up/repo');
    const done = await store.appendUpload(upload, Readable.from([Buffer.from('hello')]));
    await expect(store.completeUpload(done, digestOf('goodbye'))).rejects.toMatchObject({ code: 'DIGEST_INVALID' });
    expect(files(path.join(root, 'blobs'))).toEqual([]);
    expect(await store.getUpload('up/repo', upload.id)).toBeUndefined();
  });

  it('completes with sha512, which the cached sha256 state cannot answer', async () => {
    const bytes = seededBytes('algos', 90_000);
    const a = await store.appendUpload(await store.createUpload('up/repo'), Readable.from([bytes]));
    expect((await store.completeUpload(a, digestOf(bytes, 'sha512'))).digest).toBe(digestOf(bytes, 'sha512'));
    expectBlobsMatchNames();
  });

  it('resumes across a new store instance on the same root', async () => {
    const bytes = seededBytes('resume', 400_000);
    const upload = await store.createUpload('up/resume');
    await store.appendUpload(upload, Readable.from([bytes.subarray(0, 150_000)]), 0);

    const second = await openEmbeddedStore(root);
    const found = await second.getUpload('up/resume', upload.id);
    expect(found).toMatchObject({ id: upload.id, repository: 'up/resume', size: 150_000 });
    expect(found?.startedAt.getTime()).toBe(upload.startedAt.getTime());
    expect((await second.listUploads()).map((u) => u.id)).toEqual([upload.id]);
    await expect(second.appendUpload(found!, Readable.from([bytes.subarray(100_000)]), 100_000)).rejects.toMatchObject({ code: 'RANGE_INVALID' });
    const more = await second.appendUpload(found!, Readable.from([bytes.subarray(150_000)]), 150_000);
    expect(more.size).toBe(bytes.length);
    expect(await second.completeUpload(more, digestOf(bytes))).toEqual({ digest: digestOf(bytes), size: bytes.length });
    expectBlobsMatchNames();
  });

  it('a resumed upload with the wrong bytes is still refused (the new instance rehashes)', async () => {
    const bytes = seededBytes('resume-wrong', 10_000);
    const upload = await store.createUpload('up/resume');
    await store.appendUpload(upload, Readable.from([bytes.subarray(0, 5_000)]), 0);
    const second = await openEmbeddedStore(root);
    const found = await second.appendUpload((await second.getUpload('up/resume', upload.id))!, Readable.from([Buffer.alloc(5_000)]), 5_000);
    await expect(second.completeUpload(found, digestOf(bytes))).rejects.toMatchObject({ code: 'DIGEST_INVALID' });
    expect(files(path.join(root, 'blobs'))).toEqual([]);
  });

  it('an upload belongs to its repository; an invalid id is simply unknown', async () => {
    const upload = await store.createUpload('up/owner');
    expect(await store.getUpload('up/other', upload.id)).toBeUndefined();
    expect(await store.cancelUpload('up/other', upload.id)).toBe(false);
    for (const id of ['..', '../blobs', '', upload.id.toUpperCase(), `${upload.id}/../x`]) expect(await store.getUpload('up/owner', id)).toBeUndefined();
    expect(await store.cancelUpload('up/owner', upload.id)).toBe(true);
    expect(await store.getUpload('up/owner', upload.id)).toBeUndefined();
  });

  it('completing a session that was cancelled meanwhile is BLOB_UPLOAD_UNKNOWN, not a crash', async () => {
    const upload = await store.createUpload('up/race');
    const done = await store.appendUpload(upload, Readable.from([Buffer.from('abc')]));
    await store.cancelUpload('up/race', upload.id);
    await expect(store.completeUpload(done, digestOf('abc'))).rejects.toMatchObject({ code: 'BLOB_UPLOAD_UNKNOWN', status: 404 });
    await expect(store.appendUpload(done, Readable.from([Buffer.from('d')]))).rejects.toMatchObject({ code: 'BLOB_UPLOAD_UNKNOWN' });
  });
});

describe('purge of abandoned uploads', () => {
  const HOUR = 3_600_000;

  /** Back-dates a session's start and last write, where they are kept: its metadata record. */
  function age(id: string, startedAgoMs: number, writtenAgoMs: number): void {
    store.metadata.database.prepare('UPDATE uploads SET started_at = ?, updated_at = ? WHERE id = ?').run(Date.now() - startedAgoMs, Date.now() - writtenAgoMs, id);
  }

  it('removes idle uploads older than the cut-off and keeps fresh ones', async () => {
    const old = await store.createUpload('up/p');
    const fresh = await store.createUpload('up/p');
    await store.appendUpload(old, Readable.from([Buffer.from('old data')]));
    age(old.id, 48 * HOUR, 48 * HOUR);
    expect(await store.purgeUploads(new Date(Date.now() - 24 * HOUR))).toBe(1);
    expect(await store.getUpload('up/p', old.id)).toBeUndefined();
    expect(existsSync(path.join(root, 'uploads', old.id))).toBe(false);
    expect(await store.getUpload('up/p', fresh.id)).toBeDefined();
  });

  it('keeps an upload that started long ago but is still receiving data', async () => {
    const slow = await store.createUpload('up/p');
    await store.appendUpload(slow, Readable.from([Buffer.from('chunk')]));
    age(slow.id, 48 * HOUR, 1000);
    expect(await store.purgeUploads(new Date(Date.now() - 24 * HOUR))).toBe(0);
    expect((await store.getUpload('up/p', slow.id))?.size).toBe(5);
    age(slow.id, 48 * HOUR, 30 * HOUR);
    expect(await store.purgeUploads(new Date(Date.now() - 24 * HOUR))).toBe(1);
  });

  it('skips a session whose append is under way, however old its timestamps, and sweeps it once idle', async () => {
    const slow = await store.createUpload('up/p');
    const source = new Readable({ read() {} });
    source.push(Buffer.from('first'));
    const appending = store.appendUpload(slow, source);
    await new Promise((resolve) => setTimeout(resolve, 20));
    age(slow.id, 48 * HOUR, 48 * HOUR);
    expect(await store.purgeUploads(new Date(Date.now() - 24 * HOUR))).toBe(0);
    source.push(Buffer.from(' second'));
    source.push(null);
    expect((await appending).size).toBe(12);
    age(slow.id, 48 * HOUR, 48 * HOUR);
    expect(await store.purgeUploads(new Date(Date.now() - 24 * HOUR))).toBe(1);
    expect(readdirSync(path.join(root, 'uploads'))).toEqual([]);
  });

  it('a cancel waits for an append in flight, then removes the whole session', async () => {
    const upload = await store.createUpload('up/p');
    const source = new Readable({ read() {} });
    const appending = store.appendUpload(upload, source);
    const cancelling = store.cancelUpload('up/p', upload.id);
    source.push(Buffer.from('chunk'));
    source.push(null);
    expect((await appending).size).toBe(5);
    expect(await cancelling).toBe(true);
    expect(readdirSync(path.join(root, 'uploads'))).toEqual([]);
    await expect(store.completeUpload(upload, digestOf('chunk'))).rejects.toMatchObject({ code: 'BLOB_UPLOAD_UNKNOWN' });
  });

  it('removes debris a crash left in uploads/ (no session record, or not an upload id) once it is old', async () => {
    const debris = path.join(root, 'uploads', 'not-an-id');
    writeFileSync(debris, 'x');
    const old = new Date(Date.now() - 48 * HOUR);
    utimesSync(debris, old, old);
    const half = await store.createUpload('up/p');
    const halfDir = path.join(root, 'uploads', half.id);
    // A crash between the session's data and its record: data without a record.
    store.metadata.database.prepare('DELETE FROM uploads WHERE id = ?').run(half.id);
    utimesSync(halfDir, old, old);
    utimesSync(path.join(halfDir, 'data'), old, old);
    expect(await store.purgeUploads(new Date(Date.now() - 24 * HOUR))).toBe(2);
    expect(readdirSync(path.join(root, 'uploads'))).toEqual([]);
  });
});

describe('path refusal', () => {
  const BAD_NAMES = ['..', '../escape', '/abs', 'Upper', 'a/../../b', 'a\u0000b', '%2e%2e', 'a//b'];
  const digest = digestOf('x');

  it.each(BAD_NAMES)('repository %j is refused by every method that takes a name', async (name) => {
    const calls: (() => Promise<unknown>)[] = [
      () => store.linkBlob(name, digest),
      () => store.blobLinked(name, digest),
      () => store.unlinkBlob(name, digest),
      () => store.putManifest(name, Buffer.from('{}'), { digest: digestOf('{}'), mediaType: 'x' }),
      () => store.statManifest(name, digest),
      () => store.setTag(name, 'v1', digest),
      () => store.resolveTag(name, 'v1'),
      () => store.listTags(name),
      () => store.listReferrers(name, digest),
      () => store.repositoryExists(name),
      () => store.deleteRepository(name),
    ];
    for (const call of calls) await expect(call()).rejects.toThrow(/refusing/);
    await expect(store.deleteNamespace(name)).rejects.toThrow(/refusing/);
    expect(readdirSync(tmp.path)).toEqual(['data']);
    expect(await store.listRepositories()).toEqual([]);
  });

  it.each(['..', '../../etc/passwd', '.hidden', 'a/b', ''])('tag %j is refused', async (tag) => {
    await expect(store.setTag('ok', tag, digest)).rejects.toThrow(/refusing/);
    await expect(store.resolveTag('ok', tag)).rejects.toThrow(/refusing/);
    await expect(store.deleteTag('ok', tag)).rejects.toThrow(/refusing/);
    expect(await store.listRepositories()).toEqual([]);
  });

  it.each([`sha256:../../${'a'.repeat(58)}`, 'sha256:abc', `SHA256:${'a'.repeat(64)}`, `md5:${'a'.repeat(32)}`])('digest %j is refused', async (bad) => {
    const d = bad as Digest;
    await expect(store.statBlob(d)).rejects.toThrow(/refusing/);
    await expect(store.openBlob(d)).rejects.toThrow(/refusing/);
    await expect(store.deleteBlob(d)).rejects.toThrow(/refusing/);
    await expect(store.linkBlob('ok', d)).rejects.toThrow(/refusing/);
    await expect(store.ingestBlob(Readable.from([Buffer.from('x')]), { digest: d })).rejects.toBeInstanceOf(RegistryError);
    expect(files(path.join(root, 'blobs'))).toEqual([]);
  });
});

describe('durability: data synced before the rename, the directory after', () => {
  /**
   * A Syncs that records, at each call, what the disk looks like: a file must be synced while it
   * still sits under its temporary name with all its bytes; a directory after the new name is in it.
   */
  function recorder(): { syncs: Syncs; events: string[] } {
    const events: string[] = [];
    const rel = (p: string): string => path.relative(root, p);
    return {
      events,
      syncs: {
        file: async (file) => {
          const top = rel(file).split(path.sep)[0];
          events.push(top?.startsWith('metadata.db') ? `file ${top}` : `file ${top} ${readFileSync(file).toString('utf8')}`);
        },
        dir: async (dir) => {
          events.push(`dir ${rel(dir)} [${readdirSync(dir).filter((n) => !/^[0-9a-f-]{36}$/.test(n)).join(',')}]`);
        },
      },
    };
  }

  function blobDir(digest: Digest): string {
    const hex = digest.slice('sha256:'.length);
    return `blobs/sha256/${hex.slice(0, 2)}`;
  }

  it('a pushed blob (monolithic and chunked) and a cache-fill writer: synced under its temporary name, its new directories and its directory after the rename', async () => {
    const { syncs, events } = recorder();
    const durable = await openEmbeddedStore(root, syncs);
    const digest = digestOf('monolithic');
    await durable.ingestBlob(Readable.from([Buffer.from('monolithic')]), { digest });
    const hex = digest.slice('sha256:'.length);
    // ...and then its record, in the database's log: content first, so a record never names missing bytes.
    expect(events).toEqual([`file _tmp monolithic`, 'dir blobs [sha256]', `dir blobs/sha256 [${hex.slice(0, 2)}]`, `dir ${blobDir(digest)} [${hex}]`, 'file metadata.db-wal']);

    events.length = 0;
    const upload = await durable.createUpload('dur/a');
    expect(events).toEqual([]); // session state is not synced
    const chunkedDigest = digestOf('chunked');
    await durable.completeUpload(await durable.appendUpload(upload, Readable.from([Buffer.from('chunked')])), chunkedDigest);
    expect(events[0]).toBe('file uploads chunked');
    expect(events.filter((e) => e.startsWith('dir')).at(-1)).toMatch(new RegExp(`^dir ${blobDir(chunkedDigest)} \\[.*${chunkedDigest.slice(7)}`));
    expect(events.at(-1)).toBe('file metadata.db-wal');

    events.length = 0;
    const filledDigest = digestOf('filled');
    const writer = await durable.openBlobWriter({ digest: filledDigest, size: 6 });
    await writer.write([Buffer.from('filled')]);
    await writer.commit();
    expect(events[0]).toBe('file _tmp filled');
    expect(events.filter((e) => e.startsWith('dir')).at(-1)).toMatch(new RegExp(`^dir ${blobDir(filledDigest)} \\[.*${filledDigest.slice(7)}`));
    expect(events.at(-1)).toBe('file metadata.db-wal');
  });

  it('tags, links and revisions: the database log is synced before the write resolves (off the event loop); pull times are not synced', async () => {
    const { syncs, events } = recorder();
    const durable = await openEmbeddedStore(root, syncs);
    expect(durable.metadata.database.pragma('journal_mode', { simple: true })).toBe('wal');
    const walSyncs = () => events.filter((e) => e.startsWith('file metadata.db-wal')).length;
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf('c'), size: 1 }, layers: [] }));
    const digest = digestOf(bytes);
    await durable.linkBlob('dur/b', digest);
    expect(walSyncs()).toBe(1);
    await durable.putManifest('dur/b', bytes, { digest, mediaType: 'application/vnd.oci.image.manifest.v1+json' });
    // the manifest's bytes (a blob: synced under its temporary name), its blob record, its revision
    expect(events.filter((e) => e.startsWith('file _tmp'))).toEqual([`file _tmp ${bytes.toString('utf8')}`]);
    expect(walSyncs()).toBe(3);
    await durable.setTag('dur/b', 'v1', digest);
    expect(walSyncs()).toBe(4);
    // Writes committed together share one sync (group commit), each resolving only after it.
    await Promise.all(['a', 'b', 'c', 'd'].map((t) => durable.setTag('dur/b', t, digest)));
    expect(walSyncs()).toBeGreaterThanOrEqual(5);
    expect(walSyncs()).toBeLessThanOrEqual(6);
    const at = new Date(Date.now() - 5000);
    const before = walSyncs();
    await durable.recordPull('dur/b', digest, at);
    expect(walSyncs()).toBe(before);
    const again = await openEmbeddedStore(root);
    expect(await again.blobLinked('dur/b', digest)).toBe(true);
    expect(await again.resolveTag('dur/b', 'v1')).toBe(digest);
    expect((await again.statManifest('dur/b', digest))?.size).toBe(bytes.length);
    expect((await again.lastPulled('dur/b', digest))?.getTime()).toBe(at.getTime());
    await again.close();
  });
});
