// The s3 content driver against a real Ceph RGW: what only an object store can get wrong.
// Chunked sessions continued by another replica (a second driver on the same bucket), chunks
// under S3's 5 MiB part minimum, writers that die midway leaving nothing visible, ranged and
// positional reads, and presigned URLs.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Config } from '../../src/config/config.js';
import { digestOf, type Digest } from '../../src/registry/digest.js';
import { RegistryError } from '../../src/registry/errors.js';
import { checkBucket, createS3Client } from '../../src/registry/storage/content/s3-client.js';
import { S3Content } from '../../src/registry/storage/content/s3.js';
import { StreamingReader } from '../../src/registry/storage/content/s3-io.js';
import { SocketObjectReader } from '../../src/registry/storage/content/s3-socket-reader.js';
import { ObjectStoreUnavailableError } from '../../src/registry/storage/errors.js';
import type { BlobReader } from '../../src/registry/storage/store.js';
import { waitFor } from '../helpers/wait-for.js';
import { spawnLayover } from '../helpers/layover.js';
import { uploadBlob } from '../helpers/registry-client.js';
import http from 'node:http';
import type { UploadData } from '../../src/registry/storage/content/types.js';
import { startCephRgw, type CephRgw } from '../helpers/ceph-rgw.js';
import { seededBytes } from '../helpers/random-bytes.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';

let rgw: CephRgw;
let admin: S3Client;
let work: TempDir;
const MiB = 2 ** 20;

beforeAll(async () => {
  rgw = await startCephRgw();
  admin = rgw.client();
  work = makeTempDir();
});

afterAll(async () => {
  await rgw?.close();
  work?.cleanup();
});

function s3Config(bucket: string, prefix = ''): S3Config {
  return {
    endpoint: rgw.endpoint,
    region: 'us-east-1',
    bucket,
    prefix,
    forcePathStyle: true,
    redirect: false,
    redirectTTLMs: 60_000,
  };
}

/** A driver as one replica holds it (its own client, its own spool directory). */
async function replica(bucket: string, prefix = '', name = 'r1'): Promise<S3Content> {
  process.env.AWS_ACCESS_KEY_ID = rgw.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = rgw.secretAccessKey;
  const config = s3Config(bucket, prefix);
  const client = createS3Client(config);
  await checkBucket(client, config);
  return new S3Content(client, { bucket, prefix, spoolDir: path.join(work.path, `${bucket}-${name}`), redirectTTLMs: 60_000 }).init();
}

async function keysIn(bucket: string): Promise<string[]> {
  const res = await admin.send(new ListObjectsV2Command({ Bucket: bucket }));
  return (res.Contents ?? []).map((o) => o.Key ?? '').sort();
}

async function readAll(stream: Readable | undefined): Promise<Buffer> {
  if (!stream) throw new Error('no stream');
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function chunksOf(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

describe('s3 content driver on Ceph RGW', () => {
  it('ingests small and multipart-sized blobs under their digest and reads them whole, by range and positionally', async () => {
    const bucket = await rgw.createBucket('s3-ingest');
    const store = await replica(bucket, 'reg/');
    const small = seededBytes('s3-small', 3000);
    const large = seededBytes('s3-large', 19 * MiB + 123);
    for (const bytes of [small, large]) {
      const digest = digestOf(bytes);
      expect(await store.ingest(Readable.from(chunksOf(bytes, 64 * 1024)), { digest, size: bytes.length })).toEqual({ digest, size: bytes.length });
      expect((await store.stat(digest))?.size).toBe(bytes.length);
      expect((await readAll(await store.open(digest))).equals(bytes)).toBe(true);
      const part = await readAll(await store.open(digest, { start: 1000, end: 2499 }));
      expect(part.equals(bytes.subarray(1000, 2500))).toBe(true);
      const reader = await store.openReader(digest);
      const buffer = Buffer.alloc(700);
      expect(reader).toBeDefined();
      expect(await reader!.read(buffer, 700, 100)).toBe(700);
      expect(buffer.equals(bytes.subarray(100, 800))).toBe(true);
      expect(await reader!.read(buffer, 700, 800)).toBe(700); // continues the same stream
      expect(buffer.equals(bytes.subarray(800, 1500))).toBe(true);
      expect(await reader!.read(buffer, 10, 5)).toBe(10); // and reopens elsewhere
      expect(buffer.subarray(0, 10).equals(bytes.subarray(5, 15))).toBe(true);
      expect(await reader!.read(buffer, 700, bytes.length)).toBe(0);
      await reader!.close();
    }
    // Only the two blob keys under the prefix: no temporary object is left.
    const keys = await keysIn(bucket);
    expect(keys).toEqual([digestOf(small), digestOf(large)].map((d) => `reg/blobs/sha256/${d.slice(7, 9)}/${d.slice(7)}`).sort());
    const listed: Digest[] = [];
    for await (const d of store.list()) listed.push(d);
    expect(listed.sort()).toEqual([digestOf(small), digestOf(large)].sort());
    expect(await store.freeBytes()).toBeUndefined();
    await store.delete(digestOf(small));
    expect(await store.stat(digestOf(small))).toBeUndefined();
    expect(await store.open(digestOf(small))).toBeUndefined();
    await store.close();
  });

  it('a wrong digest or size stores nothing, small or large, and leaves no object behind', async () => {
    const bucket = await rgw.createBucket('s3-bad');
    const store = await replica(bucket);
    for (const size of [500, 12 * MiB]) {
      const bytes = seededBytes(`s3-bad-${size}`, size);
      const wrong = digestOf(Buffer.from('something else'));
      await expect(store.ingest(Readable.from([bytes]), { digest: wrong })).rejects.toMatchObject({ code: 'DIGEST_INVALID' });
      await expect(store.ingest(Readable.from([bytes]), { digest: digestOf(bytes), size: size + 1 })).rejects.toMatchObject({ code: 'SIZE_INVALID' });
      expect(await store.stat(wrong)).toBeUndefined();
    }
    expect(await keysIn(bucket)).toEqual([]);
    await store.close();
  });

  it('a bad writer never replaces good content at the blob key', async () => {
    const bucket = await rgw.createBucket('s3-overwrite');
    const store = await replica(bucket);
    const good = seededBytes('s3-good', 7 * MiB);
    const digest = digestOf(good);
    await store.ingest(Readable.from([good]), { digest });
    const evil = Buffer.from(good);
    evil[0] = (evil[0] ?? 0) ^ 1;
    await expect(store.ingest(Readable.from(chunksOf(evil, MiB)), { digest })).rejects.toBeInstanceOf(RegistryError);
    const writer = await store.openWriter({ digest, size: evil.length });
    await writer.write(chunksOf(evil, MiB));
    await expect(writer.commit()).rejects.toMatchObject({ code: 'DIGEST_INVALID' });
    expect(createHash('sha256').update(await readAll(await store.open(digest))).digest('hex')).toBe(digest.slice(7));
    await store.close();
  });

  it('a writer that dies midway (source error, abort signal) leaves nothing visible', async () => {
    const bucket = await rgw.createBucket('s3-crash');
    const store = await replica(bucket);
    const bytes = seededBytes('s3-crash', 20 * MiB);
    const digest = digestOf(bytes);
    // A source that breaks after 12 MiB: some parts of the temporary object are already stored.
    const broken = new PassThrough();
    const ingest = store.ingest(broken, { digest });
    for (const chunk of chunksOf(bytes.subarray(0, 12 * MiB), MiB)) broken.write(chunk);
    setTimeout(() => broken.destroy(new Error('client went away')), 500);
    await expect(ingest).rejects.toThrow(/client went away|abort/i);
    // Cancelled by its signal.
    const controller = new AbortController();
    const slow = new PassThrough();
    const cancelled = store.ingest(slow, { digest }, controller.signal);
    slow.write(bytes.subarray(0, 9 * MiB));
    setTimeout(() => controller.abort(), 500);
    await expect(cancelled).rejects.toThrow();
    slow.destroy();
    // The cache writer aborted midway.
    const writer = await store.openWriter({ digest, size: bytes.length });
    await writer.write(chunksOf(bytes.subarray(0, 10 * MiB), MiB));
    await writer.abort();
    expect(existsSync(writer.path)).toBe(false);
    expect(await store.stat(digest)).toBeUndefined();
    for await (const d of store.list()) expect.unreachable(`blob ${d} is visible`);
    // Whatever parts were uploaded were aborted with their multipart uploads.
    expect((await keysIn(bucket)).filter((k) => k.startsWith('blobs/'))).toEqual([]);
    await store.close();
  });

  it('the cache writer serves its spool file while uploading, and publishes on a verified commit', async () => {
    const bucket = await rgw.createBucket('s3-writer');
    const store = await replica(bucket);
    const bytes = seededBytes('s3-writer', 11 * MiB + 5);
    const digest = digestOf(bytes);
    const writer = await store.openWriter({ digest, size: bytes.length });
    for (const chunk of chunksOf(bytes, 256 * 1024)) await writer.write([chunk]);
    expect(writer.written).toBe(bytes.length);
    expect(await store.stat(digest)).toBeUndefined(); // not before commit
    expect(await writer.commit()).toEqual({ digest, size: bytes.length });
    expect((await readAll(await store.open(digest))).equals(bytes)).toBe(true);
    expect(existsSync(writer.path)).toBe(false);
    expect(await keysIn(bucket)).toEqual([`blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`]);
    await store.close();
  });

  it('the cache writer gives its verdict before it publishes; a bad verdict uploads nothing and commit() repeats it', async () => {
    const bucket = await rgw.createBucket('s3-verdict');
    const store = await replica(bucket);
    const bytes = seededBytes('s3-verdict', 9 * MiB + 3);
    const digest = digestOf(bytes);
    const writer = await store.openWriter({ digest, size: bytes.length });
    await writer.write(chunksOf(bytes, MiB));
    await (writer.verify as () => Promise<void>)();
    // Verified, not yet published: another replica cannot see it, the spool file is still there to read.
    expect(await store.stat(digest)).toBeUndefined();
    expect((await keysIn(bucket)).filter((k) => k.startsWith('blobs/'))).toEqual([]);
    expect(readFileSync(writer.path).equals(bytes)).toBe(true);
    await expect(writer.write([Buffer.from('late')])).rejects.toThrow(/closed/);
    expect(await writer.commit()).toEqual({ digest, size: bytes.length });
    expect((await readAll(await store.open(digest))).equals(bytes)).toBe(true);
    expect(existsSync(writer.path)).toBe(false);

    const evil = Buffer.from(bytes);
    evil[5 * MiB] = (evil[5 * MiB] ?? 0) ^ 1;
    const otherDigest = digestOf(seededBytes('s3-verdict-other', 1024));
    const bad = await store.openWriter({ digest: otherDigest, size: evil.length });
    await bad.write(chunksOf(evil, MiB));
    await expect((bad.verify as () => Promise<void>)()).rejects.toMatchObject({ code: 'DIGEST_INVALID' });
    expect(existsSync(bad.path)).toBe(false);
    await expect(bad.commit()).rejects.toMatchObject({ code: 'DIGEST_INVALID' });
    expect(await store.stat(otherDigest)).toBeUndefined();
    // Only the good blob: no temporary object is left of the bad one.
    expect(await keysIn(bucket)).toEqual([`blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`]);
    await store.close();
  });

  it('a chunked session of chunks under 5 MiB, alternating between two replicas, finishes byte-exact', async () => {
    const bucket = await rgw.createBucket('s3-chunks');
    const [one, two] = [await replica(bucket, '', 'a'), await replica(bucket, '', 'b')];
    const bytes = seededBytes('s3-chunks', 3 * MiB + 4321);
    const digest = digestOf(bytes);
    const id = '8c2f0c3e-8a51-4a39-9a5b-1f7a9a2d1b00';
    let upload: UploadData = { id, size: 0, driverState: await one.createUpload(id) };
    for (const [i, chunk] of chunksOf(bytes, 700 * 1024).entries()) {
      const result = await (i % 2 ? two : one).appendUpload(upload, Readable.from([chunk]));
      upload = { id, size: result.size, driverState: result.driverState };
    }
    expect(upload.size).toBe(bytes.length);
    const sessions: string[] = [];
    for await (const s of one.listUploads()) sessions.push(s.id);
    expect(sessions).toEqual([id]);
    expect(await two.finishUpload(upload, digest)).toEqual({ digest, size: bytes.length });
    expect((await readAll(await one.open(digest))).equals(bytes)).toBe(true);
    // The session's chunks are gone once it is published.
    expect(await keysIn(bucket)).toEqual([`blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`]);
    await Promise.all([one.close(), two.close()]);
  });

  it('a session hashed on one replica finishes by server-side copies; a retried chunk and a bad digest are handled', async () => {
    const bucket = await rgw.createBucket('s3-resume');
    const store = await replica(bucket);
    const bytes = seededBytes('s3-resume', 13 * MiB);
    const digest = digestOf(bytes);
    const id = 'a3d1f0c3-8a51-4a39-9a5b-1f7a9a2d1b01';
    let upload: UploadData = { id, size: 0, driverState: await store.createUpload(id) };
    const first = await store.appendUpload(upload, Readable.from([bytes.subarray(0, 6 * MiB)]));
    upload = { id, size: first.size, driverState: first.driverState };
    // A chunk whose request died midway: nothing of it counts, and the session resumes at 6 MiB.
    const dying = new PassThrough();
    const failed = store.appendUpload(upload, dying);
    dying.write(bytes.subarray(6 * MiB, 8 * MiB));
    setTimeout(() => dying.destroy(new Error('connection reset')), 300);
    await expect(failed).rejects.toThrow();
    const rest = await store.appendUpload(upload, Readable.from(chunksOf(bytes.subarray(6 * MiB), MiB)));
    upload = { id, size: rest.size, driverState: rest.driverState };
    expect(upload.size).toBe(bytes.length);
    await expect(store.finishUpload(upload, digestOf(Buffer.from('nope')))).rejects.toMatchObject({ code: 'DIGEST_INVALID' });
    expect(await keysIn(bucket)).toEqual([]); // a bad digest discards the session

    let again: UploadData = { id, size: 0, driverState: await store.createUpload(id) };
    for (const slice of [bytes.subarray(0, 6 * MiB), bytes.subarray(6 * MiB)]) {
      const r = await store.appendUpload(again, Readable.from([slice]));
      again = { id, size: r.size, driverState: r.driverState };
    }
    expect(await store.finishUpload(again, digest)).toEqual({ digest, size: bytes.length });
    expect(createHash('sha256').update(await readAll(await store.open(digest))).digest('hex')).toBe(digest.slice(7));
    await store.close();
  });

  it('refuses session state it did not write', async () => {
    const bucket = await rgw.createBucket('s3-state');
    const store = await replica(bucket);
    const id = 'b3d1f0c3-8a51-4a39-9a5b-1f7a9a2d1b02';
    const forged: UploadData = { id, size: 10, driverState: { chunks: [{ name: '../../blobs/sha256/x', size: 10 }] } };
    await expect(store.finishUpload(forged, digestOf(Buffer.alloc(10)))).rejects.toThrow(/corrupt/);
    await expect(store.appendUpload(forged, Readable.from([Buffer.alloc(1)]))).rejects.toThrow(/corrupt/);
    await expect(store.createUpload('../x')).rejects.toThrow(/invalid upload id/);
    await store.close();
  });

  it('presigns a GET that fetches the blob from the object store directly', async () => {
    const bucket = await rgw.createBucket('s3-presign');
    const store = await replica(bucket);
    const bytes = seededBytes('s3-presign', 40_000);
    const digest = digestOf(bytes);
    await store.ingest(Readable.from([bytes]), { digest });
    const url = await store.presignedUrl(digest);
    expect(url.startsWith(`${rgw.endpoint}/${bucket}/blobs/sha256/`)).toBe(true);
    expect(url).toMatch(/X-Amz-Expires=60\b/);
    const res = await fetch(url, { headers: { Range: 'bytes=10-19' } });
    expect(res.status).toBe(206);
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes.subarray(10, 20))).toBe(true);
    // Tampering with the signed URL is refused by the store.
    const forged = url.replace(digest.slice(7), digestOf(Buffer.from('x')).slice(7));
    expect((await fetch(forged)).status).toBe(403);
    await store.close();
  });

  it('start-up checks name the key at fault', async () => {
    const config = s3Config('no-such-bucket-here');
    await expect(checkBucket(createS3Client(config), config)).rejects.toThrow(/storage\.s3\.bucket: .* does not exist/);
    const wrongKeys = { ...s3Config(await rgw.createBucket('s3-keys')), accessKeyIdFile: path.join(work.path, 'id'), secretAccessKeyFile: path.join(work.path, 'secret') };
    await expect(checkBucket(createS3Client(wrongKeys), wrongKeys)).rejects.toThrow(/storage\.s3\.accessKeyIdFile: cannot read/);
    const closed = { ...s3Config('x-bucket'), endpoint: 'http://127.0.0.1:9' };
    await expect(checkBucket(createS3Client(closed), closed)).rejects.toThrow(/storage\.s3\.endpoint: cannot reach/);
    expect(readdirSync(work.path).length).toBeGreaterThan(0);
  });

  // Blob responses read with SocketObjectReader: straight from the socket into a reused buffer,
  // socket reads land in the waiting caller's buffer, or in its 64 KiB scratch buffer (the head,
  // the first read after a pause) whose bytes are then handed out across callers' buffers.
  describe('blob reads from the socket', () => {
    const big = seededBytes('s3-socket-big', 32 * MiB + 4321);
    const bigDigest = digestOf(big);
    let store: S3Content;
    let bucket: string;

    beforeAll(async () => {
      bucket = await rgw.createBucket('s3-socket');
      store = await replica(bucket);
      await store.ingest(Readable.from(chunksOf(big, 1 * MiB)), { digest: bigDigest, size: big.length });
    }, 60_000);

    afterAll(async () => {
      await store?.close();
    });

    /** Reads `reader` from `start` to the end in reads of the given sizes (cycled), checking each count. */
    async function readThrough(reader: BlobReader, start: number, sizes: number[]): Promise<Buffer> {
      const out: Buffer[] = [];
      const target = Buffer.alloc(Math.max(...sizes));
      for (let pos = start, i = 0; pos < big.length; i++) {
        const size = sizes[i % sizes.length]!;
        const n = await reader.read(target, size, pos);
        expect(n).toBe(Math.min(size, big.length - pos));
        out.push(Buffer.from(target.subarray(0, n)));
        pos += n;
      }
      expect(await reader.read(target, 10, big.length)).toBe(0);
      return Buffer.concat(out);
    }

    /** Established TCP connections of process `pid` to the gateway (idle keep-alive ones of the SDK included). */
    const storeConnections = (pid: number | 'self') => {
      const inodes = new Set(readdirSync(`/proc/${pid}/fd`).map((fd) => {
        try {
          return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
        } catch {
          return undefined; // closed meanwhile
        }
      }).filter((x): x is string => x !== undefined));
      return readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1).map((line) => line.trim().split(/\s+/))
        .filter((f) => f.length > 9 && f[3] === '01' && Number.parseInt(f[2]!.split(':')[1]!, 16) === rgw.port && inodes.has(f[9]!)).length;
    };

    it('is the reader of a plain-http endpoint, and reads byte-exact whole and from any offset, across its read windows', async () => {
      const reader = (await store.openReader(bigDigest))!;
      expect(reader).toBeInstanceOf(SocketObjectReader);
      // Sizes under, at and over its 64 KiB scratch buffer, and the responses' 512 KiB.
      const sizes = [512 * 1024, 1, 65_535, 65_536, 65_537, 1000, 1_500_000, 262_145, 524_288, 3];
      expect((await readThrough(reader, 0, sizes)).equals(big)).toBe(true);
      // From an odd offset (a new ranged GET there), then back near the start.
      const from = 3 * MiB + 7;
      expect((await readThrough(reader, from, [524_288, 300_001])).equals(big.subarray(from))).toBe(true);
      const buffer = Buffer.alloc(100_000);
      expect(await reader.read(buffer, 100_000, 10)).toBe(100_000);
      expect(buffer.equals(big.subarray(10, 100_010))).toBe(true);
      // A read past the end is cut at the end.
      expect(await reader.read(buffer, 100_000, big.length - 5)).toBe(5);
      expect(buffer.subarray(0, 5).equals(big.subarray(big.length - 5))).toBe(true);
      await reader.close();
    }, 60_000);

    it('an object under 1 MiB is read through the pooled undici connections, byte-exact', async () => {
      const small = seededBytes('s3-socket-small', 1024 * 1024 - 1);
      const smallDigest = digestOf(small);
      await store.ingest(Readable.from(chunksOf(small, 256 * 1024)), { digest: smallDigest, size: small.length });
      const reader = (await store.openReader(smallDigest))!;
      expect(reader).toBeInstanceOf(StreamingReader);
      const buffer = Buffer.alloc(small.length);
      expect(await reader.read(buffer, 300_000, 0)).toBe(300_000);
      expect(await reader.read(buffer.subarray(300_000), small.length, 300_000)).toBe(small.length - 300_000);
      expect(buffer.equals(small)).toBe(true);
      await reader.close();
    }, 60_000);

    it('closed mid-body: its connection is gone and nothing fails afterwards', async () => {
      const reader = (await store.openReader(bigDigest))!;
      const before = storeConnections('self'); // the reader connects on its first read
      const buffer = Buffer.alloc(512 * 1024);
      expect(await reader.read(buffer, buffer.length, 0)).toBe(buffer.length);
      expect(buffer.equals(big.subarray(0, buffer.length))).toBe(true);
      await reader.close();
      await waitFor(async () => storeConnections('self') <= before, 5_000, 20);
      // Closing again is harmless; a new reader works on.
      await reader.close();
      const again = (await store.openReader(bigDigest))!;
      expect(await again.read(buffer, 1000, 5 * MiB)).toBe(1000);
      expect(buffer.subarray(0, 1000).equals(big.subarray(5 * MiB, 5 * MiB + 1000))).toBe(true);
      await again.close();
    }, 60_000);

    it('a blob deleted after it was opened reads as gone', async () => {
      const bytes = seededBytes('s3-socket-gone', 2 * MiB);
      const digest = digestOf(bytes);
      await store.ingest(Readable.from([bytes]), { digest });
      const reader = (await store.openReader(digest))!;
      await store.delete(digest);
      await expect(reader.read(Buffer.alloc(1000), 1000, 0)).rejects.toThrow(/blob is gone/);
      await reader.close();
    });

    it('through the registry: full and ranged GETs byte-exact, a client gone mid-body leaves no connection to the store behind', async () => {
      const l = await spawnLayover({}, { s3: { ...rgw, bucket: await rgw.createBucket('s3-socket-http') } });
      try {
        await uploadBlob(l.url, 'team/big', bigDigest, big);
        const url = `${l.url}/v2/team/big/blobs/${bigDigest}`;
        const get = (range?: string) => new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
          http.get(url, { headers: range ? { range } : {} }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
            res.on('error', reject);
          }).on('error', reject);
        });
        const full = await get();
        expect(full.status).toBe(200);
        expect(full.body.equals(big)).toBe(true);
        // Inclusive ends across the responses' 512 KiB buffers; open-ended to the last byte.
        for (const [start, end] of [[524_287, 1_572_865], [0, 0], [big.length - 1, big.length - 1]] as const) {
          const part = await get(`bytes=${start}-${end}`);
          expect(part.status).toBe(206);
          expect(part.headers['content-range']).toBe(`bytes ${start}-${end}/${big.length}`);
          expect(part.body.equals(big.subarray(start, end + 1))).toBe(true);
        }
        const tail = await get(`bytes=${30 * MiB + 1}-`);
        expect(tail.status).toBe(206);
        expect(tail.body.equals(big.subarray(30 * MiB + 1))).toBe(true);

        const before = storeConnections(l.pid);
        for (let i = 0; i < 3; i++) {
          await new Promise<void>((resolve, reject) => {
            const req = http.get(url, (res) => {
              let received = 0;
              res.on('data', (c: Buffer) => {
                received += c.length;
                if (received >= 2 * MiB) {
                  req.destroy();
                  resolve();
                }
              });
              res.on('error', () => undefined);
            });
            req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
          });
        }
        await waitFor(async () => storeConnections(l.pid) <= before, 10_000, 50);
        // And it serves on, whole.
        expect((await get()).body.equals(big)).toBe(true);
        expect(l.alive()).toBe(true);
      } finally {
        await l.close();
      }
    }, 120_000);

    it('the gateway stopped: before the read and mid-body, reads fail promptly as an object store outage', async () => {
      const buffer = Buffer.alloc(1 * MiB);
      const early = (await store.openReader(bigDigest))!;
      const midway = (await store.openReader(bigDigest))!;
      expect(await midway.read(buffer, buffer.length, 0)).toBe(buffer.length);
      await rgw.stopGateway();
      try {
        const started = Date.now();
        await expect(early.read(buffer, 1000, 0)).rejects.toBeInstanceOf(ObjectStoreUnavailableError);
        // What the kernel's buffers held still reads; the cut is then an outage, not a short blob.
        let pos = buffer.length;
        const cut = await (async () => {
          for (; pos < big.length; pos += buffer.length) {
            const n = await midway.read(buffer, buffer.length, pos);
            expect(buffer.subarray(0, n).equals(big.subarray(pos, pos + n))).toBe(true);
          }
          return undefined;
        })().catch((err: unknown) => err);
        expect(cut).toBeInstanceOf(ObjectStoreUnavailableError);
        expect(pos).toBeLessThan(big.length);
        expect(Date.now() - started).toBeLessThan(30_000);
        await early.close();
        await midway.close();
        await waitFor(async () => storeConnections('self') === 0, 5_000, 20);
      } finally {
        await rgw.startGateway();
      }
      const reader = (await store.openReader(bigDigest))!;
      expect(await reader.read(buffer, buffer.length, 7)).toBe(buffer.length);
      expect(buffer.equals(big.subarray(7, 7 + buffer.length))).toBe(true);
      await reader.close();
    }, 90_000);
  });
});
