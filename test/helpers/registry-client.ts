// A minimal Distribution API client over undici for tests and benchmarks that need exact
// control of requests (raw blob uploads, manifest PUTs) rather than a full client like skopeo.
import { createReadStream, statSync } from 'node:fs';
import { request } from 'undici';
import type { Content } from './oci-content.js';

export interface Auth { user: string; password: string }

export function basicAuthHeader(auth: Auth): string {
  return `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}`;
}

function headers(auth: Auth | undefined, extra: Record<string, string> = {}): Record<string, string> {
  return auth ? { authorization: basicAuthHeader(auth), ...extra } : extra;
}

async function expectStatus(res: { statusCode: number; body: { text(): Promise<string> } }, want: number, what: string): Promise<void> {
  if (res.statusCode !== want) throw new Error(`${what}: HTTP ${res.statusCode}: ${(await res.body.text()).slice(0, 500)}`);
}

/**
 * Monolithic upload in two requests (POST, then PUT with `?digest=`), the way most clients push.
 * `body` is the bytes or the path of a file, which is streamed. Returns the blob's Location.
 */
export async function uploadBlob(baseUrl: string, repo: string, digest: string, body: Buffer | { file: string }, auth?: Auth): Promise<string> {
  const start = await request(`${baseUrl}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: headers(auth, { 'content-length': '0' }) });
  await expectStatus(start, 202, `POST /v2/${repo}/blobs/uploads/`);
  await start.body.dump();
  const location = start.headers.location;
  if (typeof location !== 'string') throw new Error('upload POST answered without a Location');
  const target = new URL(location, baseUrl);
  target.searchParams.set('digest', digest);
  const size = Buffer.isBuffer(body) ? body.length : statSync(body.file).size;
  const put = await request(target, {
    method: 'PUT',
    headers: headers(auth, { 'content-type': 'application/octet-stream', 'content-length': String(size) }),
    body: Buffer.isBuffer(body) ? body : createReadStream(body.file),
  });
  await expectStatus(put, 201, `PUT ${target.pathname}`);
  await put.body.dump();
  return String(put.headers.location ?? '');
}

export async function putManifest(baseUrl: string, repo: string, reference: string, manifest: Content, auth?: Auth): Promise<void> {
  const res = await request(`${baseUrl}/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: headers(auth, { 'content-type': manifest.mediaType }),
    body: manifest.bytes,
  });
  await expectStatus(res, 201, `PUT manifest ${repo}:${reference}`);
  await res.body.dump();
}

/** Pushes every blob, then the manifest: a whole image through the raw API. */
export async function pushContent(baseUrl: string, repo: string, reference: string, blobs: Content[], manifest: Content, auth?: Auth): Promise<void> {
  for (const blob of blobs) await uploadBlob(baseUrl, repo, blob.digest, blob.bytes, auth);
  await putManifest(baseUrl, repo, reference, manifest, auth);
}

/** GETs a URL and returns status, headers and the body's bytes. */
export async function getBytes(url: string, opts: { auth?: Auth; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  const res = await request(url, { headers: headers(opts.auth, opts.headers) });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
}
