// The HTTP edge against a real listening layover, on bare sockets: bodies refused before they are
// read close the connection instead of leaving it open, and what node's HTTP parser or router
// would answer in its own format (control bytes, the absolute form) is a Distribution answer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { rawRequest, socketExchange, type SocketAnswer } from '../helpers/raw-http.js';

let layover: InProcessLayover;
const LIMIT = 4096;

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
