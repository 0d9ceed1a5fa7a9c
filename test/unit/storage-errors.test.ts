// Storage failures told apart from the upstream's and the content's (storage/errors.ts).
import { describe, expect, it } from 'vitest';
import { RegistryError } from '../../src/registry/errors.js';
import { asStorageError, isStorageFull, logStorageFull, storageAnswer, StorageError } from '../../src/registry/storage/errors.js';

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
});
