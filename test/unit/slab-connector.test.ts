// Upstream sockets that read into reused slabs (src/registry/proxy/slab-connector.ts), over real
// loopback connections: bytes arrive exact; a slab is reused only once its socket has moved on
// and every byte read into it was given back; a chunk still held is never overwritten; and the
// blob download gives chunks back only once no client write can still be reading them.
import net from 'node:net';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BlobSink } from '../../src/registry/blob-response.js';
import { digestOf } from '../../src/registry/digest.js';
import { BlobDownload } from '../../src/registry/proxy/blob-download.js';
import { emptySlabPool, pooledSlabs, releaseChunk, slabReads } from '../../src/registry/proxy/slab-connector.js';
import { openEmbeddedStore, type EmbeddedStore } from '../../src/registry/storage/embedded.js';
import { seededBytes } from '../helpers/random-bytes.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';

const MiB = 1024 * 1024;

/** A loopback server that writes the bytes queued for the next connection, then closes it. */
let server: net.Server;
let port = 0;
const queued: Buffer[] = [];

beforeAll(async () => {
  server = net.createServer((socket) => socket.end(queued.shift() ?? Buffer.alloc(0)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});
beforeEach(() => emptySlabPool());

/** A connection reading into slabs; its chunks are what undici would be given. */
function connect(bytes: Buffer): net.Socket {
  queued.push(bytes);
  return net.connect({ host: '127.0.0.1', port, onread: slabReads() });
}

function readAll(socket: Readable): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(chunks));
    socket.on('error', reject);
  });
}

describe('slab reads', () => {
  it('deliver the exact bytes as views of slabs that grow to 1 MiB; nothing given back, nothing reused', async () => {
    const bytes = seededBytes('slab-exact', 6 * MiB + 4321);
    const chunks = await readAll(connect(bytes));
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
    const slabSizes = new Set(chunks.map((c) => c.buffer.byteLength));
    expect(Math.max(...slabSizes)).toBe(MiB);
    expect(Math.min(...slabSizes)).toBe(64 * 1024);
    // A chunk is a view: many chunks share one slab.
    expect(new Set(chunks.map((c) => c.buffer)).size).toBeLessThan(chunks.length / 4);
    expect(pooledSlabs()).toBe(0);
  });

  it('a slab returns to the pool once its socket moved on and all of it is given back, and the next socket reuses it', async () => {
    const bytes = seededBytes('slab-reuse', 5 * MiB);
    const chunks = await readAll(connect(bytes));
    const full = chunks.filter((c) => c.buffer.byteLength === MiB);
    const slabs = [...new Set(full.map((c) => c.buffer))];
    // All but the last full slab are retired (the socket moved on); give back all but one chunk of the first.
    const [keep, ...rest] = full.filter((c) => c.buffer === slabs[0]);
    for (const c of [...rest, ...full.filter((c) => c.buffer !== slabs[0])]) releaseChunk(c);
    const retiredAndFree = slabs.length - 2; // not the first (one chunk held), not the last (still current)
    expect(pooledSlabs()).toBe(retiredAndFree);

    // The chunk still held keeps its slab out of the pool: more reads never overwrite it.
    const kept = Buffer.from(keep as Buffer);
    const more = seededBytes('slab-reuse-2', 8 * MiB);
    const next = await readAll(connect(more));
    expect(Buffer.concat(next).equals(more)).toBe(true);
    expect((keep as Buffer).equals(kept)).toBe(true);
    // The second socket read into the pooled slabs.
    const reused = new Set(next.map((c) => c.buffer).filter((b) => slabs.includes(b)));
    expect(reused.size).toBe(retiredAndFree);
    expect(reused.has(slabs[0] as ArrayBufferLike)).toBe(false);

    // Given back at last, the first slab is free too; a chunk from elsewhere is ignored.
    releaseChunk(keep as Buffer);
    releaseChunk(Buffer.alloc(10));
    expect(pooledSlabs()).toBe(1);
  });
});

describe('BlobDownload on slab reads', () => {
  let tmp: TempDir;
  let store: EmbeddedStore;
  beforeEach(async () => {
    tmp = makeTempDir('layover-slabs-');
    store = await openEmbeddedStore(path.join(tmp.path, 'data'));
  });
  afterEach(() => tmp.cleanup());

  /**
   * A client whose socket takes one batch, the first after `lateAfter` bytes, only 60 ms after
   * the write (it copies the bytes then, as a kernel would), and every other batch at once.
   * Pieces given back while that write is in flight would be read into again meanwhile, and it
   * would receive other bytes.
   */
  function lateCopySink(lateAfter: number, lateMs = 60): BlobSink & { done: Promise<Buffer>; wasLate(): boolean; unstick(): void } {
    const copies: Buffer[] = [];
    let taken = 0;
    let late = false;
    let unstick = () => undefined as void;
    let finish: (b: Buffer) => void = () => undefined;
    let fail: (e: Error) => void = () => undefined;
    const done = new Promise<Buffer>((resolve, reject) => {
      finish = resolve;
      fail = reject;
    });
    return {
      releasesChunks: true,
      done,
      wasLate: () => late,
      unstick: () => unstick(),
      begin() {},
      write: (chunks) => {
        const delay = !late && taken >= lateAfter ? lateMs : 0;
        if (delay) late = true;
        for (const c of chunks) taken += c.length;
        return new Promise((resolve) => {
          const take = () => {
            copies.push(Buffer.concat(chunks));
            resolve();
          };
          // Infinity: a client that stops reading, until unstick().
          if (delay === Infinity) unstick = take;
          else setTimeout(take, delay);
        });
      },
      until: (p) => p,
      end: () => finish(Buffer.concat(copies)),
      abort: (err) => fail(err ?? new Error('aborted')),
    };
  }

  async function download(bytes: Buffer): Promise<BlobDownload> {
    const writer = await store.openBlobWriter({ digest: digestOf(bytes), size: bytes.length });
    return BlobDownload.start(connect(bytes), bytes.length, writer);
  }

  it('a client at the heels whose writes call back late gets the exact bytes; pieces are given back after', async () => {
    const bytes = seededBytes('slab-download-late-copy', 24 * MiB + 99);
    const d = await download(bytes);
    // Late while in the middle of the 1 MiB slabs; the download goes on meanwhile.
    const slow = lateCopySink(4 * MiB);
    const fast = lateCopySink(Infinity);
    const sent = Promise.all([d.send(slow, 0, bytes.length - 1), d.send(fast, 0, bytes.length - 1)]);
    const [a, b] = await Promise.all([slow.done, fast.done]);
    await sent;
    await d.settled;
    expect(d.committed).toBe(true);
    expect(a.equals(bytes)).toBe(true);
    expect(b.equals(bytes)).toBe(true);
    expect(slow.wasLate()).toBe(true);
    expect(pooledSlabs()).toBeGreaterThan(0);
  });

  it('a client that stops reading pins only its own batch: the rest is given back meanwhile', async () => {
    const bytes = seededBytes('slab-download-stuck', 24 * MiB + 1);
    const d = await download(bytes);
    const stuck = lateCopySink(4 * MiB, Infinity);
    const sending = d.send(stuck, 0, bytes.length - 1);
    await d.settled;
    expect(d.committed).toBe(true);
    // The download ended with one write still in flight; everything outside it went back.
    expect(stuck.wasLate()).toBe(true);
    expect(pooledSlabs()).toBeGreaterThan(0);
    stuck.unstick();
    await sending;
    expect((await stuck.done).equals(bytes)).toBe(true);
  });

  it('a reader that keeps its chunks (a stream) stops all giving back: nothing is reused under it', async () => {
    const bytes = seededBytes('slab-download-stream', 8 * MiB + 5);
    const d = await download(bytes);
    const stream = d.open();
    const got = await readAll(stream);
    await d.settled;
    expect(Buffer.concat(got).equals(bytes)).toBe(true);
    expect(pooledSlabs()).toBe(0);
    // And the chunks it holds are intact after another download read through fresh slabs.
    const copy = Buffer.concat(got);
    const other = seededBytes('slab-download-stream-2', 8 * MiB);
    const d2 = await download(other);
    await d2.settled;
    expect(Buffer.concat(got).equals(copy)).toBe(true);
  });
});
