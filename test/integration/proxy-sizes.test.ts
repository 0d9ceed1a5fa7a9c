// An upstream that lies about a blob's size is refused before a byte is written: a length other
// than the manifest's descriptor (502), above the upstream's maxBlobSize (502), or more than the
// storage has free (507); and a body longer than its Content-Length never gets past it. Against
// a bare-socket upstream on 127.0.0.1 that declares whatever it is told.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/registry/digest.js';
import type { ComposedStore } from '../../src/registry/storage/composed-store.js';
import { EmbeddedStore } from '../../src/registry/storage/embedded.js';
import { openStoreOf, startLayover, type InProcessLayover } from '../helpers/layover.js';
import { writesInProgress } from '../helpers/stored-content.js';
import { startLyingUpstream, type LyingAnswer, type LyingUpstream } from '../helpers/lying-upstream.js';
import { buildManifest, emptyConfig, randomBlob, type Content } from '../helpers/oci-content.js';
import { waitFor } from '../helpers/wait-for.js';

const TWENTY_GIB = 20 * 2 ** 30;
const config = emptyConfig();
/** Repositories of the liar and the layer its manifest describes: `huge` and `short` lie about it, `over` sends junk after it. */
const layers = new Map<string, Content>(['huge', 'short', 'over'].map((name) => [name, randomBlob(300_000, `sizes-${name}`)]));
const manifests = new Map([...layers].map(([name, layer]) => [name, buildManifest({ config, layers: [layer] })]));
const unlisted = randomBlob(50_000, 'sizes-unlisted');

let liar: LyingUpstream;
let layover: InProcessLayover;

function lie({ method, path: p }: { method: string; path: string }): LyingAnswer {
  if (p === '/v2/') return { status: 200, headers: { 'Content-Length': '2' }, body: Buffer.from('{}') };
  const m = /^\/v2\/team\/(\w+)\/(manifests|blobs)\/(.+)$/.exec(p);
  const name = m?.[1] ?? '';
  if (m?.[2] === 'manifests') {
    const manifest = manifests.get(name);
    if (!manifest) return { status: 404, headers: { 'Content-Length': '0' } };
    return { status: 200, headers: { 'Content-Type': manifest.mediaType, 'Content-Length': String(manifest.size), 'Docker-Content-Digest': manifest.digest }, body: method === 'GET' ? manifest.bytes : undefined };
  }
  const digest = m?.[3] ?? '';
  const head = (length: number) => ({ 'Content-Length': String(length), 'Docker-Content-Digest': digest, 'Content-Type': 'application/octet-stream' });
  const layer = layers.get(name);
  const declared = { huge: TWENTY_GIB, nomanifest: 2 * 2 ** 20, petabyte: 2 ** 50 }[name];
  if (declared !== undefined) {
    // Declares 20 GiB, 2 MiB (past a cap) or a petabyte; sends 1 MiB, and stalls.
    return { status: 200, headers: head(declared), body: method === 'GET' ? Buffer.alloc(2 ** 20, 7) : undefined, hold: true };
  }
  if (name === 'short' && layer) return { status: 200, headers: head(layer.size - 10), body: method === 'GET' ? Buffer.from(layer.bytes).subarray(0, layer.size - 10) : undefined };
  if (name === 'over' && layer) {
    return { status: 200, headers: head(layer.size), body: method === 'GET' ? Buffer.concat([Buffer.from(layer.bytes), Buffer.alloc(2 ** 20, 9)]) : undefined };
  }
  return { status: 404, headers: { 'Content-Length': '0' } };
}

/** Status and body, or 'timeout' when nothing settles within 5 s (a download that never ends). */
async function fetchWithin(url: string, method: 'GET' | 'HEAD' = 'GET'): Promise<{ status: number | 'timeout' | 'cut'; body: Buffer }> {
  try {
    const res = await request(url, { method, signal: AbortSignal.timeout(5000) });
    const body = Buffer.from(await res.body.arrayBuffer());
    return { status: res.statusCode, body };
  } catch (err) {
    return { status: (err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError' ? 'timeout' : 'cut', body: Buffer.alloc(0) };
  }
}

const code = (body: Buffer) => (JSON.parse(body.toString()) as { errors: { code: string; message: string }[] }).errors[0];
/** No download is left writing (small metadata writes, such as pull records, come and go). */
const nothingWritten = () => waitFor(async () => (await writesInProgress(layover)).length === 0, 3000);
// The suite's PostgreSQL/S3 modes: a store of its own on the same database and bucket.
const onSharedStore = () => layover.config.database !== undefined || layover.config.storage.driver === 's3';
let shared: ComposedStore | undefined;
const store = async (): Promise<ComposedStore> => (onSharedStore() ? (shared ??= await openStoreOf(layover)) : new EmbeddedStore(layover.root));
/** An object store has no free space to compare a declared size with: that check is the filesystem's. */
const onS3 = process.env.LAYOVER_TEST_STORAGE === 's3';

beforeAll(async () => {
  liar = await startLyingUpstream(lie);
  layover = await startLayover({
    upstreams: [
      { prefix: 'lie', url: liar.url },
      { prefix: 'capped', url: liar.url, maxBlobSize: '1MiB' },
    ],
  });
}, 60_000);

afterAll(async () => {
  await shared?.close();
  await layover?.close();
  await liar?.close();
});

describe('declared blob sizes', () => {
  it('20 GiB declared for a layer its manifest gives as 300 kB: 502, nothing written, the upstream cut off', async () => {
    const layer = layers.get('huge') as Content;
    const manifest = manifests.get('huge') as Content;
    expect((await fetchWithin(`${layover.url}/v2/lie/team/huge/manifests/${manifest.digest}`)).status).toBe(200);
    const started = Date.now();
    const res = await fetchWithin(`${layover.url}/v2/lie/team/huge/blobs/${layer.digest}`);
    expect(res.status).toBe(502);
    expect(code(res.body)).toMatchObject({ code: 'SIZE_INVALID', message: expect.stringMatching(/declared 21474836480 bytes .* 300000/) });
    expect(Date.now() - started).toBeLessThan(2000);
    await nothingWritten();
    await waitFor(() => liar.hungUp(`/v2/team/huge/blobs/${layer.digest}`), 3000);
    expect(await (await store()).statBlob(layer.digest as Digest)).toBeUndefined();
    // A HEAD that claims the same is refused as well.
    expect((await fetchWithin(`${layover.url}/v2/lie/team/huge/blobs/${layer.digest}`, 'HEAD')).status).toBe(502);
  });

  it('fewer bytes declared than the manifest says: 502 before anything is written', async () => {
    const layer = layers.get('short') as Content;
    expect((await fetchWithin(`${layover.url}/v2/lie/team/short/manifests/${(manifests.get('short') as Content).digest}`)).status).toBe(200);
    const res = await fetchWithin(`${layover.url}/v2/lie/team/short/blobs/${layer.digest}`);
    expect(res.status).toBe(502);
    expect(code(res.body)?.code).toBe('SIZE_INVALID');
    await nothingWritten();
  });

  it('no manifest known, more than the upstream\'s maxBlobSize declared: 502 SIZE_INVALID, nothing written', async () => {
    const res = await fetchWithin(`${layover.url}/v2/capped/team/nomanifest/blobs/${unlisted.digest}`);
    expect(res.status).toBe(502);
    expect(code(res.body)).toMatchObject({ code: 'SIZE_INVALID', message: expect.stringMatching(/maxBlobSize/) });
    await nothingWritten();
  });

  it.skipIf(onS3)('no manifest known, more than the storage has free declared: 507 storage is full, nothing written (filesystem only: an object store has no free space)', async () => {
    const res = await fetchWithin(`${layover.url}/v2/lie/team/petabyte/blobs/${unlisted.digest}`);
    expect(res.status).toBe(507);
    expect(code(res.body)).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/^storage is full: .*1125899906842624 bytes/) });
    await nothingWritten();
  });

  it('a body longer than its Content-Length: the client gets exactly the blob, and no byte past it is stored', async () => {
    const layer = layers.get('over') as Content;
    expect((await fetchWithin(`${layover.url}/v2/lie/team/over/manifests/${(manifests.get('over') as Content).digest}`)).status).toBe(200);
    const res = await fetchWithin(`${layover.url}/v2/lie/team/over/blobs/${layer.digest}`);
    expect(res.status).toBe(200);
    expect(res.body.equals(Buffer.from(layer.bytes))).toBe(true);
    // The last byte went on the digest's verdict; the commit lands just behind it (this store is
    // not the server's, so it does not wait for that commit as the server's own reads do).
    expect((await waitFor(async () => (await store()).statBlob(layer.digest as Digest)))?.size).toBe(layer.size);
    await nothingWritten();
  });
});
