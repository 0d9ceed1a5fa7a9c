// vitest globalSetup for running the suite with blob content on S3 (LAYOVER_TEST_STORAGE=s3):
// one Ceph RGW for the whole run (test/helpers/ceph-rgw.ts), started here in the main process
// and stopped at its end, whatever happens to the test workers. Every layover a test starts
// without its own `s3` option gets a fresh key prefix in the run's bucket (layover.ts), through
// LAYOVER_TEST_S3. Combine with LAYOVER_TEST_METADATA=postgres for the scale-out configuration
// (s3 + PostgreSQL). A no-op otherwise.
import { DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { startCephRgw, type CephRgw } from './ceph-rgw.js';

let rgw: CephRgw | undefined;

/** What a worker needs to put a layover on the run's bucket (JSON in LAYOVER_TEST_S3). */
export interface SuiteS3 {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  bucket: string;
}

export async function setup(): Promise<void> {
  if (process.env.LAYOVER_TEST_STORAGE !== 's3') return;
  // Objects live in the OSD's RAM: layovers delete their prefix when they close (layover.ts).
  rgw = await startCephRgw({ memoryBytes: 6 * 2 ** 30 });
  const suite: SuiteS3 = { endpoint: rgw.endpoint, accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey, bucket: await rgw.createBucket('suite') };
  process.env.LAYOVER_TEST_S3 = JSON.stringify(suite);
}

export async function teardown(): Promise<void> {
  await rgw?.close();
}

// ---- in the test workers ----

const prefixOfRoot = new Map<string, string>();
let client: S3Client | undefined;

/**
 * The run's bucket with a fresh prefix for a layover on `root` when the suite runs on s3 (a
 * second layover on the same root gets the same prefix: another replica); undefined otherwise.
 */
export function suiteS3For(root: string): (SuiteS3 & { prefix: string }) | undefined {
  if (process.env.LAYOVER_TEST_STORAGE !== 's3') return undefined;
  const raw = process.env.LAYOVER_TEST_S3;
  if (!raw) throw new Error('LAYOVER_TEST_STORAGE=s3 needs the globalSetup test/helpers/s3-suite.ts (vitest.config.ts)');
  let prefix = prefixOfRoot.get(root);
  if (!prefix) {
    prefix = `w${process.pid}-${prefixOfRoot.size + 1}/`;
    prefixOfRoot.set(root, prefix);
  }
  return { ...(JSON.parse(raw) as SuiteS3), prefix };
}

/** Deletes what a layover on `root` stored under its suite prefix (the OSD keeps objects in RAM). */
export async function removeSuitePrefix(root: string): Promise<void> {
  const target = prefixOfRoot.get(root) && suiteS3For(root);
  if (!target) return;
  prefixOfRoot.delete(root);
  client ??= new S3Client({ endpoint: target.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: target.accessKeyId, secretAccessKey: target.secretAccessKey } });
  let ContinuationToken: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: target.bucket, Prefix: target.prefix, ContinuationToken }));
    const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
    if (keys.length) await client.send(new DeleteObjectsCommand({ Bucket: target.bucket, Delete: { Objects: keys, Quiet: true } }));
    ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (ContinuationToken);
}
