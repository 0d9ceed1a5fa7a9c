// Proves the Ceph RGW harness: the S3 operations the s3 content driver relies on behave as S3's
// do against the real gateway (bucket create, put, ranged get, multipart with small and large
// parts, server-side copy, conditional create), and the cluster stops without leftovers.
import { existsSync, readFileSync } from 'node:fs';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCephRgw, type CephRgw } from '../helpers/ceph-rgw.js';
import { computeDigest } from '../helpers/oci-content.js';
import { seededBytes } from '../helpers/random-bytes.js';

let rgw: CephRgw;
let s3: S3Client;
let bucket: string;

beforeAll(async () => {
  rgw = await startCephRgw();
  s3 = rgw.client();
  bucket = await rgw.createBucket('harness');
});

afterAll(async () => {
  await rgw?.close();
});

async function bodyOf(key: string, range?: string): Promise<{ bytes: Buffer; contentRange?: string }> {
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range }));
  return { bytes: Buffer.from(await res.Body!.transformToByteArray()), contentRange: res.ContentRange };
}

async function statusOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    if (err instanceof S3ServiceException) return err.$metadata.httpStatusCode ?? 0;
    throw err;
  }
}

describe('Ceph RGW harness', () => {
  it('puts an object and serves it whole and by range', async () => {
    const bytes = seededBytes('rgw-put', 100_000);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'a/put', Body: bytes }));
    expect((await bodyOf('a/put')).bytes.equals(bytes)).toBe(true);
    const part = await bodyOf('a/put', 'bytes=1000-1999');
    expect(part.bytes.equals(bytes.subarray(1000, 2000))).toBe(true);
    expect(part.contentRange).toBe('bytes 1000-1999/100000');
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'a/put' }));
    expect(head.ContentLength).toBe(100_000);
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'a/' }));
    expect(listed.Contents?.map((o) => o.Key)).toEqual(['a/put']);
  });

  it('refuses a conditional create (If-None-Match: *) over an existing key', async () => {
    const first = Buffer.from('first');
    expect(await statusOf(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'cond', Body: first, IfNoneMatch: '*' })))).toBe(200);
    expect(await statusOf(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'cond', Body: Buffer.from('second'), IfNoneMatch: '*' })))).toBe(412);
    expect((await bodyOf('cond')).bytes.toString()).toBe('first');
  });

  it('assembles a multipart upload (5 MiB part + a small last part) and copies it server-side', async () => {
    const bytes = seededBytes('rgw-multipart', 5 * 2 ** 20 + 12_345);
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mp' }));
    const parts = [];
    for (const [i, slice] of [bytes.subarray(0, 5 * 2 ** 20), bytes.subarray(5 * 2 ** 20)].entries()) {
      const { ETag } = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'mp', UploadId, PartNumber: i + 1, Body: slice }));
      parts.push({ ETag, PartNumber: i + 1 });
    }
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'mp', UploadId, MultipartUpload: { Parts: parts } }));
    const got = await bodyOf('mp');
    expect(computeDigest(got.bytes)).toBe(computeDigest(bytes));
    // A range across the part boundary.
    const across = await bodyOf('mp', `bytes=${5 * 2 ** 20 - 10}-${5 * 2 ** 20 + 9}`);
    expect(across.bytes.equals(bytes.subarray(5 * 2 ** 20 - 10, 5 * 2 ** 20 + 10))).toBe(true);

    await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'mp-copy', CopySource: `${bucket}/mp` }));
    expect(computeDigest((await bodyOf('mp-copy')).bytes)).toBe(computeDigest(bytes));
  });

  it('refuses a multipart part under 5 MiB that is not the last', async () => {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'small-parts' }));
    const parts = [];
    for (const n of [1, 2]) {
      const { ETag } = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'small-parts', UploadId, PartNumber: n, Body: Buffer.alloc(1000, n) }));
      parts.push({ ETag, PartNumber: n });
    }
    const status = await statusOf(s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'small-parts', UploadId, MultipartUpload: { Parts: parts } })));
    expect(status).toBe(400);
  });

  // Last in the file: it stops the file's own cluster rather than start a second one (~20 s);
  // afterAll's close() then has nothing left to do.
  it('keeps everything in its temp dir and stops every daemon on close', async () => {
    const other = rgw;
    s3.destroy();
    const pids = other.pids;
    expect(pids).toHaveLength(3);
    expect(pids.every(isRunning)).toBe(true);
    expect(readFileSync(`/proc/${pids[2]}/cmdline`, 'utf8')).toContain('radosgw');
    const bucketThere = await other.createBucket();
    expect(bucketThere).toMatch(/^layover-test-/);
    await other.close();
    expect(pids.filter(isRunning)).toEqual([]);
    expect(existsSync(other.dir)).toBe(false);
  }, 90_000);
});

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
