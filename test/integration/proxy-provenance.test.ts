// A mirror serves a blob only if its upstream delivered it: content already in the store (pushed
// by a user, or cached from another upstream) is not handed out on an upstream's word (a HEAD).
// Against an upstream that answers 200 for any digest, and a real docker-registry behind the
// counting relay for the legitimate reuse.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/registry/digest.js';
import type { ComposedStore } from '../../src/registry/storage/composed-store.js';
import { EmbeddedStore } from '../../src/registry/storage/embedded.js';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { openStoreOf, startLayover, type InProcessLayover } from '../helpers/layover.js';
import { startLyingUpstream, type LyingAnswer, type LyingUpstream } from '../helpers/lying-upstream.js';
import { randomBlob, type Content } from '../helpers/oci-content.js';
import { basicAuthHeader, uploadBlob, type Auth } from '../helpers/registry-client.js';
import { waitFor } from '../helpers/wait-for.js';

const ALICE: Auth = { user: 'alice', password: 'alice-secret-1' };
const BOB: Auth = { user: 'bob', password: 'bob-secret-2' };
const WRONG = Buffer.from('these are not the bytes you asked for');

let liar: LyingUpstream;
let upstream: DockerRegistry;
let relay: CountingProxy;
let layover: InProcessLayover;

/**
 * A second view of the layover's storage: the embedded store on its root (no init: that would
 * clear its temporary files), or in the suite's PostgreSQL/S3 modes one on the same database and
 * bucket, opened once and closed at the end.
 */
let shared: ComposedStore | undefined;
const store = async (): Promise<EmbeddedStore | ComposedStore> => {
  if (!layover.config.database && layover.config.storage.driver !== 's3') return new EmbeddedStore(layover.root);
  shared ??= await openStoreOf(layover);
  return shared;
};
const blobPath = (repo: string, digest: string) => `/v2/${repo}/blobs/${digest}`;

/** Status and whatever body bytes arrived; a cut connection is not an error here (status 0 before the headers). */
async function fetchAll(url: string, method: 'GET' | 'HEAD', auth?: Auth): Promise<{ status: number; body: Buffer; length?: string }> {
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(url, { method, headers: auth ? { authorization: basicAuthHeader(auth) } : {} });
  } catch {
    return { status: 0, body: Buffer.alloc(0) }; // cut before the headers
  }
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) chunks.push(chunk);
  } catch {
    // cut: the bytes so far are what the client got
  }
  const length = res.headers['content-length'];
  return { status: res.statusCode, body: Buffer.concat(chunks), length: typeof length === 'string' ? length : undefined };
}

beforeAll(async () => {
  // Says yes to every blob: HEAD 200 with a length; GET 200 with the wrong bytes (`wrong/*`),
  // an empty body (`empty/*`) or no length at all (`nolength/*`).
  liar = await startLyingUpstream(({ method, path }): LyingAnswer => {
    if (path === '/v2/') return { status: 200, headers: { 'Content-Length': '2' }, body: Buffer.from('{}') };
    const m = /^\/v2\/(\w+)\/x\/blobs\/(sha256:[0-9a-f]{64})$/.exec(path);
    if (!m) return { status: 404, headers: { 'Content-Length': '0' } };
    const digest = m[2] as string;
    if (method === 'HEAD') return { status: 200, headers: { 'Content-Length': String(WRONG.length), 'Docker-Content-Digest': digest } };
    if (m[1] === 'empty') return { status: 200, headers: { 'Content-Length': '0', 'Docker-Content-Digest': digest } };
    if (m[1] === 'nolength') return { status: 200, headers: { 'Docker-Content-Digest': digest } };
    return { status: 200, headers: { 'Content-Length': String(WRONG.length), 'Docker-Content-Digest': digest }, body: WRONG };
  });
  upstream = await startDockerRegistry();
  relay = await startCountingProxy(upstream.url);
  layover = await startLayover({
    upstreams: [
      { prefix: 'lie', url: liar.url },
      { prefix: 'up', url: relay.url },
    ],
    auth: { enabled: true, anonymous: true, users: [{ name: 'alice', password: ALICE.password }, { name: 'bob', password: BOB.password }] },
  });
}, 60_000);

afterAll(async () => {
  await shared?.close();
  await layover?.close();
  await relay?.close();
  await upstream?.close();
  await liar?.close();
});

describe('an upstream that claims every digest', () => {
  let secret: Content;
  beforeAll(async () => {
    secret = randomBlob(200_000, 'alice-private-blob');
    await uploadBlob(layover.url, 'alice/secret', secret.digest, Buffer.from(secret.bytes), ALICE);
  });

  it.each(['wrong', 'empty', 'nolength'])('bob cannot read alice\'s private blob through lie/%s/x, nor can anonymous; nothing is linked', async (variant) => {
    const repo = `lie/${variant}/x`;
    for (const who of [BOB, undefined]) {
      const res = await fetchAll(`${layover.url}${blobPath(repo, secret.digest)}`, 'GET', who);
      expect(res.body.includes(Buffer.from(secret.bytes).subarray(0, 64))).toBe(false);
      expect(res.status === 200 && res.length === String(secret.size)).toBe(false);
      // Nor any complete success: an empty body for this digest is no more the blob than wrong bytes.
      expect(res.status === 200 && res.length !== undefined && res.body.length === Number(res.length)).toBe(false);
    }
    expect(await (await store()).blobLinked(repo, secret.digest as Digest)).toBe(false);
    // The bytes were fetched from the liar (a GET), not taken on the word of a HEAD.
    expect(liar.requests().filter((r) => r.path === `/v2/${variant}/x/blobs/${secret.digest}` && r.method === 'GET').length).toBeGreaterThan(0);
  });

  it('a HEAD through the liar links nothing and does not tell alice\'s size', async () => {
    const res = await fetchAll(`${layover.url}${blobPath('lie/head/x', secret.digest)}`, 'HEAD', BOB);
    expect(res.length).not.toBe(String(secret.size));
    expect(await (await store()).blobLinked('lie/head/x', secret.digest as Digest)).toBe(false);
    const after = await fetchAll(`${layover.url}${blobPath('lie/head/x', secret.digest)}`, 'GET', BOB);
    expect(after.body.includes(Buffer.from(secret.bytes).subarray(0, 64))).toBe(false);
  });

  it('bob cannot mount alice\'s blob from the mirror repository he tried it through', async () => {
    await fetchAll(`${layover.url}${blobPath('lie/mount/x', secret.digest)}`, 'GET', BOB);
    const res = await request(`${layover.url}/v2/bob/app/blobs/uploads/?mount=${secret.digest}&from=lie/mount/x`, {
      method: 'POST',
      headers: { authorization: basicAuthHeader(BOB), 'content-length': '0' },
    });
    await res.body.dump();
    expect(res.statusCode).toBe(202); // an upload session, not 201 Created
    expect(await (await store()).blobLinked('bob/app', secret.digest as Digest)).toBe(false);
  });

  it('nor by mounting without from once he tried it through every lying mirror repository', async () => {
    for (const variant of ['wrong', 'empty', 'nolength', 'head', 'mount']) await fetchAll(`${layover.url}${blobPath(`lie/${variant}/x`, secret.digest)}`, 'GET', BOB);
    for (const who of [BOB, undefined]) {
      const res = await request(`${layover.url}/v2/bob/found/blobs/uploads/?mount=${secret.digest}`, {
        method: 'POST',
        headers: { ...(who ? { authorization: basicAuthHeader(who) } : {}), 'content-length': '0' },
      });
      await res.body.dump();
      expect(res.statusCode).toBe(who ? 202 : 401);
    }
    expect(await (await store()).blobLinked('bob/found', secret.digest as Digest)).toBe(false);
  });
});

describe('mounting mirrored content without from', () => {
  it('a blob the upstream delivered to a mirror repository mounts into the caller\'s own repository', async () => {
    const blob = randomBlob(80_000, 'provenance-mount-mirrored');
    await uploadBlob(upstream.url, 'team/base', blob.digest, Buffer.from(blob.bytes));
    expect((await fetchAll(`${layover.url}${blobPath('up/team/base', blob.digest)}`, 'GET', BOB)).status).toBe(200);
    relay.reset();
    const res = await request(`${layover.url}/v2/bob/built/blobs/uploads/?mount=${blob.digest}`, {
      method: 'POST',
      headers: { authorization: basicAuthHeader(BOB), 'content-length': '0' },
    });
    await res.body.dump();
    expect(res.statusCode).toBe(201);
    expect(relay.count('GET', blobPath('team/base', blob.digest))).toBe(0);
    const got = await fetchAll(`${layover.url}${blobPath('bob/built', blob.digest)}`, 'GET', BOB);
    expect(got.body.equals(Buffer.from(blob.bytes))).toBe(true);
  });
});

describe('blobs that are already stored, from a real upstream', () => {
  it('cached from this upstream for one repository: another repository of it costs an upstream HEAD, no second download', async () => {
    const blob = randomBlob(150_000, 'provenance-shared');
    await uploadBlob(upstream.url, 'team/one', blob.digest, Buffer.from(blob.bytes));
    await uploadBlob(upstream.url, 'team/two', blob.digest, Buffer.from(blob.bytes));
    const first = await fetchAll(`${layover.url}${blobPath('up/team/one', blob.digest)}`, 'GET', BOB);
    expect(first.status).toBe(200);
    expect(first.body.equals(Buffer.from(blob.bytes))).toBe(true);
    relay.reset();
    const second = await fetchAll(`${layover.url}${blobPath('up/team/two', blob.digest)}`, 'GET', BOB);
    expect(second.status).toBe(200);
    expect(second.body.equals(Buffer.from(blob.bytes))).toBe(true);
    expect(relay.count('HEAD', blobPath('team/two', blob.digest))).toBe(1);
    expect(relay.count('GET', blobPath('team/two', blob.digest))).toBe(0);
  });

  it('pushed by a user: the mirror downloads and verifies the upstream\'s bytes before it serves them', async () => {
    const blob = randomBlob(120_000, 'provenance-pushed-first');
    await uploadBlob(layover.url, 'alice/copy', blob.digest, Buffer.from(blob.bytes), ALICE);
    await uploadBlob(upstream.url, 'team/three', blob.digest, Buffer.from(blob.bytes));
    relay.reset();
    const res = await fetchAll(`${layover.url}${blobPath('up/team/three', blob.digest)}`, 'GET', BOB);
    expect(res.status).toBe(200);
    expect(res.body.equals(Buffer.from(blob.bytes))).toBe(true);
    expect(relay.count('GET', blobPath('team/three', blob.digest))).toBe(1);
    // The client's last byte goes on the digest's verdict; the link lands just behind it (this
    // store is not the server's, so it does not wait for that commit as the server's own reads do).
    await waitFor(async () => (await store()).blobLinked('up/team/three', blob.digest as Digest));
    // From now on the upstream has delivered it: another repository of it needs a HEAD only.
    await uploadBlob(upstream.url, 'team/four', blob.digest, Buffer.from(blob.bytes));
    relay.reset();
    expect((await fetchAll(`${layover.url}${blobPath('up/team/four', blob.digest)}`, 'GET', BOB)).status).toBe(200);
    expect(relay.count('GET', blobPath('team/four', blob.digest))).toBe(0);
  });

  it('cached from another upstream: this one must deliver the bytes itself', async () => {
    const blob = randomBlob(100_000, 'provenance-other-upstream');
    await uploadBlob(upstream.url, 'team/five', blob.digest, Buffer.from(blob.bytes));
    expect((await fetchAll(`${layover.url}${blobPath('up/team/five', blob.digest)}`, 'GET', BOB)).status).toBe(200);
    const res = await fetchAll(`${layover.url}${blobPath('lie/wrong/x', blob.digest)}`, 'GET', BOB);
    expect(res.body.includes(Buffer.from(blob.bytes).subarray(0, 64))).toBe(false);
    expect(await (await store()).blobLinked('lie/wrong/x', blob.digest as Digest)).toBe(false);
  });
});
