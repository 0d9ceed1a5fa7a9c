// The store the configuration asks for: the embedded one (files + SQLite under storage.root), or
// blob content in an S3 bucket (storage.driver: s3) with the metadata beside it. The bucket is
// checked before anything is served, so a wrong key fails start-up with the key's name.
import path from 'node:path';
import type { Config, S3Config } from '../../config/config.js';
import { composeStore, type ComposedStore } from './composed-store.js';
import { checkBucket, createS3Client } from './content/s3-client.js';
import { S3Content } from './content/s3.js';
import { fsyncs } from './durable.js';
import { METADATA_FILE, openEmbeddedStore } from './embedded.js';
import { SqliteMetadata } from './metadata/sqlite.js';
import type { Store } from './store.js';

export async function openStore(config: Config): Promise<Store> {
  const { driver, root, s3 } = config.storage;
  if (driver === 's3' && s3) return openS3Store(root, s3);
  return openEmbeddedStore(root);
}

/** Blob content in S3; local files under `root` hold the metadata database and spool files only. */
export async function openS3Store(root: string, s3: S3Config): Promise<ComposedStore> {
  const client = createS3Client(s3);
  try {
    await checkBucket(client, s3);
  } catch (err) {
    client.destroy();
    throw err;
  }
  return composeStore(
    root,
    (options) => new S3Content(client, { ...options, bucket: s3.bucket, prefix: s3.prefix, spoolDir: path.join(root, '_spool'), redirectTTLMs: s3.redirectTTLMs }).init(),
    new SqliteMetadata(path.join(root, METADATA_FILE), { syncFile: (file) => fsyncs.file(file) }),
  );
}
