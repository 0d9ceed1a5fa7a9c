// Storage failures told apart from the upstream's and the content's (storage/errors.ts).
import { describe, expect, it } from 'vitest';
import { RegistryError } from '../../src/registry/errors.js';
import { S3ServiceException } from '@aws-sdk/client-s3';
import { asObjectStoreOutage } from '../../src/registry/storage/content/s3-client.js';
import { asStorageError, isObjectStoreUnavailable, isStorageFull, logObjectStoreUnavailable, logStorageFull, storageAnswer, StorageError } from '../../src/registry/storage/errors.js';

const errno = (code: string) => Object.assign(new Error(`${code}: failed`), { code });

describe('storage errors', () => {
  it('ENOSPC and EDQUOT are a full storage, also when wrapped; 507 UNAVAILABLE', () => {
    for (const err of [errno('ENOSPC'), errno('EDQUOT'), new StorageError(errno('ENOSPC'))]) {
      expect(isStorageFull(err)).toBe(true);
      const answer = storageAnswer(err);
      expect(answer?.status).toBe(507);
      expect(answer?.body()).toEqual({ errors: [{ code: 'UNAVAILABLE', message: expect.stringMatching(/^storage is full: /) }] });
    }
  });

  it('another failure of a storage step is the storage\'s, not the upstream\'s; a verdict on the content stays as it is', () => {
    const io = asStorageError(errno('EIO'));
    expect(io).toBeInstanceOf(StorageError);
    expect(storageAnswer(io)?.message).toMatch(/storage failed \(EIO\)/);
    const verdict = new RegistryError('DIGEST_INVALID');
    expect(asStorageError(verdict)).toBe(verdict);
    expect(storageAnswer(errno('ECONNRESET'))).toBeUndefined();
    expect(storageAnswer(new Error('plain'))).toBeUndefined();
  });

  it('a full storage is logged once a minute per root', () => {
    const lines: string[] = [];
    const log = { error: (_obj: object, msg: string) => void lines.push(msg) };
    for (let t = 0; t < 10; t++) logStorageFull(log, '/unit/root', errno('ENOSPC'), 1_000_000 + t * 1000);
    expect(lines).toHaveLength(1);
    logStorageFull(log, '/unit/other', errno('ENOSPC'), 1_000_000);
    logStorageFull(log, '/unit/root', errno('ENOSPC'), 1_061_000);
    expect(lines).toHaveLength(3);
  });

  it('an object store that cannot be reached or fails on its side is a 503 UNAVAILABLE with Retry-After, also when wrapped; its refusals are not', () => {
    const s3Error = (status: number, name: string) => new S3ServiceException({ name, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status } });
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
    for (const err of [refused, new Error('fetch failed', { cause: refused }), s3Error(503, 'SlowDown'), s3Error(500, 'InternalError'), Object.assign(new Error('socket'), { code: 'UND_ERR_SOCKET' })]) {
      const outage = asObjectStoreOutage(err, 'GetObject');
      expect(outage, String(err)).toBeDefined();
      for (const seen of [outage, new StorageError(outage)]) {
        expect(isObjectStoreUnavailable(seen)).toBe(true);
        const answer = storageAnswer(seen);
        expect(answer?.status).toBe(503);
        expect(answer?.headers).toEqual({ 'Retry-After': '5' });
        expect(answer?.body()).toEqual({ errors: [{ code: 'UNAVAILABLE', message: 'the registry\'s object storage is unreachable; try again shortly' }] });
      }
    }
    for (const err of [s3Error(404, 'NoSuchKey'), s3Error(403, 'AccessDenied'), Object.assign(new Error('aborted'), { name: 'AbortError' }), new Error('plain')]) {
      expect(asObjectStoreOutage(err, 'GetObject'), String(err)).toBeUndefined();
    }
    const lines: string[] = [];
    const log = { error: (_obj: object, msg: string) => void lines.push(msg) };
    for (let t = 0; t < 10; t++) logObjectStoreUnavailable(log, 's3://b/', asObjectStoreOutage(refused, 'HeadObject'), 2_000_000 + t * 1000);
    expect(lines).toEqual([expect.stringMatching(/^object storage unreachable: /)]);
  });
});
