// Proves the layover launchers: in-process and as a child process that survives kill -9 and restarts.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startLayover, spawnLayover } from '../helpers/layover.js';
import { peakRssBytes } from '../helpers/process-stats.js';
import { getBytes, uploadBlob } from '../helpers/registry-client.js';
import { randomBlob } from '../helpers/oci-content.js';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';

describe('startLayover', () => {
  it('listens on 127.0.0.1 with a fresh root, auth off, and the real port in the config', async () => {
    const layover = await startLayover({}, { logLevel: 'debug' });
    try {
      expect(layover.host).toBe(`127.0.0.1:${layover.port}`);
      expect(layover.config.registry.port).toBe(layover.port);
      expect(layover.config.registry.publicHost).toBe(`localhost:${layover.port}`);
      expect(layover.config.storage.root).toBe(layover.root);
      expect(layover.config.auth.enabled).toBe(false);
      expect(layover.config.log.level).toBe('debug');
      const res = await getBytes(`${layover.url}/v2/`);
      expect(res.status).toBe(200);
      expect(res.headers['docker-distribution-api-version']).toBe('registry/2.0');
    } finally {
      await layover.close();
    }
    expect(existsSync(layover.dir)).toBe(false);
  });

  it('rejects an invalid configuration with the key named', async () => {
    await expect(startLayover({ registry: { maxManifestSize: 'lots' } })).rejects.toThrow(/registry\.maxManifestSize/);
  });
});

describe('spawnLayover', () => {
  it('runs `layover serve`, dies on kill -9 and restarts on the same port and root', async () => {
    const layover = await spawnLayover();
    try {
      expect((await getBytes(`${layover.url}/v2/`)).status).toBe(200);
      expect(peakRssBytes(layover.pid)).toBeGreaterThan(10 * 2 ** 20);
      const firstPid = layover.pid;
      expect(await layover.kill('SIGKILL')).toBe('SIGKILL');
      expect(layover.alive()).toBe(false);
      await expect(getBytes(`${layover.url}/v2/`)).rejects.toThrow();
      await layover.restart();
      expect(layover.pid).not.toBe(firstPid);
      expect((await getBytes(`${layover.url}/v2/`)).status).toBe(200);
      expect(layover.log()).toMatch(/layover registry listening/);
    } finally {
      await layover.close();
    }
    expect(existsSync(layover.dir)).toBe(false);
  });
});

// LAYOVER_TEST_STORAGE=s3 (s3-suite.ts) must really put every layover's blobs in the run's bucket,
// each under its own prefix, removed on close; in the default mode the storage stays local.
describe('the suite\'s storage mode', () => {
  it(`stores blobs where LAYOVER_TEST_STORAGE says (${process.env.LAYOVER_TEST_STORAGE ?? 'filesystem'})`, async () => {
    const layover = await startLayover();
    const blob = randomBlob(70_000, 'suite-mode');
    const s3 = layover.config.storage.s3;
    let client: S3Client | undefined;
    const listed = async () => (await client!.send(new ListObjectsV2Command({ Bucket: s3!.bucket, Prefix: s3!.prefix }))).Contents?.map((o) => o.Key) ?? [];
    try {
      await uploadBlob(layover.url, 'mode/check', blob.digest, blob.bytes);
      if (process.env.LAYOVER_TEST_STORAGE !== 's3') {
        expect(layover.config.storage.driver).toBe('filesystem');
        return;
      }
      expect(layover.config.storage.driver).toBe('s3');
      expect(s3?.prefix).toMatch(/^w\d+-\d+\/$/);
      const suite = JSON.parse(process.env.LAYOVER_TEST_S3 ?? '{}') as { endpoint: string; accessKeyId: string; secretAccessKey: string };
      client = new S3Client({ endpoint: suite.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: suite.accessKeyId, secretAccessKey: suite.secretAccessKey } });
      expect(await listed()).toContain(`${s3!.prefix}blobs/sha256/${blob.digest.slice(7, 9)}/${blob.digest.slice(7)}`);
    } finally {
      await layover.close();
    }
    if (client) {
      expect(await listed()).toEqual([]);
      client.destroy();
    }
  });
});
