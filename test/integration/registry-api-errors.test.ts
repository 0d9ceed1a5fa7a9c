// Errors against a real listening layover: malformed names, digests, tags and ids are 4xx with a
// code in the spec's JSON format, never a 500; nothing they name reaches the filesystem.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedStore } from '../../src/registry/storage/embedded.js';
import { openStoreOf, startLayover, type InProcessLayover } from '../helpers/layover.js';
import { buildManifest, computeDigest, emptyConfig } from '../helpers/oci-content.js';
import { putManifest, uploadBlob } from '../helpers/registry-client.js';
import { rawRequest, type Answer } from '../helpers/raw-http.js';

let layover: InProcessLayover;

interface ErrorBody { errors: { code: string; message: string; detail?: unknown }[] }

const CODES = new Set([
  'BLOB_UNKNOWN', 'BLOB_UPLOAD_INVALID', 'BLOB_UPLOAD_UNKNOWN', 'DIGEST_INVALID', 'MANIFEST_BLOB_UNKNOWN', 'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN', 'NAME_INVALID', 'NAME_UNKNOWN', 'SIZE_INVALID', 'UNAUTHORIZED', 'DENIED', 'UNSUPPORTED', 'TOOMANYREQUESTS',
  // Docker Distribution's additions, which clients know too.
  'RANGE_INVALID', 'PAGINATION_NUMBER_INVALID', 'TAG_INVALID',
]);

/** Sends the path exactly as written (no client-side normalisation of `..` or `%2e`). */
async function call(method: string, target: string, headers: Record<string, string> = {}, body?: Buffer): Promise<Answer> {
  return rawRequest(layover.url, method, target, headers, body);
}

/** The spec's error format: one or more {code, message, detail?}; code from the spec's table. */
function errorBody(res: Answer): ErrorBody {
  expect(String(res.headers['content-type'])).toMatch(/^application\/json/);
  const doc = JSON.parse(res.body.toString('utf8')) as ErrorBody;
  expect(Object.keys(doc)).toEqual(['errors']);
  expect(doc.errors.length).toBeGreaterThan(0);
  for (const e of doc.errors) {
    expect(CODES.has(e.code), e.code).toBe(true);
    expect(typeof e.message).toBe('string');
    expect(Object.keys(e).every((k) => ['code', 'message', 'detail'].includes(k))).toBe(true);
  }
  return doc;
}

function expectError(res: Answer, status: number, code: string): void {
  expect(res.status).toBe(status);
  expect(errorBody(res).errors[0]?.code).toBe(code);
  expect(res.headers['docker-distribution-api-version']).toBe('registry/2.0');
}

function allFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      out.push(path.relative(root, p));
    }
  };
  walk(root);
  return out.sort();
}

const DIGEST = computeDigest('some content');

beforeAll(async () => {
  layover = await startLayover();
  const config = emptyConfig();
  await uploadBlob(layover.url, 'err/repo', config.digest, config.bytes);
  await putManifest(layover.url, 'err/repo', 'v1', buildManifest({ config, layers: [] }));
});
afterAll(async () => {
  await layover?.close();
});

describe('NAME_INVALID', () => {
  const badNames = [
    'Upper/Case', 'a/%2e%2e/b', '%2e%2e', '%2e%2e/%2e%2e/etc', 'a%00b', 'a//b', '-a', 'a-', 'a%20b', 'a%5cb', '%c3%a9t%c3%a9',
    'libr%d0%b0ry', '%ef%bd%8c', 'a'.repeat(300), 'a/'.repeat(200) + 'a', '.hidden', 'a%2f%2fb', '~user',
  ];

  it.each(badNames)('%s is 400 NAME_INVALID on every endpoint', async (name) => {
    const targets: [string, string][] = [
      ['GET', `/v2/${name}/manifests/latest`],
      ['HEAD', `/v2/${name}/manifests/latest`],
      ['PUT', `/v2/${name}/manifests/latest`],
      ['DELETE', `/v2/${name}/manifests/latest`],
      ['GET', `/v2/${name}/blobs/${DIGEST}`],
      ['DELETE', `/v2/${name}/blobs/${DIGEST}`],
      ['POST', `/v2/${name}/blobs/uploads/`],
      ['PATCH', `/v2/${name}/blobs/uploads/0f8fad5b-d9cb-469f-a165-70867728950e`],
      ['GET', `/v2/${name}/tags/list`],
      ['GET', `/v2/${name}/referrers/${DIGEST}`],
    ];
    for (const [method, target] of targets) {
      const res = await call(method, target, { 'content-type': 'application/json' }, method === 'PUT' || method === 'PATCH' ? Buffer.from('{}') : undefined);
      expect(res.status, `${method} ${target}`).toBe(400);
      if (method !== 'HEAD') expectError(res, 400, 'NAME_INVALID');
    }
  });

  /**
   * Every repository name stored, read through a second handle on the server's metadata: on the
   * embedded store without init (it would clear the server's temporary files), on PostgreSQL
   * through a store of its own on the same database.
   */
  async function listRepositoriesOf(l: InProcessLayover): Promise<string[]> {
    const store = l.config.database ? await openStoreOf(l) : new EmbeddedStore(l.root);
    try {
      return await store.listRepositories();
    } finally {
      await store.close();
    }
  }

  it('nothing outside the storage layout was created by any of them', async () => {
    const files = allFiles(layover.root);
    // On s3 the root holds only the pull-through cache's spool directory besides the metadata.
    const layout = layover.config.storage.driver === 's3' ? /^_spool(\/|$)|^metadata\.db(-wal|-shm)?$/ : /^(blobs|uploads|_tmp)(\/|$)|^metadata\.db(-wal|-shm)?$/;
    for (const f of files) expect(f, f).toMatch(layout);
    // Names live in the metadata database now: none of the refused ones got in (and some were stored).
    const names = await listRepositoriesOf(layover);
    expect(names.length).toBeGreaterThan(0);
    expect(names.filter((n) => /[A-Z]|\.\.|%/.test(n))).toEqual([]);
  });
});

describe('DIGEST_INVALID and TAG_INVALID', () => {
  const badDigests = [
    'sha256:abc', `sha256:${'A'.repeat(64)}`, `sha256:${'a'.repeat(65)}`, `sha512:${'a'.repeat(64)}`, `md5:${'a'.repeat(32)}`,
    `sha256:%2e%2e%2f${'a'.repeat(58)}`, `sha256:${'a'.repeat(63)}%00`, 'sha256:', `sha256:${'a'.repeat(5000)}`,
  ];

  it.each(badDigests)('blob digest %s is 400 DIGEST_INVALID', async (digest) => {
    for (const method of ['GET', 'DELETE']) expectError(await call(method, `/v2/err/repo/blobs/${digest}`), 400, 'DIGEST_INVALID');
    expect((await call('HEAD', `/v2/err/repo/blobs/${digest}`)).status).toBe(400);
    expectError(await call('GET', `/v2/err/repo/manifests/${digest}`), 400, 'DIGEST_INVALID');
    expectError(await call('POST', `/v2/err/repo/blobs/uploads/?digest=${digest}`, { 'content-length': '1' }, Buffer.from('x')), 400, 'DIGEST_INVALID');
  });

  it('a bad digest on the closing PUT is DIGEST_INVALID and the session survives', async () => {
    const start = await call('POST', '/v2/err/repo/blobs/uploads/', { 'content-length': '0' });
    const location = String(start.headers.location);
    expectError(await call('PUT', `${location}?digest=sha256:nothex`, { 'content-length': '0' }), 400, 'DIGEST_INVALID');
    expect((await call('GET', location)).status).toBe(204);
  });

  it.each(['%2e%2e', '.hidden', '-dash', 'x'.repeat(129), 'a%00', 'a%2fb', 'tag%20x'])('tag %s is 400 TAG_INVALID on writes, 404 MANIFEST_UNKNOWN on reads', async (tag) => {
    expectError(await call('GET', `/v2/err/repo/manifests/${tag}`), 404, 'MANIFEST_UNKNOWN');
    expect((await call('HEAD', `/v2/err/repo/manifests/${tag}`)).status).toBe(404);
    expectError(await call('DELETE', `/v2/err/repo/manifests/${tag}`), 400, 'TAG_INVALID');
    expectError(await call('PUT', `/v2/err/repo/manifests/${tag}`, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, Buffer.from('{}')), 400, 'TAG_INVALID');
  });
});

describe('the error format everywhere', () => {
  it('unknown endpoints are 404 and wrong methods 405, in the error format', async () => {
    for (const target of ['/v2/err/repo/unknown', '/v2/err/repo/manifests/', '/v2/err/repo/blobs/a/b', '/v2/_catalog/x', '/v3/']) {
      const res = await call('GET', target);
      expect(res.status, target).toBe(404);
      errorBody(res);
    }
    for (const [method, target] of [
      ['POST', '/v2/err/repo/manifests/v1'],
      ['PATCH', '/v2/err/repo/manifests/v1'],
      ['PUT', `/v2/err/repo/blobs/${DIGEST}`],
      ['POST', '/v2/err/repo/tags/list'],
      ['DELETE', '/v2/_catalog'],
      ['DELETE', '/v2/err/repo/blobs/uploads/'],
    ]) {
      const res = await call(method as string, target as string);
      expect(res.status, `${method} ${target}`).toBe(405);
      expect(errorBody(res).errors[0]?.code).toBe('UNSUPPORTED');
    }
  });

  it('HEAD errors carry the status and headers, no body', async () => {
    const res = await call('HEAD', '/v2/err/repo/manifests/missing');
    expect(res.status).toBe(404);
    expect(res.body.length).toBe(0);
    expect(String(res.headers['content-type'])).toMatch(/^application\/json/);
  });

  it('a URL with a malformed percent escape is a 4xx in the error format', async () => {
    const res = await call('GET', '/v2/err/repo/manifests/%zz');
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    errorBody(res);
  });

  it('a hostile sweep never answers 5xx and always answers the error format', async () => {
    const pieces = ['..', '%2e%2e', '%2F', '%00', 'A', 'a'.repeat(600), '%ff', '_catalog', 'blobs', 'uploads', 'manifests', 'tags', 'list', 'referrers', DIGEST, 'sha512:x', '%c0%ae'];
    const methods = ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE'];
    let count = 0;
    for (let i = 0; i < pieces.length; i++) {
      for (let j = 0; j < pieces.length; j += 3) {
        const target = `/v2/err/${pieces[i]}/${pieces[j]}/${pieces[(i + j) % pieces.length]}`;
        const method = methods[(i + j) % methods.length] as string;
        const res = await call(method, target, { 'content-length': '2' }, method === 'GET' || method === 'HEAD' ? undefined : Buffer.from('{}'));
        expect(res.status, `${method} ${target}`).toBeLessThan(500);
        if (res.status >= 400 && method !== 'HEAD') errorBody(res);
        count += 1;
      }
    }
    expect(count).toBeGreaterThan(80);
    expect(layover.log()).not.toMatch(/unhandled error/);
  });
});

describe('NAME_UNKNOWN and friends', () => {
  it('tags of an unknown repository: 404 NAME_UNKNOWN', async () => {
    expectError(await call('GET', '/v2/err/nothing/tags/list'), 404, 'NAME_UNKNOWN');
  });

  it('manifest and blob of an unknown repository: 404 with the right code', async () => {
    expectError(await call('GET', '/v2/err/nothing/manifests/v1'), 404, 'MANIFEST_UNKNOWN');
    expectError(await call('GET', `/v2/err/nothing/blobs/${DIGEST}`), 404, 'BLOB_UNKNOWN');
  });
});
