// Blob uploads against a real listening layover: monolithic (POST ?digest=, POST then PUT),
// streamed PATCH, chunked PATCH with Content-Range, status, cancel, mount, chunk minimum.
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { computeDigest, randomBlob } from '../helpers/oci-content.js';
import { uploadBlob } from '../helpers/registry-client.js';
import { rawRequest, type Answer } from '../helpers/raw-http.js';
import { storedBlobNames, uploadSessionIds } from '../helpers/stored-content.js';
import { waitFor } from '../helpers/wait-for.js';

let layover: InProcessLayover;

type Body = Buffer | Readable | undefined;

/** Sends `target` (a path, maybe with a query) exactly as written: no URL normalisation of `..` or `%2e`. */
async function call(method: string, target: string, headers: Record<string, string> = {}, body?: Body, base = layover.url): Promise<Answer> {
  return rawRequest(base, method, target, headers, body);
}

function expectError(res: Answer, status: number, code: string): void {
  expect(res.status).toBe(status);
  expect(String(res.headers['content-type'])).toMatch(/^application\/json/);
  const doc = JSON.parse(res.body.toString('utf8')) as { errors: { code: string; message: string }[] };
  expect(doc.errors[0]?.code).toBe(code);
}

function withDigest(location: string, digest: string): string {
  const url = new URL(location, layover.url);
  url.searchParams.set('digest', digest);
  return url.pathname + url.search;
}

async function start(repo: string, base = layover.url): Promise<string> {
  const res = await call('POST', `/v2/${repo}/blobs/uploads/`, { 'content-length': '0' }, undefined, base);
  expect(res.status).toBe(202);
  const location = String(res.headers.location);
  expect(location).toMatch(new RegExp(`^/v2/${repo}/blobs/uploads/[0-9a-f-]{36}$`));
  expect(res.headers.range).toBe('0-0');
  expect(res.headers['docker-upload-uuid']).toBe(location.split('/').pop());
  return location;
}

async function patch(location: string, chunk: Buffer, range?: string): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'content-length': String(chunk.length) };
  if (range !== undefined) headers['content-range'] = range;
  return call('PATCH', location, headers, chunk);
}

async function expectBlob(repo: string, digest: string, bytes: Buffer): Promise<void> {
  const res = await call('GET', `/v2/${repo}/blobs/${digest}`);
  expect(res.status).toBe(200);
  expect(res.body.equals(bytes)).toBe(true);
}


beforeAll(async () => {
  layover = await startLayover();
});
afterAll(async () => {
  await layover?.close();
});

describe('monolithic uploads', () => {
  it('POST ?digest= with the body answers 201 with Location and Docker-Content-Digest', async () => {
    const blob = randomBlob(300_000);
    const res = await call('POST', `/v2/up/mono/blobs/uploads/?digest=${blob.digest}`, { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) }, blob.bytes);
    expect(res.status).toBe(201);
    expect(res.headers.location).toBe(`/v2/up/mono/blobs/${blob.digest}`);
    expect(res.headers['docker-content-digest']).toBe(blob.digest);
    await expectBlob('up/mono', blob.digest, blob.bytes);
  });

  it('POST ?digest= with a wrong digest is DIGEST_INVALID and stores nothing', async () => {
    const blob = randomBlob(50_000);
    const wrong = computeDigest('something else');
    const before = (await storedBlobNames(layover)).length;
    const res = await call('POST', `/v2/up/mono/blobs/uploads/?digest=${wrong}`, { 'content-length': String(blob.size) }, blob.bytes);
    expectError(res, 400, 'DIGEST_INVALID');
    expect((await storedBlobNames(layover)).length).toBe(before);
    expect((await call('HEAD', `/v2/up/mono/blobs/${wrong}`)).status).toBe(404);
    expect((await call('HEAD', `/v2/up/mono/blobs/${blob.digest}`)).status).toBe(404);
  });

  it('POST then PUT with the whole body', async () => {
    const blob = randomBlob(200_000);
    const location = await start('up/put');
    const res = await call('PUT', withDigest(location, blob.digest), { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) }, blob.bytes);
    expect(res.status).toBe(201);
    expect(res.headers.location).toBe(`/v2/up/put/blobs/${blob.digest}`);
    expect(res.headers['docker-content-digest']).toBe(blob.digest);
    await expectBlob('up/put', blob.digest, blob.bytes);
    // The session is gone once completed.
    expectError(await call('GET', location), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('PUT with a wrong digest is DIGEST_INVALID, stores nothing and ends the session', async () => {
    const blob = randomBlob(120_000);
    const wrong = computeDigest(Buffer.concat([blob.bytes, Buffer.from('x')]));
    const before = await storedBlobNames(layover);
    const location = await start('up/put');
    const res = await call('PUT', withDigest(location, wrong), { 'content-length': String(blob.size) }, blob.bytes);
    expectError(res, 400, 'DIGEST_INVALID');
    expect(await storedBlobNames(layover)).toEqual(before);
    expect((await call('HEAD', `/v2/up/put/blobs/${blob.digest}`)).status).toBe(404);
    expect((await call('HEAD', `/v2/up/put/blobs/${wrong}`)).status).toBe(404);
    expectError(await call('GET', location), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('PUT without ?digest= is refused and the session survives', async () => {
    const location = await start('up/put');
    expectError(await call('PUT', location, { 'content-length': '0' }), 400, 'DIGEST_INVALID');
    expect((await call('GET', location)).status).toBe(204);
  });

  it('a sha512 upload is verified with sha512', async () => {
    const bytes = randomBlob(90_000).bytes;
    const digest = computeDigest(bytes, 'sha512');
    const location = await start('up/sha512');
    expect((await patch(location, bytes.subarray(0, 40_000), '0-39999')).status).toBe(202);
    const done = await call('PUT', withDigest(location, digest), { 'content-length': String(bytes.length - 40_000), 'content-range': `40000-${bytes.length - 1}` }, bytes.subarray(40_000));
    expect(done.status).toBe(201);
    expect(done.headers['docker-content-digest']).toBe(digest);
    await expectBlob('up/sha512', digest, bytes);
  });
});

describe('streamed and chunked PATCH', () => {
  it('a streamed PATCH (no Content-Range, chunked transfer) then an empty PUT', async () => {
    const blob = randomBlob(1_500_000);
    const location = await start('up/stream');
    const parts = [blob.bytes.subarray(0, 500_000), blob.bytes.subarray(500_000, 1_000_000), blob.bytes.subarray(1_000_000)];
    const body = Readable.from(
      (async function* () {
        for (const part of parts) {
          yield part;
          await sleep(20);
        }
      })(),
    );
    const res = await call('PATCH', location, { 'content-type': 'application/octet-stream' }, body);
    expect(res.status).toBe(202);
    expect(res.headers.range).toBe(`0-${blob.size - 1}`);
    expect(res.headers.location).toBe(location);
    const done = await call('PUT', withDigest(location, blob.digest), { 'content-length': '0' });
    expect(done.status).toBe(201);
    await expectBlob('up/stream', blob.digest, blob.bytes);
  });

  it('chunks in order, each answered 202 with Range and Location; GET status shows the progress', async () => {
    const blob = randomBlob(30_000);
    const location = await start('up/chunks');
    for (const [a, b] of [[0, 9_999], [10_000, 19_999]] as const) {
      const res = await patch(location, blob.bytes.subarray(a, b + 1), `${a}-${b}`);
      expect(res.status).toBe(202);
      expect(res.headers.range).toBe(`0-${b}`);
      expect(res.headers.location).toBe(location);
      expect(res.headers['content-length']).toBe('0');
    }
    const status = await call('GET', location);
    expect(status.status).toBe(204);
    expect(status.headers.range).toBe('0-19999');
    expect(status.headers.location).toBe(location);
    expect(status.headers['docker-upload-uuid']).toBe(location.split('/').pop());
    const done = await call('PUT', withDigest(location, blob.digest), { 'content-length': '10000', 'content-range': '20000-29999' }, blob.bytes.subarray(20_000));
    expect(done.status).toBe(201);
    await expectBlob('up/chunks', blob.digest, blob.bytes);
  });

  it('an out-of-order or repeated chunk is 416 with the current Range; the upload then completes correctly', async () => {
    const blob = randomBlob(30_000);
    const location = await start('up/order');
    expect((await patch(location, blob.bytes.subarray(0, 10_000), '0-9999')).status).toBe(202);

    const ahead = await patch(location, blob.bytes.subarray(20_000, 30_000), '20000-29999');
    expectError(ahead, 416, 'RANGE_INVALID');
    expect(ahead.headers.range).toBe('0-9999');
    expect(ahead.headers.location).toBe(location);

    const repeated = await patch(location, blob.bytes.subarray(0, 10_000), '0-9999');
    expectError(repeated, 416, 'RANGE_INVALID');
    expect(repeated.headers.range).toBe('0-9999');

    const overlapping = await patch(location, blob.bytes.subarray(5_000, 15_000), '5000-14999');
    expectError(overlapping, 416, 'RANGE_INVALID');

    expect((await call('GET', location)).headers.range).toBe('0-9999');
    const next = await patch(location, blob.bytes.subarray(10_000, 20_000), '10000-19999');
    expect(next.status).toBe(202);
    expect(next.headers.range).toBe('0-19999');
    expect((await patch(location, blob.bytes.subarray(20_000), '20000-29999')).status).toBe(202);
    const done = await call('PUT', withDigest(location, blob.digest), { 'content-length': '0' });
    expect(done.status).toBe(201);
    await expectBlob('up/order', blob.digest, blob.bytes);
  });

  it('a first chunk that does not start at 0 is 416', async () => {
    const location = await start('up/order');
    const res = await patch(location, Buffer.alloc(10), '1-10');
    expectError(res, 416, 'RANGE_INVALID');
    expect(res.headers.range).toBe('0-0');
  });

  it('a malformed Content-Range is 416 and leaves the session usable', async () => {
    const blob = randomBlob(100);
    const location = await start('up/order');
    for (const range of ['bytes', '10-5', 'a-b', '0-', '-5']) {
      const res = await patch(location, blob.bytes, range);
      expect(res.status, range).toBe(416);
    }
    expect((await patch(location, blob.bytes, '0-99')).status).toBe(202);
    expect((await call('PUT', withDigest(location, blob.digest), { 'content-length': '0' })).status).toBe(201);
  });

  it('a Content-Length that contradicts Content-Range is refused', async () => {
    const location = await start('up/order');
    const res = await call('PATCH', location, { 'content-length': '10', 'content-range': '0-19' }, Buffer.alloc(10));
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect((await call('GET', location)).headers.range).toBe('0-0');
  });

  it('chunks of a session can be sent from another connection to the same location', async () => {
    const blob = randomBlob(4_000);
    const location = await start('up/conn');
    expect((await patch(location, blob.bytes.subarray(0, 2_000), '0-1999')).status).toBe(202);
    const res = await request(new URL(location, `http://localhost:${layover.port}`), {
      method: 'PATCH',
      headers: { 'content-length': '2000', 'content-range': '2000-3999' },
      body: blob.bytes.subarray(2_000),
    });
    expect(res.statusCode).toBe(202);
    await res.body.dump();
    expect((await call('PUT', withDigest(location, blob.digest), { 'content-length': '0' })).status).toBe(201);
  });
});

describe('status and cancel', () => {
  it('DELETE cancels (204); afterwards GET, PATCH and PUT are 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const blob = randomBlob(1_000);
    const location = await start('up/cancel');
    expect((await patch(location, blob.bytes, '0-999')).status).toBe(202);
    const del = await call('DELETE', location);
    expect(del.status).toBe(204);
    expectError(await call('GET', location), 404, 'BLOB_UPLOAD_UNKNOWN');
    expectError(await patch(location, blob.bytes, '0-999'), 404, 'BLOB_UPLOAD_UNKNOWN');
    expectError(await call('PUT', withDigest(location, blob.digest), { 'content-length': '0' }), 404, 'BLOB_UPLOAD_UNKNOWN');
    expectError(await call('DELETE', location), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('an unknown or malformed upload id is 404 BLOB_UPLOAD_UNKNOWN', async () => {
    expectError(await call('GET', '/v2/up/cancel/blobs/uploads/00000000-0000-0000-0000-000000000000'), 404, 'BLOB_UPLOAD_UNKNOWN');
    expectError(await call('GET', '/v2/up/cancel/blobs/uploads/%2e%2e'), 404, 'BLOB_UPLOAD_UNKNOWN');
    expectError(await call('GET', '/v2/up/cancel/blobs/uploads/not-a-uuid'), 404, 'BLOB_UPLOAD_UNKNOWN');
    // An id that decodes to a path is no endpoint at all: 404 in the error format, never a file.
    const traversal = await call('PATCH', '/v2/up/cancel/blobs/uploads/%2e%2e%2f%2e%2e%2finfo.json', { 'content-length': '1' }, Buffer.from('x'));
    expect(traversal.status).toBe(404);
    expect(JSON.parse(traversal.body.toString('utf8')).errors).toHaveLength(1);
  });

  it('an upload belongs to its repository: another name cannot see or finish it', async () => {
    const blob = randomBlob(100);
    const location = await start('up/owner');
    const id = location.split('/').pop() as string;
    expectError(await call('GET', `/v2/up/thief/blobs/uploads/${id}`), 404, 'BLOB_UPLOAD_UNKNOWN');
    expectError(await call('PUT', `/v2/up/thief/blobs/uploads/${id}?digest=${blob.digest}`, { 'content-length': String(blob.size) }, blob.bytes), 404, 'BLOB_UPLOAD_UNKNOWN');
    expect((await call('GET', location)).status).toBe(204);
  });
});

describe('cancel racing finish', () => {
  it('30 trials of DELETE and PUT at once: one wins cleanly, the other is 404, never a 5xx or a torn result', async () => {
    const outcomes = { finished: 0, cancelled: 0 };
    for (let trial = 0; trial < 30; trial++) {
      const blob = randomBlob(256 * 1024, `race ${trial} ${Math.random()}`);
      const repo = 'up/race';
      const location = await start(repo);
      expect((await patch(location, blob.bytes, `0-${blob.size - 1}`)).status).toBe(202);
      const finish = (): Promise<Answer> => call('PUT', withDigest(location, blob.digest), { 'content-length': '0' });
      // The DELETE leaves 0-4 ms after the PUT, so that each side wins some trials.
      const cancel = async (): Promise<Answer> => {
        await sleep(trial % 5);
        return call('DELETE', location);
      };
      const [put, del] = await Promise.all([finish(), cancel()]);
      expect(put.status, `trial ${trial}: PUT ${put.body.toString('utf8')}`).toBeLessThan(500);
      expect(del.status, `trial ${trial}: DELETE ${del.body.toString('utf8')}`).toBeLessThan(500);
      if (put.status === 201) {
        outcomes.finished += 1;
        expectError(del, 404, 'BLOB_UPLOAD_UNKNOWN');
        await expectBlob(repo, blob.digest, blob.bytes);
      } else {
        outcomes.cancelled += 1;
        expect(del.status).toBe(204);
        expectError(put, 404, 'BLOB_UPLOAD_UNKNOWN');
        expect((await call('HEAD', `/v2/${repo}/blobs/${blob.digest}`)).status).toBe(404);
      }
      // Either way the session is gone, wholly.
      expectError(await call('GET', location), 404, 'BLOB_UPLOAD_UNKNOWN');
      expect(await uploadSessionIds(layover)).not.toContain(location.split('/').pop());
    }
    expect(outcomes.finished + outcomes.cancelled).toBe(30);
  });
});

describe('idle upload sessions (registry.uploadIdleTimeout)', () => {
  it('an abandoned session is swept after the idle timeout; sessions still receiving chunks, in requests or in one slow stream, are kept', async () => {
    const idle = await startLayover({ registry: { uploadIdleTimeout: '2s' } });
    const on = (method: string, target: string, headers: Record<string, string> = {}, body?: Body): Promise<Answer> => call(method, target, headers, body, idle.url);
    const sessions = (): Promise<string[]> => uploadSessionIds(idle);
    try {
      const abandoned = await start('up/idle', idle.url);
      expect((await on('PATCH', abandoned, { 'content-length': '65536' }, randomBlob(65_536).bytes)).status).toBe(202);

      // A client sending chunks every 400 ms, for longer than the timeout.
      const chunked = randomBlob(16 * 4096);
      const chunkedAt = await start('up/idle', idle.url);
      const chunking = (async () => {
        for (let i = 0; i < 16; i++) {
          const piece = chunked.bytes.subarray(i * 4096, (i + 1) * 4096);
          const res = await on('PATCH', chunkedAt, { 'content-length': '4096', 'content-range': `${i * 4096}-${i * 4096 + 4095}` }, piece);
          expect(res.status, `chunk ${i}`).toBe(202);
          if (i < 15) await sleep(400);
        }
      })();

      // One PATCH whose client pauses longer than the timeout mid-stream: the request is alive.
      const streamed = randomBlob(8192);
      const streamedAt = await start('up/idle', idle.url);
      const body = new Readable({ read() {} });
      const streaming = on('PATCH', streamedAt, { 'content-type': 'application/octet-stream' }, body);
      body.push(streamed.bytes.subarray(0, 4096));
      await sleep(4_000);
      body.push(streamed.bytes.subarray(4096));
      body.push(null);
      expect((await streaming).status).toBe(202);
      // Each is finished as soon as its last chunk is in: idle from then on, it would be swept too.
      const finish = async (at: string, blob: { digest: string; bytes: Buffer }): Promise<void> => {
        expect((await on('PUT', withDigest(at, blob.digest), { 'content-length': '0' })).status).toBe(201);
        expect((await on('GET', `/v2/up/idle/blobs/${blob.digest}`)).body.equals(blob.bytes)).toBe(true);
      };
      await finish(streamedAt, streamed);

      await waitFor(async () => !(await sessions()).includes(abandoned.split('/').pop() as string), 10_000, 100);
      expectError(await on('GET', abandoned), 404, 'BLOB_UPLOAD_UNKNOWN');
      await chunking;
      await finish(chunkedAt, chunked);
      expect(await sessions()).toEqual([]);
    } finally {
      await idle.close();
    }
  }, 30_000);
});

describe('cross-repository mount', () => {
  it('mounts a blob the source repository has: 201, and the blob is readable in the target', async () => {
    const blob = randomBlob(5_000);
    await uploadBlob(layover.url, 'mount/src', blob.digest, blob.bytes);
    const res = await call('POST', `/v2/mount/dst/blobs/uploads/?mount=${blob.digest}&from=mount/src`, { 'content-length': '0' });
    expect(res.status).toBe(201);
    expect(res.headers.location).toBe(`/v2/mount/dst/blobs/${blob.digest}`);
    expect(res.headers['docker-content-digest']).toBe(blob.digest);
    await expectBlob('mount/dst', blob.digest, blob.bytes);
  });

  it('falls back to a new upload (202) when the source does not have the blob', async () => {
    const blob = randomBlob(5_000);
    const elsewhere = randomBlob(5_000);
    await uploadBlob(layover.url, 'mount/other', blob.digest, blob.bytes);
    await uploadBlob(layover.url, 'mount/src', elsewhere.digest, elsewhere.bytes);
    // The blob exists in the registry, but not in the named source.
    const res = await call('POST', `/v2/mount/dst2/blobs/uploads/?mount=${blob.digest}&from=mount/src`, { 'content-length': '0' });
    expect(res.status).toBe(202);
    expect(String(res.headers.location)).toMatch(/^\/v2\/mount\/dst2\/blobs\/uploads\//);
    expect((await call('HEAD', `/v2/mount/dst2/blobs/${blob.digest}`)).status).toBe(404);
    // The fallback session works as a normal upload.
    const done = await call('PUT', withDigest(String(res.headers.location), blob.digest), { 'content-length': String(blob.size) }, blob.bytes);
    expect(done.status).toBe(201);
  });

  it('falls back to 202 for an unknown blob, an unknown source, an invalid from', async () => {
    const unknown = computeDigest('never pushed');
    const known = randomBlob(100);
    await uploadBlob(layover.url, 'mount/src', known.digest, known.bytes);
    for (const query of [`mount=${unknown}&from=mount/src`, `mount=${known.digest}&from=mount/nowhere`, `mount=${known.digest}&from=../mount/src`, `mount=${known.digest}&from=Mount/Src`]) {
      const res = await call('POST', `/v2/mount/dst3/blobs/uploads/?${query}`, { 'content-length': '0' });
      expect(res.status, query).toBe(202);
      expect(String(res.headers.location), query).toMatch(/^\/v2\/mount\/dst3\/blobs\/uploads\//);
    }
    expect((await call('HEAD', `/v2/mount/dst3/blobs/${known.digest}`)).status).toBe(404);
  });

  it('without from, mounts from any repository that has the blob (all are readable here)', async () => {
    const blob = randomBlob(100);
    await uploadBlob(layover.url, 'mount/anywhere', blob.digest, blob.bytes);
    const res = await call('POST', `/v2/mount/dst4/blobs/uploads/?mount=${blob.digest}`, { 'content-length': '0' });
    expect(res.status).toBe(201);
    expect(res.headers['docker-content-digest']).toBe(blob.digest);
    await expectBlob('mount/dst4', blob.digest, blob.bytes);
    expect((await call('POST', `/v2/mount/dst4/blobs/uploads/?mount=${computeDigest('never pushed either')}`, { 'content-length': '0' })).status).toBe(202);
  });

  it('an invalid mount digest is 400 DIGEST_INVALID', async () => {
    expectError(await call('POST', '/v2/mount/dst/blobs/uploads/?mount=sha256:xyz&from=mount/src', { 'content-length': '0' }), 400, 'DIGEST_INVALID');
  });
});

describe('OCI-Chunk-Min-Length', () => {
  it('is absent when no minimum is configured', async () => {
    const res = await call('POST', '/v2/up/min/blobs/uploads/', { 'content-length': '0' });
    expect(res.status).toBe(202);
    expect(res.headers['oci-chunk-min-length']).toBeUndefined();
  });

  it('is announced on POST when registry.chunkMinLength is set', async () => {
    const other = await startLayover({ registry: { chunkMinLength: '1MiB' } });
    try {
      const res = await call('POST', '/v2/up/min/blobs/uploads/', { 'content-length': '0' }, undefined, other.url);
      expect(res.status).toBe(202);
      expect(res.headers['oci-chunk-min-length']).toBe(String(2 ** 20));
    } finally {
      await other.close();
    }
  });
});
