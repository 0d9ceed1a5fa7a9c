// The HTTP edge against a real listening layover, on bare sockets: bodies refused before they are
// read close the connection instead of leaving it open, and what node's HTTP parser or router
// would answer in its own format (control bytes, the absolute form) is a Distribution answer.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRawUpstream } from '../helpers/junk-upstream.js';
import { spawnLayover, startLayover, type InProcessLayover } from '../helpers/layover.js';
import { buildManifest, emptyConfig, randomBlob } from '../helpers/oci-content.js';
import { rawRequest, socketExchange, type SocketAnswer } from '../helpers/raw-http.js';
import { putManifest, uploadBlob } from '../helpers/registry-client.js';
import { runTool } from '../helpers/run-tool.js';
import { makeTempDir } from '../helpers/temp-dir.js';

let layover: InProcessLayover;
const LIMIT = 4096;
const DIGEST = `sha256:${'a'.repeat(64)}`;

beforeAll(async () => {
  layover = await startLayover({ registry: { maxManifestSize: LIMIT } });
});
afterAll(async () => {
  await layover?.close();
});

function expectError(res: SocketAnswer, status: number, code: string): void {
  expect(res.status).toBe(status);
  expect(res.headers['docker-distribution-api-version']).toBe('registry/2.0');
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  const doc = JSON.parse(res.body.toString('utf8')) as { errors: { code: string; message: string }[] };
  expect(doc.errors[0]?.code).toBe(code);
  expect(typeof doc.errors[0]?.message).toBe('string');
}

/** The server said it closes, and did, well before the keep-alive timeout. */
function expectClosed(res: SocketAnswer): void {
  expect(res.headers.connection).toBe('close');
  expect(res.closedAfterMs, 'the server closed the connection').toBeDefined();
  expect(res.closedAfterMs).toBeLessThan(2000);
}

function head(method: string, target: string, headers: Record<string, string>): string {
  const lines = Object.entries({ host: layover.host, ...headers }).map(([k, v]) => `${k}: ${v}\r\n`);
  return `${method} ${target} HTTP/1.1\r\n${lines.join('')}\r\n`;
}

/** One chunk of a chunked body, to send over and over: an endless body. */
const CHUNK = Buffer.concat([Buffer.from('4000\r\n'), Buffer.alloc(0x4000, 0x20), Buffer.from('\r\n')]);
const RAW = Buffer.alloc(64 * 1024, 0x20);

async function startUpload(repo: string): Promise<string> {
  const res = await rawRequest(layover.url, 'POST', `/v2/${repo}/blobs/uploads/`, { 'content-length': '0' });
  expect(res.status).toBe(202);
  return String(res.headers.location);
}

describe('a body refused before it is read closes the connection', () => {
  it('an oversize manifest sent chunked: 413 SIZE_INVALID, then the server closes', async () => {
    const res = await socketExchange(layover.url, head('PUT', '/v2/edge/repo/manifests/v1', { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'transfer-encoding': 'chunked' }), { pump: CHUNK });
    expectError(res, 413, 'SIZE_INVALID');
    expectClosed(res);
  });

  it('a declared Content-Length above the limit: 413 SIZE_INVALID, then the server closes', async () => {
    const res = await socketExchange(layover.url, head('PUT', '/v2/edge/repo/manifests/v1', { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': String(1 << 30) }), { pump: RAW });
    expectError(res, 413, 'SIZE_INVALID');
    expectClosed(res);
  });

  it('an upload chunk at the wrong offset: 416, then the server closes', async () => {
    const location = await startUpload('edge/chunks');
    const res = await socketExchange(layover.url, head('PATCH', location, { 'content-range': `100-${100 + (1 << 30) - 1}`, 'content-length': String(1 << 30) }), { pump: RAW });
    expectError(res, 416, 'RANGE_INVALID');
    expect(res.headers.range).toBe('0-0');
    expectClosed(res);
  });

  it('an upload chunk whose Content-Length contradicts its Content-Range: 400, then the server closes', async () => {
    const location = await startUpload('edge/chunks');
    const res = await socketExchange(layover.url, head('PATCH', location, { 'content-range': '0-9', 'content-length': String(1 << 30) }), { pump: RAW });
    expectError(res, 400, 'SIZE_INVALID');
    expectClosed(res);
  });

  it('a monolithic upload with a malformed digest, sent chunked: 400, then the server closes', async () => {
    const res = await socketExchange(layover.url, head('POST', '/v2/edge/mono/blobs/uploads/?digest=sha256:nothex', { 'transfer-encoding': 'chunked' }), { pump: CHUNK });
    expectError(res, 400, 'DIGEST_INVALID');
    expectClosed(res);
  });

  it('a malformed URL (refused before routing) with a body still arriving: 400, then the server closes', async () => {
    const res = await socketExchange(layover.url, head('PUT', '/v2/edge/repo/manifests/%zz', { 'content-length': String(1 << 30) }), { pump: RAW });
    expectError(res, 400, 'UNSUPPORTED');
    expectClosed(res);
  });

  it('a chunk for an unknown upload session: 404, then the server closes', async () => {
    const res = await socketExchange(layover.url, head('PATCH', '/v2/edge/mono/blobs/uploads/0f8fad5b-d9cb-469f-a165-70867728950e', { 'content-length': String(1 << 30) }), { pump: RAW });
    expectError(res, 404, 'BLOB_UPLOAD_UNKNOWN');
    expectClosed(res);
  });

  it('an error whose request had no body, or a body read in full, keeps the connection alive', async () => {
    const missing = await socketExchange(layover.url, head('GET', '/v2/edge/repo/manifests/missing', {}), { waitMs: 300 });
    expectError(missing, 404, 'MANIFEST_UNKNOWN');
    expect(missing.headers.connection).toBe('keep-alive');
    expect(missing.closedAfterMs).toBeUndefined();
    const invalid = await socketExchange(layover.url, `${head('PUT', '/v2/edge/repo/manifests/v1', { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': '2' })}{}`, { waitMs: 300 });
    expectError(invalid, 400, 'MANIFEST_INVALID');
    expect(invalid.headers.connection).toBe('keep-alive');
    expect(invalid.closedAfterMs).toBeUndefined();
  });
});

describe('control bytes in the request URL are Distribution errors', () => {
  // Node's parser refuses these bytes unescaped; escaped, they reach the route's grammars.
  const cases: [string, string, number, string][] = [
    ['raw 0x01 in a name', '/v2/edge/a\x01b/manifests/v1', 400, 'NAME_INVALID'],
    ['raw 0x00 in a name', '/v2/edge\x00/tags/list', 400, 'NAME_INVALID'],
    // A raw control byte is refused by the HTTP parser, before any route: the tag's own code.
    ['raw 0x7f in a tag', '/v2/edge/repo/manifests/v\x7f1', 400, 'TAG_INVALID'],
    ['raw 0x1b in a digest', `/v2/edge/repo/blobs/${DIGEST.slice(0, -1)}\x1b`, 400, 'DIGEST_INVALID'],
    ['raw 0x00 in a manifest digest', `/v2/edge/repo/manifests/${DIGEST}\x00`, 400, 'DIGEST_INVALID'],
    ['raw 0x01 in a query', '/v2/edge/repo/tags/list?n=\x01', 400, 'UNSUPPORTED'],
    ['raw 0x09 in an endpoint', '/v2/edge/repo/mani\tfests/v1', 400, 'UNSUPPORTED'],
    ['raw 0x80 in a name', '/v2/edge/\x80/manifests/v1', 400, 'NAME_INVALID'],
    ['%00 in a name', '/v2/edge/a%00b/manifests/v1', 400, 'NAME_INVALID'],
    ['%0a in a name', '/v2/edge%0a/blobs/uploads/', 400, 'NAME_INVALID'],
    ['%0a in a tag (a read: no such manifest)', '/v2/edge/repo/manifests/v1%0a', 404, 'MANIFEST_UNKNOWN'],
    ['%0d%0a in a digest', `/v2/edge/repo/blobs/${DIGEST}%0d%0a`, 400, 'DIGEST_INVALID'],
  ];
  it.each(cases)('%s', async (_what, target, status, code) => {
    const method = target.includes('uploads') ? 'POST' : 'GET';
    const res = await socketExchange(layover.url, head(method, target, { 'content-length': '0' }), { waitMs: 300 });
    expectError(res, status, code);
  });

  it('a control byte in a header value is 400 in the error format, and the connection closes', async () => {
    // The client goes on sending a body: the answer still arrives (no reset before it is read).
    const res = await socketExchange(layover.url, head('PUT', '/v2/edge/repo/manifests/v1', { 'x-odd': 'a\x01b', 'content-length': String(1 << 30) }), { pump: RAW });
    expectError(res, 400, 'UNSUPPORTED');
    expectClosed(res);
  });

  it('over-long headers are 431 in the error format', async () => {
    const res = await socketExchange(layover.url, head('GET', '/v2/', { 'x-long': 'a'.repeat(64 * 1024) }));
    expectError(res, 431, 'UNSUPPORTED');
    expectClosed(res);
  });
});

describe('the absolute form of the request target (RFC 9112 §3.2.2) is served as its path', () => {
  beforeAll(async () => {
    const config = emptyConfig();
    await uploadBlob(layover.url, 'edge/abs', config.digest, config.bytes);
    await putManifest(layover.url, 'edge/abs', 'v1', buildManifest({ config, layers: [] }));
  });

  it('GET http://host/v2/ is the API root', async () => {
    const res = await socketExchange(layover.url, head('GET', `http://${layover.host}/v2/`, {}), { waitMs: 300 });
    expect(res.status).toBe(200);
    expect(res.headers['docker-distribution-api-version']).toBe('registry/2.0');
    expect(res.body.toString()).toBe('{}');
  });

  it('a manifest by the absolute form, any scheme case, with the Host header ignored', async () => {
    const plain = await rawRequest(layover.url, 'GET', '/v2/edge/abs/manifests/v1');
    const res = await socketExchange(layover.url, head('GET', `HTTP://${layover.host}/v2/edge/abs/manifests/v1`, { host: 'elsewhere.example' }), { waitMs: 300 });
    expect(res.status).toBe(200);
    expect(res.body.equals(plain.body)).toBe(true);
  });

  it('the path is judged as written: no `..` resolution, errors in the Distribution format', async () => {
    const res = await socketExchange(layover.url, head('GET', `http://${layover.host}/v2/edge/../abs/manifests/v1`, {}), { waitMs: 300 });
    expectError(res, 400, 'NAME_INVALID');
    const empty = await socketExchange(layover.url, head('GET', `http://${layover.host}`, {}), { waitMs: 300 });
    expect(empty.status).toBe(404);
    expect(empty.headers['content-type']).toMatch(/^application\/json/);
  });

  it('the authority replaces the Host header in the token realm', async () => {
    const secured = await startLayover({ auth: { enabled: true, users: [{ name: 'admin', password: 'admin-password-1', admin: true }] } });
    try {
      const res = await socketExchange(secured.url, head('GET', `http://${secured.host}/v2/`, { host: 'evil.example' }), { waitMs: 300 });
      expectError(res, 401, 'UNAUTHORIZED');
      expect(res.headers['www-authenticate']).toContain(`realm="http://${secured.host}/token"`);
    } finally {
      await secured.close();
    }
  });
});

// Found by the fuzz run (registry-fuzz.test.ts).
describe('what the fuzz run found', () => {
  it('bytes the parser refuses after a complete request do not cost that request its answer', async () => {
    for (const trailing of [
      head('GET', '/v2/', { 'content-length': '0' }) + 'x',
      `${head('GET', '/v2/', { 'transfer-encoding': 'chunked' })}0\r\n\r\n0\r\n\r\n`,
    ]) {
      const res = await socketExchange(layover.url, trailing);
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe('{}');
      expect(res.closedAfterMs).toBeDefined();
    }
  });

  it('a request the parser refuses keeps its answer while its large body is still arriving', async () => {
    // In its own process: sharing the test's event loop, the server never sees the body's later reads in time.
    const spawned = await spawnLayover();
    try {
      for (let i = 0; i < 5; i++) {
        for (const bad of [{ 'x-odd': 'a\x01b' }, { 'content-length': 'abc' }] as Record<string, string>[]) {
          const res = await socketExchange(spawned.url, Buffer.concat([Buffer.from(head('PUT', '/v2/edge/repo/manifests/v1', { 'content-length': String(5 << 20), ...bad })), Buffer.alloc(5 << 20, 0x20)]));
          expectError(res, 400, 'UNSUPPORTED');
          expectClosed(res);
        }
      }
    } finally {
      await spawned.close();
    }
  });

  it('an HTTP/1.1 request without Host is 400 in the error format; HTTP/1.0 needs none', async () => {
    const res = await socketExchange(layover.url, 'GET /v2/ HTTP/1.1\r\n\r\n');
    expectError(res, 400, 'UNSUPPORTED');
    expectClosed(res);
    const old = await socketExchange(layover.url, 'GET /v2/ HTTP/1.0\r\n\r\n');
    expect(old.status).toBe(200);
  });

  it('an Expect other than 100-continue is 417 in the error format', async () => {
    const res = await socketExchange(layover.url, head('PUT', '/v2/edge/repo/manifests/v1', { expect: 'x', 'content-length': '2' }) + '{}');
    expectError(res, 417, 'UNSUPPORTED');
    expectClosed(res);
  });

  it('an upstream manifest answer cut short (fewer bytes than its Content-Length) is 502 in the error format, not 500', async () => {
    const answer = 'HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{"schemaVersion":2}';
    const upstream = await startRawUpstream(() => Buffer.from(answer));
    const mirror = await startLayover({ upstreams: [{ prefix: 'cut.example', url: upstream.url }] });
    try {
      for (const method of ['GET', 'HEAD']) {
        const res = await socketExchange(mirror.url, `${method} /v2/cut.example/library/x/manifests/v1 HTTP/1.1\r\nHost: ${mirror.host}\r\n\r\n`, { waitMs: 0 });
        expect(res.status, method).toBe(502);
        if (method === 'GET') expectError(res, 502, String(JSON.parse(res.body.toString()).errors[0].code));
      }
      expect(mirror.log()).not.toMatch(/unhandled error/);
    } finally {
      await mirror.close();
      await upstream.close();
    }
  });

  it('an upstream token endpoint answering malformed JSON, or JSON without a token, is the upstream\'s fault in the error format, never 500', async () => {
    // Here 503 UNAVAILABLE and 403 DENIED; issue12-proxy-limits answers 502 for both (UpstreamBadAnswer).
    for (const [token, statuses] of [['{', [502, 503]], ['null', [403, 502]]] as const) {
      const upstream = await startRawUpstream((port, head) =>
        Buffer.from(head.startsWith('GET /token')
          ? `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${token.length}\r\nConnection: close\r\n\r\n${token}`
          : `HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm="http://127.0.0.1:${port}/token",service="x"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`));
      const mirror = await startLayover({ upstreams: [{ prefix: 'tok.example', url: upstream.url }] });
      try {
        const res = await socketExchange(mirror.url, `GET /v2/tok.example/library/x/manifests/v1 HTTP/1.1\r\nHost: ${mirror.host}\r\n\r\n`, { waitMs: 0 });
        expect(statuses).toContain(res.status);
        expectError(res, res.status, String(JSON.parse(res.body.toString()).errors[0].code));
        expect(mirror.log()).not.toMatch(/unhandled error/);
      } finally {
        await mirror.close();
        await upstream.close();
      }
    }
  });

  it('CONNECT is 405 in the error format, and the connection closes', async () => {
    const res = await socketExchange(layover.url, head('CONNECT', '/v2/edge/repo/blobs/uploads/', {}));
    expectError(res, 405, 'UNSUPPORTED');
    expectClosed(res);
  });

  it('errors raised before the route (a refused Content-Type, an unrouted method) carry Docker-Distribution-API-Version', async () => {
    expectError(await socketExchange(layover.url, head('POST', '/v2/edge/repo/blobs/uploads/', { 'content-type': '', 'content-length': '0' }), { waitMs: 0 }), 415, 'UNSUPPORTED');
    expectError(await socketExchange(layover.url, head('OPTIONS', '/v2/edge/repo/tags/list', {}), { waitMs: 0 }), 404, 'UNSUPPORTED');
  });
});

describe('Expect: 100-continue', () => {
  // node says "100 Continue" as soon as the headers are in, before the request is checked; Go's
  // net/http (Docker Distribution) says it only once the handler reads the body. A request
  // refused before that must be answered without the client having been told to send its body.
  const expectHead = (target: string, headers: Record<string, string>): string => head('PUT', target, { expect: '100-continue', ...headers });

  it('a manifest declared above the limit: 413 at once, no 100 Continue first', async () => {
    const res = await socketExchange(layover.url, expectHead('/v2/edge/cont/manifests/v1', { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': String(10 * 2 ** 20) }));
    expectError(res, 413, 'SIZE_INVALID');
    expect(res.interim).toEqual([]);
  });

  it('an upload without credentials: 401 at once, no 100 Continue first', async () => {
    const secured = await startLayover({ auth: { enabled: true, users: [{ name: 'admin', password: 'admin-password-1', admin: true }] } });
    try {
      const target = `/v2/admin/cont/blobs/uploads/?digest=${DIGEST}`;
      const lines = Object.entries({ host: secured.host, expect: '100-continue', 'content-length': String(2 ** 20) }).map(([k, v]) => `${k}: ${v}\r\n`);
      const res = await socketExchange(secured.url, `POST ${target} HTTP/1.1\r\n${lines.join('')}\r\n`);
      expectError(res, 401, 'UNAUTHORIZED');
      expect(res.interim).toEqual([]);
    } finally {
      await secured.close();
    }
  });

  it('a request whose body is read gets 100 Continue: curl uploads a blob with it', async () => {
    const dir = makeTempDir('layover-expect-');
    try {
      const blob = randomBlob(3 * 2 ** 20, 'expect-continue');
      const file = path.join(dir.path, 'blob');
      writeFileSync(file, blob.bytes);
      const location = (await rawRequest(layover.url, 'POST', '/v2/edge/curl/blobs/uploads/', { 'content-length': '0' })).headers.location;
      const put = `${layover.url}${String(location)}${String(location).includes('?') ? '&' : '?'}digest=${blob.digest}`;
      const { stdout, stderr } = await runTool('curl', ['-sS', '-v', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'PUT', '-H', 'Expect: 100-continue', '-H', 'Content-Type: application/octet-stream', '--data-binary', `@${file}`, put]);
      expect(stdout).toBe('201');
      expect(stderr).toMatch(/< HTTP\/1\.1 100 Continue/);
      const back = await rawRequest(layover.url, 'GET', `/v2/edge/curl/blobs/${blob.digest}`);
      expect(back.status).toBe(200);
      expect(back.body.equals(blob.bytes)).toBe(true);
    } finally {
      dir.cleanup();
    }
  });
});
