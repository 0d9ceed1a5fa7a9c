// Blob reads against a real listening layover: GET/HEAD by digest, Range (206, 416, ignored),
// sha512 blobs, and the base endpoint.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { computeDigest, content, randomBlob, type Content } from '../helpers/oci-content.js';
import { uploadBlob } from '../helpers/registry-client.js';
import { getAndHangUp, getSlowly, rawRequest, type Answer } from '../helpers/raw-http.js';

let layover: InProcessLayover;
const blob: Content = randomBlob(100_000, 'blobs-range');


async function call(method: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return rawRequest(layover.url, method, path, headers);
}

function expectError(res: Answer, status: number, code: string): void {
  expect(res.status).toBe(status);
  expect(String(res.headers['content-type'])).toMatch(/^application\/json/);
  const doc = JSON.parse(res.body.toString('utf8')) as { errors: { code: string; message: string }[] };
  expect(doc.errors[0]?.code).toBe(code);
  expect(typeof doc.errors[0]?.message).toBe('string');
}

beforeAll(async () => {
  layover = await startLayover();
  await uploadBlob(layover.url, 'blobs/one', blob.digest, blob.bytes);
});
afterAll(async () => {
  await layover?.close();
});

describe('GET /v2/', () => {
  it('answers 200 with the API version header, for GET and HEAD', async () => {
    for (const method of ['GET', 'HEAD']) {
      const res = await call(method, '/v2/');
      expect(res.status).toBe(200);
      expect(res.headers['docker-distribution-api-version']).toBe('registry/2.0');
    }
  });

  it('redirects /v2 to /v2/ as Docker Distribution does', async () => {
    const res = await call('GET', '/v2');
    expect(res.status).toBe(301);
    expect(res.headers.location).toBe('/v2/');
  });

  it('refuses other methods with 405 in the error format', async () => {
    expectError(await call('POST', '/v2/'), 405, 'UNSUPPORTED');
  });
});

describe('blob GET and HEAD', () => {
  it('GET streams the exact bytes with digest, length and type', async () => {
    const res = await call('GET', `/v2/blobs/one/blobs/${blob.digest}`);
    expect(res.status).toBe(200);
    expect(res.body.equals(blob.bytes)).toBe(true);
    expect(res.headers['docker-content-digest']).toBe(blob.digest);
    expect(res.headers['content-length']).toBe(String(blob.size));
    expect(res.headers['accept-ranges']).toBe('bytes');
    expect(res.headers['docker-distribution-api-version']).toBe('registry/2.0');
  });

  it('HEAD answers the headers with the real length and no body', async () => {
    const res = await call('HEAD', `/v2/blobs/one/blobs/${blob.digest}`);
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(0);
    expect(res.headers['content-length']).toBe(String(blob.size));
    expect(res.headers['docker-content-digest']).toBe(blob.digest);
  });

  it('a blob is only visible in the repositories it was pushed to', async () => {
    expectError(await call('GET', `/v2/blobs/other/blobs/${blob.digest}`), 404, 'BLOB_UNKNOWN');
    const head = await call('HEAD', `/v2/blobs/other/blobs/${blob.digest}`);
    expect(head.status).toBe(404);
    expect(head.body.length).toBe(0);
  });

  it('an unknown digest is 404 BLOB_UNKNOWN', async () => {
    expectError(await call('GET', `/v2/blobs/one/blobs/${computeDigest('nope')}`), 404, 'BLOB_UNKNOWN');
  });

  it('a zero-length blob is served', async () => {
    const empty = content(Buffer.alloc(0), 'application/octet-stream');
    await uploadBlob(layover.url, 'blobs/one', empty.digest, empty.bytes);
    const res = await call('GET', `/v2/blobs/one/blobs/${empty.digest}`);
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(0);
    expect(res.headers['content-length']).toBe('0');
  });
});

describe('Range', () => {
  const path = (): string => `/v2/blobs/one/blobs/${blob.digest}`;

  it('bytes=a-b answers 206 with exactly those bytes', async () => {
    const res = await call('GET', path(), { range: 'bytes=10-19' });
    expect(res.status).toBe(206);
    expect(res.body.equals(blob.bytes.subarray(10, 20))).toBe(true);
    expect(res.headers['content-range']).toBe(`bytes 10-19/${blob.size}`);
    expect(res.headers['content-length']).toBe('10');
  });

  it('bytes=a- runs to the end', async () => {
    const res = await call('GET', path(), { range: 'bytes=99990-' });
    expect(res.status).toBe(206);
    expect(res.body.equals(blob.bytes.subarray(99_990))).toBe(true);
    expect(res.headers['content-range']).toBe(`bytes 99990-99999/${blob.size}`);
  });

  it('bytes=-n is the last n bytes', async () => {
    const res = await call('GET', path(), { range: 'bytes=-5' });
    expect(res.status).toBe(206);
    expect(res.body.equals(blob.bytes.subarray(blob.size - 5))).toBe(true);
    expect(res.headers['content-range']).toBe(`bytes 99995-99999/${blob.size}`);
  });

  it('an end past the size is clipped; a suffix longer than the blob is the whole blob', async () => {
    const clipped = await call('GET', path(), { range: 'bytes=99998-5000000' });
    expect(clipped.status).toBe(206);
    expect(clipped.headers['content-range']).toBe(`bytes 99998-99999/${blob.size}`);
    expect(clipped.body.equals(blob.bytes.subarray(99_998))).toBe(true);
    const suffix = await call('GET', path(), { range: 'bytes=-1000000' });
    expect(suffix.status).toBe(206);
    expect(suffix.body.equals(blob.bytes)).toBe(true);
  });

  it('a start at or past the size, or an end before the start, is 416 with Content-Range bytes */size', async () => {
    for (const range of [`bytes=${blob.size}-`, 'bytes=200000-200010', 'bytes=-0', 'bytes=5-2', 'bytes=500-0']) {
      const res = await call('GET', path(), { range });
      expectError(res, 416, 'RANGE_INVALID');
      expect(res.headers['content-range']).toBe(`bytes */${blob.size}`);
    }
  });

  it('a malformed, multi-range or foreign-unit Range is ignored: a full 200', async () => {
    for (const range of ['bytes=abc', 'items=0-10', 'bytes=0-1,5-6', 'bytes=', 'bytes=--1', 'bytes=1e3-']) {
      const res = await call('GET', path(), { range });
      expect(res.status, range).toBe(200);
      expect(res.body.equals(blob.bytes), range).toBe(true);
    }
  });
});

describe('sha512 blobs', () => {
  it('are stored, verified and served under their sha512 digest', async () => {
    const bytes = randomBlob(70_000, 'sha512-blob').bytes;
    const digest = computeDigest(bytes, 'sha512');
    await uploadBlob(layover.url, 'blobs/one', digest, bytes);
    const res = await call('GET', `/v2/blobs/one/blobs/${digest}`);
    expect(res.status).toBe(200);
    expect(res.headers['docker-content-digest']).toBe(digest);
    expect(res.body.equals(bytes)).toBe(true);
    const ranged = await call('GET', `/v2/blobs/one/blobs/${digest}`, { range: 'bytes=0-0' });
    expect(ranged.status).toBe(206);
    expect(ranged.body.equals(bytes.subarray(0, 1))).toBe(true);
  });
});

describe('large blobs, copied through buffers reused across responses', () => {
  // Larger than the two 512 KiB buffers of a response, and not a multiple of them.
  const big: Content[] = [randomBlob(1_300_011, 'reuse-a'), randomBlob(2_200_000, 'reuse-b')];

  beforeAll(async () => {
    for (const b of big) await uploadBlob(layover.url, 'blobs/big', b.digest, b.bytes);
  });

  async function blobBytesServed(): Promise<number> {
    const text = (await call('GET', '/metrics')).body.toString('utf8');
    const m = /^layover_client_bytes_total\{route="blob"\} (\d+)/m.exec(text);
    return m ? Number(m[1]) : 0;
  }

  it('concurrent whole and ranged GETs of different blobs each get exactly their bytes', async () => {
    const [a, b] = big as [Content, Content];
    const whole = Array.from({ length: 12 }, (_, i) => (i % 2 ? a : b));
    const ranges: [Content, number, number][] = [[a, 524_287, 1_048_577], [b, 1, 2_199_998], [a, 1_048_576, 1_300_010], [b, 600_000, 600_000]];
    const answers = await Promise.all([
      ...whole.map((c) => call('GET', `/v2/blobs/big/blobs/${c.digest}`)),
      ...ranges.map(([c, s, e]) => call('GET', `/v2/blobs/big/blobs/${c.digest}`, { range: `bytes=${s}-${e}` })),
    ]);
    whole.forEach((c, i) => {
      expect(answers[i]?.status).toBe(200);
      expect(answers[i]?.body.equals(c.bytes)).toBe(true);
    });
    ranges.forEach(([c, s, e], i) => {
      const res = answers[whole.length + i];
      expect(res?.status).toBe(206);
      expect(res?.headers['content-range']).toBe(`bytes ${s}-${e}/${c.size}`);
      expect(res?.body.equals(c.bytes.subarray(s, e + 1))).toBe(true);
    });
  });

  it('clients that read slowly, so that writes wait on the socket, get exactly their bytes', async () => {
    const large = randomBlob(9 * 1024 * 1024 + 1, 'reuse-slow');
    await uploadBlob(layover.url, 'blobs/big', large.digest, large.bytes);
    const [a] = big as [Content];
    const [slow1, slow2, fast] = await Promise.all([getSlowly(layover.url, `/v2/blobs/big/blobs/${large.digest}`, 300), getSlowly(layover.url, `/v2/blobs/big/blobs/${large.digest}`, 150), call('GET', `/v2/blobs/big/blobs/${a.digest}`)]);
    expect(slow1.equals(large.bytes)).toBe(true);
    expect(slow2.equals(large.bytes)).toBe(true);
    expect(fast.body.equals(a.bytes)).toBe(true);
  });

  it('clients that hang up mid-body leave no damage: later responses are exact, and only finished ones are counted', async () => {
    const [a, b] = big as [Content, Content];
    const hangUp = (c: Content, after: number) => getAndHangUp(layover.url, `/v2/blobs/big/blobs/${c.digest}`, after);
    const seen = await Promise.all([hangUp(a, 100_000), hangUp(b, 700_000), hangUp(a, 1_200_000), hangUp(b, 1)]);
    expect(seen[2]).toBeGreaterThanOrEqual(1_200_000);
    const before = await blobBytesServed();
    const answers = await Promise.all([a, b, a, b, b, a].map((c) => call('GET', `/v2/blobs/big/blobs/${c.digest}`)));
    [a, b, a, b, b, a].forEach((c, i) => expect(answers[i]?.body.equals(c.bytes)).toBe(true));
    // The replies are hijacked for the copy, yet the onResponse hook still counts each one.
    expect((await blobBytesServed()) - before).toBe(3 * a.size + 3 * b.size);
  });
});
