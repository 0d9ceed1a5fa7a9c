// The pull-through download on a real store in a temporary directory, fed by a stream the test
// controls: the worker-thread hasher, the in-memory window for clients at the download's heels,
// the file for clients behind it, the last byte held until the verified commit, and the cut on
// a mismatch. (Against real upstreams: test/integration/proxy*.test.ts.)
import { createHash } from 'node:crypto';
import { appendFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestOf, type Digest } from '../../src/registry/digest.js';
import { BlobDownload } from '../../src/registry/proxy/blob-download.js';
import { FileHasher, hashWorkerRunning, setHashWorkerIdleTime } from '../../src/registry/storage/file-hasher.js';
import { EmbeddedStore, openEmbeddedStore } from '../../src/registry/storage/embedded.js';
import { StorageError } from '../../src/registry/storage/errors.js';
import { seededBytes } from '../helpers/random-bytes.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';

let tmp: TempDir;
let store: EmbeddedStore;

beforeEach(async () => {
  tmp = makeTempDir('layover-download-');
  store = await openEmbeddedStore(path.join(tmp.path, 'data'));
});
afterEach(() => {
  tmp.cleanup();
});

const MiB = 1024 * 1024;

function hex(bytes: Buffer, algorithm: 'sha256' | 'sha512' = 'sha256'): string {
  return createHash(algorithm).update(bytes).digest('hex');
}

describe('FileHasher (worker thread)', () => {
  it('hashes a file as it grows, for sha256 and sha512, with downloads interleaved', async () => {
    const a = seededBytes('hasher-a', 3 * MiB + 17);
    const b = seededBytes('hasher-b', 2 * MiB + 5);
    const fa = path.join(tmp.path, 'a');
    const fb = path.join(tmp.path, 'b');
    writeFileSync(fa, '');
    writeFileSync(fb, '');
    const ha = new FileHasher(fa, 'sha256');
    const hb = new FileHasher(fb, 'sha512');
    for (let off = 0, step = 0; off < Math.max(a.length, b.length); off += 700_001, step++) {
      if (off < a.length) {
        appendFileSync(fa, a.subarray(off, off + 700_001));
        ha.advance(Math.min(a.length, off + 700_001));
      }
      if (off < b.length) {
        appendFileSync(fb, b.subarray(off, off + 700_001));
        hb.advance(Math.min(b.length, off + 700_001));
      }
    }
    const [da, db] = await Promise.all([ha.digest(a.length), hb.digest(b.length)]);
    expect(da).toBe(hex(a));
    expect(db).toBe(hex(b, 'sha512'));
  });

  it('rejects when the file is shorter than the size it is asked to hash; the worker keeps serving', async () => {
    const file = path.join(tmp.path, 'short');
    writeFileSync(file, Buffer.alloc(1000, 7));
    await expect(new FileHasher(file, 'sha256').digest(2000)).rejects.toThrow(/shorter/);
    const ok = new FileHasher(file, 'sha256');
    expect(await ok.digest(1000)).toBe(hex(Buffer.alloc(1000, 7)));
  });

  it('an idle worker is ended, and the next hash starts a new one', async () => {
    const file = path.join(tmp.path, 'idle');
    writeFileSync(file, Buffer.alloc(3000, 9));
    setHashWorkerIdleTime(50);
    try {
      expect(await new FileHasher(file, 'sha256').digest(3000)).toBe(hex(Buffer.alloc(3000, 9)));
      await until(() => !hashWorkerRunning(), 3000);
      expect(await new FileHasher(file, 'sha256').digest(3000)).toBe(hex(Buffer.alloc(3000, 9)));
      expect(hashWorkerRunning()).toBe(true);
    } finally {
      setHashWorkerIdleTime(30_000);
    }
  });

  it('an aborted hash is dropped and others go on', async () => {
    const file = path.join(tmp.path, 'f');
    writeFileSync(file, Buffer.alloc(4096, 1));
    const dropped = new FileHasher(file, 'sha256');
    dropped.advance(2048);
    dropped.abort();
    expect(await new FileHasher(file, 'sha256').digest(4096)).toBe(hex(Buffer.alloc(4096, 1)));
  });
});

/** Collects a stream, noting how many bytes had arrived when `mark()` is called. */
function collect(stream: Readable): { done: Promise<Buffer>; received(): number } {
  const chunks: Buffer[] = [];
  let received = 0;
  const done = new Promise<Buffer>((resolve, reject) => {
    stream.on('data', (c: Buffer) => {
      chunks.push(c);
      received += c.length;
    });
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
  return { done, received: () => received };
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Feeds `bytes` to `source` in upstream-sized chunks, yielding between them. */
async function feed(source: PassThrough, bytes: Buffer, from: number, to: number): Promise<void> {
  for (let off = from; off < to; off += 64 * 1024) {
    const chunk = bytes.subarray(off, Math.min(to, off + 64 * 1024));
    if (!source.write(chunk)) await new Promise((r) => source.once('drain', r));
    await new Promise((r) => setImmediate(r));
  }
}

async function startDownload(bytes: Buffer, digest: Digest = digestOf(bytes)): Promise<{ source: PassThrough; download: BlobDownload }> {
  const source = new PassThrough();
  const writer = await store.openBlobWriter({ digest, size: bytes.length });
  const download = await BlobDownload.start(source, bytes.length, writer);
  return { source, download };
}

describe('BlobDownload', () => {
  it('serves a reader at its heels before the end, holds the last byte until the commit, and stores the blob', async () => {
    const bytes = seededBytes('download-heels', 6 * MiB + 123);
    const { source, download } = await startDownload(bytes);
    const reader = collect(download.open());
    await feed(source, bytes, 0, 3 * MiB);
    await until(() => reader.received() >= 2 * MiB);
    expect(download.committed).toBe(false);
    await feed(source, bytes, 3 * MiB, bytes.length);
    source.end();
    const got = await reader.done;
    expect(got.equals(bytes)).toBe(true);
    await download.settled;
    expect(download.committed).toBe(true);
    expect(await store.statBlob(digestOf(bytes))).toEqual({ digest: digestOf(bytes), size: bytes.length });
    // Over and unread: its handle is closed, so it refuses new readers (they read the store).
    await until(() => download.released);
    expect(() => download.open()).toThrow(/released/);
  });

  it('a reader that arrives late, or pauses far behind the window, reads the file and then catches up exactly', async () => {
    const bytes = seededBytes('download-late', 12 * MiB + 7);
    const { source, download } = await startDownload(bytes);
    const slow = download.open();
    slow.pause();
    await feed(source, bytes, 0, 8 * MiB);
    // 8 MiB in: far beyond the 1 MiB window behind the disk.
    const late = collect(download.open());
    const ranged = collect(download.open({ start: 5 * MiB + 3, end: 10 * MiB }));
    const slowAll = collect(slow);
    slow.resume();
    await feed(source, bytes, 8 * MiB, bytes.length);
    source.end();
    expect((await late.done).equals(bytes)).toBe(true);
    expect((await slowAll.done).equals(bytes)).toBe(true);
    expect((await ranged.done).equals(bytes.subarray(5 * MiB + 3, 10 * MiB + 1))).toBe(true);
    await download.settled;
    expect(download.committed).toBe(true);
  });

  it('bytes that do not match the digest: readers are cut short of the end and nothing is stored', async () => {
    const bytes = seededBytes('download-corrupt', 2 * MiB);
    const claimed = digestOf(Buffer.from('something else'));
    const { source, download } = await startDownload(bytes, claimed);
    const reader = collect(download.open());
    await feed(source, bytes, 0, bytes.length);
    source.end();
    await expect(reader.done).rejects.toThrow(/did not match/);
    expect(reader.received()).toBeLessThan(bytes.length);
    await download.settled;
    expect(download.error?.message).toMatch(/did not match/);
    expect(await store.statBlob(claimed)).toBeUndefined();
    expect(() => download.open()).toThrow(/did not match/);
  });

  it('an empty body for a digest of other bytes: a reader gets no complete answer, the error instead, and nothing is stored', async () => {
    const claimed = digestOf(Buffer.from('not empty'));
    const { source, download } = await startDownload(Buffer.alloc(0), claimed);
    const reader = collect(download.open());
    let ended = false;
    void reader.done.then(() => (ended = true), () => undefined);
    // Before the verdict, a reader of 0 bytes must still be waiting: its end would be a whole (empty) blob.
    await new Promise((r) => setTimeout(r, 50));
    expect(ended).toBe(false);
    source.end();
    await expect(reader.done).rejects.toThrow(/did not match/);
    await download.settled;
    expect(await store.statBlob(claimed)).toBeUndefined();
  });

  it('the empty blob itself is served once verified', async () => {
    const empty = Buffer.alloc(0);
    const { source, download } = await startDownload(empty);
    const reader = collect(download.open());
    source.end();
    expect((await reader.done).length).toBe(0);
    await download.settled;
    expect(download.committed).toBe(true);
    expect(await store.statBlob(digestOf(empty))).toEqual({ digest: digestOf(empty), size: 0 });
  });

  it('an upstream that sends more than it declared is cut at once: no byte past the size is written, nothing stored', async () => {
    const bytes = seededBytes('download-oversend', MiB);
    const { source, download } = await startDownload(bytes);
    const reader = collect(download.open());
    const extra = seededBytes('download-oversend-extra', 4 * MiB);
    // Not awaited: once the download cuts the source, a write waiting for 'drain' waits forever.
    source.on('error', () => undefined);
    void feed(source, Buffer.concat([bytes, extra]), 0, bytes.length + 256 * 1024);
    // The source never ends (an endless body): the download must not wait for it.
    await Promise.race([download.settled, new Promise((_, reject) => setTimeout(() => reject(new Error('still downloading')), 3000))]);
    expect(download.error?.message).toMatch(/more than the \d+ bytes/);
    await expect(reader.done).rejects.toThrow();
    expect(await store.statBlob(digestOf(bytes))).toBeUndefined();
  });

  it('a disk slower than the upstream pauses the upstream: about 1 MiB waits, and every byte still lands in order', async () => {
    const bytes = seededBytes('download-backpressure', 8 * MiB + 5);
    const digest = digestOf(bytes);
    const inner = await store.openBlobWriter({ digest, size: bytes.length });
    let open: () => void = () => undefined;
    let gate = new Promise<void>((r) => (open = r));
    const writes: number[] = [];
    const writer = {
      path: inner.path,
      get written() {
        return inner.written;
      },
      async write(chunks: Buffer[]) {
        writes.push(chunks.reduce((n, c) => n + c.length, 0));
        await gate;
        await inner.write(chunks);
      },
      commit: () => inner.commit(),
      abort: () => inner.abort(),
    };
    const source = new PassThrough({ highWaterMark: 64 * 1024 });
    const download = await BlobDownload.start(source, bytes.length, writer);
    const reader = collect(download.open());
    // Everything offered at once; the first write is held at the gate.
    for (let off = 0; off < bytes.length; off += 64 * 1024) source.write(bytes.subarray(off, Math.min(bytes.length, off + 64 * 1024)));
    source.end();
    await until(() => source.isPaused());
    await new Promise((r) => setTimeout(r, 50));
    // The first write's chunk plus ~1 MiB waiting; the rest stays in the source.
    expect(download.bytesReceived).toBeLessThanOrEqual(MiB + 2 * 64 * 1024);
    expect(download.bytesReceived).toBeLessThan(bytes.length);
    open();
    gate = Promise.resolve();
    expect((await reader.done).equals(bytes)).toBe(true);
    await download.settled;
    expect(download.committed).toBe(true);
    // Chunks that arrived during a write went into the next one together.
    expect(writes.length).toBeLessThan(bytes.length / (64 * 1024));
    expect(writes.reduce((a, b) => a + b, 0)).toBe(bytes.length);
  });

  /** The store's writer with its commit held until `open()`, and made to fail with `fail`. */
  async function heldWriter(bytes: Buffer, digest: Digest = digestOf(bytes)) {
    const inner = await store.openBlobWriter({ digest, size: bytes.length });
    let open: () => void = () => undefined;
    const gate = new Promise<void>((r) => (open = r));
    let commits = 0;
    const control = { open: () => open(), fail: undefined as Error | undefined, commitStarted: () => commits > 0 };
    const writer = {
      path: inner.path,
      get written() {
        return inner.written;
      },
      write: (chunks: Buffer[]) => inner.write(chunks),
      verify: () => (inner.verify as () => Promise<void>)(),
      async commit() {
        commits += 1;
        await gate;
        if (control.fail) throw control.fail;
        return inner.commit();
      },
      abort: () => inner.abort(),
    };
    return { writer, control };
  }

  it('a client that releases on the verdict gets its last byte while the commit runs; a reader during the commit gets the same bytes; a follower waits for the commit', async () => {
    const bytes = seededBytes('download-verified', 5 * MiB + 31);
    const { writer, control } = await heldWriter(bytes);
    const source = new PassThrough();
    const download = await BlobDownload.start(source, bytes.length, writer);
    const client = collect(download.open(undefined, 'verified'));
    const follower = collect(download.open());
    let followerEnded = false;
    void follower.done.then(() => (followerEnded = true), () => undefined);
    await feed(source, bytes, 0, bytes.length);
    source.end();
    expect((await client.done).equals(bytes)).toBe(true);
    expect(control.commitStarted()).toBe(true);
    expect(download.committed).toBe(false);
    // Joined during the commit (the in-flight download, not a second fetch): the whole blob, byte-exact.
    const second = collect(download.open(undefined, 'verified'));
    expect((await second.done).equals(bytes)).toBe(true);
    const ranged = collect(download.open({ start: MiB + 1, end: bytes.length - 1 }, 'verified'));
    expect((await ranged.done).equals(bytes.subarray(MiB + 1))).toBe(true);
    // Whoever links on completion still has everything but the last byte, and no end.
    await new Promise((r) => setTimeout(r, 50));
    expect(followerEnded).toBe(false);
    expect(follower.received()).toBe(bytes.length - 1);
    expect(await store.statBlob(digestOf(bytes))).toBeUndefined();
    control.open();
    expect((await follower.done).equals(bytes)).toBe(true);
    await download.settled;
    expect(download.committed).toBe(true);
    expect(await store.statBlob(digestOf(bytes))).toEqual({ digest: digestOf(bytes), size: bytes.length });
  });

  it('while a commit runs behind its client, the store\'s reads of that digest wait for it (read your writes)', async () => {
    const bytes = seededBytes('download-commit-behind', 2 * MiB + 1);
    const digest = digestOf(bytes);
    const { writer, control } = await heldWriter(bytes);
    const source = new PassThrough();
    const download = await BlobDownload.start(source, bytes.length, writer, {
      onVerified: () => store.commitBehind(digest, download.settled),
      onCommitted: () => store.linkBlob('mirror/repo', digest),
    });
    const client = collect(download.open(undefined, 'verified'));
    await feed(source, bytes, 0, bytes.length);
    source.end();
    expect((await client.done).equals(bytes)).toBe(true);
    // The client is done; the commit is held. Reads of the digest wait rather than say "absent".
    let answered = false;
    const reads = Promise.all([store.statBlob(digest), store.blobLinked('mirror/repo', digest), store.repositoriesLinking(digest)]).finally(() => (answered = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(answered).toBe(false);
    // Another digest is not held up.
    expect(await store.statBlob(digestOf(Buffer.from('unrelated')))).toBeUndefined();
    control.open();
    expect(await reads).toEqual([{ digest, size: bytes.length }, true, ['mirror/repo']]);
  });

  it('a commit that fails after the verdict: verified clients keep their whole bytes, a follower is cut, nothing is stored', async () => {
    const bytes = seededBytes('download-commit-fails', 3 * MiB + 3);
    const { writer, control } = await heldWriter(bytes);
    const source = new PassThrough();
    const download = await BlobDownload.start(source, bytes.length, writer);
    const follower = collect(download.open());
    const followerCut = expect(follower.done).rejects.toThrow(/storage failed/);
    const slow = download.open(undefined, 'verified');
    slow.pause();
    await feed(source, bytes, 0, bytes.length);
    source.end();
    await until(() => control.commitStarted());
    control.fail = new Error('disk gone');
    control.open();
    await download.settled;
    // Told as our storage's failure, not the upstream's.
    expect(download.error).toBeInstanceOf(StorageError);
    // A reader still behind when the commit failed reads the verified bytes to the end.
    const slowAll = collect(slow);
    slow.resume();
    expect((await slowAll.done).equals(bytes)).toBe(true);
    await followerCut;
    expect(follower.received()).toBeLessThan(bytes.length);
    expect(await store.statBlob(digestOf(bytes))).toBeUndefined();
    expect(() => download.open(undefined, 'verified')).toThrow(/storage failed/);
  });

  it('released on the verdict, bytes that do not match the digest still never make a complete answer', async () => {
    const bytes = seededBytes('download-verified-corrupt', 2 * MiB + 9);
    const claimed = digestOf(Buffer.from('other bytes'));
    const source = new PassThrough();
    const writer = await store.openBlobWriter({ digest: claimed, size: bytes.length });
    const download = await BlobDownload.start(source, bytes.length, writer);
    const reader = collect(download.open(undefined, 'verified'));
    await feed(source, bytes, 0, bytes.length);
    source.end();
    await expect(reader.done).rejects.toThrow(/did not match/);
    expect(reader.received()).toBeLessThan(bytes.length);
    await download.settled;
    expect(download.committed).toBe(false);
    expect(await store.statBlob(claimed)).toBeUndefined();
    const empty = await startDownload(Buffer.alloc(0), claimed);
    const emptyReader = collect(empty.download.open(undefined, 'verified'));
    empty.source.end();
    await expect(emptyReader.done).rejects.toThrow(/did not match/);
  });

  it('an upstream body that closes before its end, without an error, fails the download and stores nothing', async () => {
    const bytes = seededBytes('download-premature', 2 * MiB);
    const { source, download } = await startDownload(bytes);
    const reader = collect(download.open());
    await feed(source, bytes, 0, MiB);
    source.destroy();
    await expect(reader.done).rejects.toThrow();
    await download.settled;
    expect(download.error?.message).toMatch(/premature close/i);
    expect(await store.statBlob(digestOf(bytes))).toBeUndefined();
  });

  it('an upstream that breaks off fails every reader and stores nothing', async () => {
    const bytes = seededBytes('download-broken', 3 * MiB);
    const { source, download } = await startDownload(bytes);
    const reader = collect(download.open());
    await feed(source, bytes, 0, MiB);
    source.destroy(new Error('connection reset'));
    await expect(reader.done).rejects.toThrow(/connection reset/);
    await download.settled;
    expect(download.committed).toBe(false);
    expect(await store.statBlob(digestOf(bytes))).toBeUndefined();
  });
});
