// What a layover's content driver holds, read where the driver keeps it (files under the root, or
// objects under the bucket's prefix), so that tests about "nothing stored" or "session gone" hold
// in every storage mode of the suite (LAYOVER_TEST_STORAGE, s3-suite.ts) instead of passing
// vacuously on an empty directory.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createS3Client } from '../../src/registry/storage/content/s3-client.js';
import type { RunningLayover } from './layover.js';

type Layover = Pick<RunningLayover, 'root' | 'config'>;

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else out.push(path.relative(dir, path.join(d, e.name)));
    }
  };
  walk(dir);
  return out;
}

/** Keys under `sub/` of the layover's s3 prefix, relative to it. */
async function objectsUnder(l: Layover, sub: string): Promise<string[]> {
  const s3 = l.config.storage.s3!;
  const client = createS3Client(s3);
  const base = `${s3.prefix}${sub}/`;
  const out: string[] = [];
  try {
    let ContinuationToken: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: base, ContinuationToken }));
      for (const o of page.Contents ?? []) if (o.Key) out.push(o.Key.slice(base.length));
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  } finally {
    client.destroy();
  }
  return out;
}

/** The stored blob files' or objects' names (the hex of their digests). */
export async function storedBlobNames(l: Layover): Promise<string[]> {
  const paths = l.config.storage.driver === 's3' ? await objectsUnder(l, 'blobs') : filesUnder(path.join(l.root, 'blobs'));
  return paths.map((p) => p.split('/').at(-1)!).sort();
}

/** The ids of the upload sessions whose data the content driver holds. */
export async function uploadSessionIds(l: Layover): Promise<string[]> {
  if (l.config.storage.driver !== 's3') return readdirSync(path.join(l.root, 'uploads'));
  return [...new Set((await objectsUnder(l, 'uploads')).map((k) => k.split('/')[0]!))].sort();
}

/**
 * Writes in progress: temporary files under the root's _tmp (filesystem), or the local spool
 * files of downloads plus temporary objects under the prefix's _tmp/ (s3).
 */
export async function writesInProgress(l: Layover): Promise<string[]> {
  if (l.config.storage.driver !== 's3') return readdirSync(path.join(l.root, '_tmp'));
  let spool: string[] = [];
  try {
    spool = readdirSync(path.join(l.root, '_spool'));
  } catch {
    // not created yet: nothing spooled
  }
  return [...spool, ...(await objectsUnder(l, '_tmp'))];
}

/** The temporary objects (downloads and assemblies not yet verified) the s3 driver holds; none on a filesystem root. */
export async function tempObjectNames(l: Layover): Promise<string[]> {
  return l.config.storage.driver === 's3' ? (await objectsUnder(l, '_tmp')).sort() : [];
}
