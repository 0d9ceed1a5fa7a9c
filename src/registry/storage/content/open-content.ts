// The blob content driver the configuration asks for: files under storage.root, or an S3 bucket
// (storage.driver: s3), whose keys and reachability are checked here, before anything is
// served, so that a wrong key fails start-up with the key's name.
import path from 'node:path';
import type { S3Config } from '../../../config/config.js';
import { FilesystemContent } from './filesystem.js';
import type { BlobContent, ContentOptions } from './types.js';

export type ContentFactory = (options: ContentOptions) => Promise<BlobContent>;

/** Files under `root`, or the bucket `s3` (spool files of downloads in progress under `root`). */
export async function contentFactory(root: string, s3: S3Config | undefined): Promise<ContentFactory> {
  if (!s3) return (options) => new FilesystemContent(root, options).init();
  // The AWS SDK only where S3 is configured: it adds tens of MiB to a process that never uses it.
  const { checkBucket, createS3Client } = await import('./s3-client.js');
  const { S3Content } = await import('./s3.js');
  const client = createS3Client(s3);
  try {
    await checkBucket(client, s3);
  } catch (err) {
    client.destroy();
    throw err;
  }
  return (options) => new S3Content(client, { ...options, bucket: s3.bucket, prefix: s3.prefix, spoolDir: path.join(root, '_spool'), redirectTTLMs: s3.redirectTTLMs }).init();
}
