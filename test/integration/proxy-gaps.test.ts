// Pull-through gaps against real servers on loopback: blob redirects to a "CDN" on another
// loopback address (credentials must not follow), TLS per upstream (custom CA, none, insecure)
// with a docker-registry serving HTTPS, and renewal of short-lived upstream tokens.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/resolve.js';
import { UpstreamClient } from '../../src/registry/proxy/upstream-client.js';
import type { ComposedStore } from '../../src/registry/storage/composed-store.js';
import { EmbeddedStore } from '../../src/registry/storage/embedded.js';
import type { Digest } from '../../src/registry/digest.js';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { openStoreOf, startLayover, type InProcessLayover, type RunningLayover } from '../helpers/layover.js';
import { computeDigest, randomBlob, type Content } from '../helpers/oci-content.js';
import { makeOciImage, type OciImage } from '../helpers/oci-layout.js';
import { getBytes } from '../helpers/registry-client.js';
import { runTool } from '../helpers/run-tool.js';
import { skopeoCopy, skopeoInspect } from '../helpers/skopeo.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';

// The mirror's storage read from the side: the embedded store on its root, or, on the suite's
// PostgreSQL/S3 modes, a store of its own on the same database and bucket (closed at the end).
const besides: ComposedStore[] = [];
afterAll(async () => {
  for (const store of besides.splice(0)) await store.close();
});
async function storeBeside(l: Pick<RunningLayover, 'root' | 'config'>): Promise<ComposedStore> {
  if (!l.config.database && l.config.storage.driver !== 's3') return new EmbeddedStore(l.root);
  const store = await openStoreOf(l);
  besides.push(store);
  return store;
}

let tmp: TempDir;
beforeAll(() => {
  tmp = makeTempDir('layover-proxy-gaps-');
});
afterAll(() => tmp?.cleanup());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- a registry that redirects blob GETs, and a CDN on another loopback address ----

interface Seen {
  server: 'upstream' | 'cdn';
  method: string;
  path: string;
  authorization: string | undefined;
}

interface Listening {
  server: http.Server;
  url: string;
}

async function listen(host: string, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Listening> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: 0 }, () => resolve());
  });
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('no address');
  return { server, url: `http://${host}:${address.port}` };
}

async function shut(l: Listening | undefined): Promise<void> {
  if (!l) return;
  l.server.closeAllConnections();
  await new Promise<void>((resolve) => l.server.close(() => resolve()));
}

const BASIC = { user: 'cdnuser', password: 'cdn-secret-7' };
const TOKEN = 'upstream-token-abc123';

/**
 * A Distribution-like upstream that knows blobs only: `/v2/cdn/app/blobs/<d>` redirects (307) to
 * the CDN host, `/v2/same/app/blobs/<d>` to a path on itself, `/v2/bad/app/blobs/<d>` to a CDN
 * path that serves the bytes with one flipped. Auth is Basic or the token flow.
 */
async function startRedirectingUpstream(scheme: 'basic' | 'bearer', blobs: Content[], cdnHost: string) {
  const seen: Seen[] = [];
  const byDigest = new Map(blobs.map((b) => [b.digest, b]));
  const serve = (res: ServerResponse, method: string, blob: Content | undefined, flip = false) => {
    if (!blob) return void res.writeHead(404, { 'content-length': '0' }).end();
    const bytes = Buffer.from(blob.bytes);
    if (flip) bytes[10] = (bytes[10] ?? 0) ^ 0xff;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length), 'docker-content-digest': blob.digest });
    res.end(method === 'HEAD' ? undefined : bytes);
  };
  const cdn = await listen(cdnHost, (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    seen.push({ server: 'cdn', method: req.method ?? '', path: url.pathname, authorization: req.headers.authorization });
    const m = /^\/(blobs|bad-blobs)\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    if (!m || url.searchParams.get('sig') !== 'signed') return void res.writeHead(403, { 'content-length': '0' }).end();
    serve(res, req.method ?? 'GET', byDigest.get(m[2] as string), m[1] === 'bad-blobs');
  });
  const authorized = (value: string | undefined) =>
    scheme === 'basic' ? value === `Basic ${Buffer.from(`${BASIC.user}:${BASIC.password}`).toString('base64')}` : value === `Bearer ${TOKEN}`;
  const upstream = await listen('127.0.0.1', (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const method = req.method ?? 'GET';
    seen.push({ server: 'upstream', method, path: url.pathname, authorization: req.headers.authorization });
    if (url.pathname === '/token') {
      const creds = `Basic ${Buffer.from(`${BASIC.user}:${BASIC.password}`).toString('base64')}`;
      if (req.headers.authorization !== creds) return void res.writeHead(401, { 'content-length': '0' }).end();
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: TOKEN, expires_in: 300 }));
    }
    if (!authorized(req.headers.authorization)) {
      const challenge = scheme === 'basic' ? 'Basic realm="cdn-test"' : `Bearer realm="${upstreamUrl}/token",service="cdn-test"`;
      return void res.writeHead(401, { 'www-authenticate': challenge, 'content-length': '0' }).end();
    }
    if (url.pathname === '/v2/') return void res.writeHead(200, { 'content-length': '2' }).end('{}');
    const local = /^\/local-blobs\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    if (local) return serve(res, method, byDigest.get(local[1] as string));
    const m = /^\/v2\/(cdn|same|bad)\/app\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    if (!m) return void res.writeHead(404, { 'content-length': '0' }).end();
    const digest = m[2] as string;
    const location = m[1] === 'same' ? `/local-blobs/${digest}` : `${cdn.url}/${m[1] === 'bad' ? 'bad-blobs' : 'blobs'}/${digest}?sig=signed`;
    res.writeHead(307, { location, 'content-length': '0' }).end();
  });
  const upstreamUrl = upstream.url;
  return {
    url: upstream.url,
    cdnUrl: cdn.url,
    seen: () => seen.slice(),
    reset: () => void seen.splice(0),
    close: async () => {
      await shut(upstream);
      await shut(cdn);
    },
  };
}

async function pullBlob(mirror: InProcessLayover, repo: string, blob: Content): Promise<{ status: number; digest: string; body: Buffer }> {
  const res = await getBytes(`${mirror.url}/v2/${repo}/blobs/${blob.digest}`);
  return { status: res.status, digest: computeDigest(res.body), body: res.body };
}

describe.each(['basic', 'bearer'] as const)('blob redirects with %s upstream auth', (scheme) => {
  const blobs = [randomBlob(300_000, `redirect-${scheme}-a`), randomBlob(120_000, `redirect-${scheme}-b`), randomBlob(90_000, `redirect-${scheme}-c`)];
  const [onCdn, sameHost, corrupt] = blobs as [Content, Content, Content];
  let upstream: Awaited<ReturnType<typeof startRedirectingUpstream>>;
  let mirror: InProcessLayover;

  beforeAll(async () => {
    // A second loopback address stands in for the CDN: another host as far as origins go.
    upstream = await startRedirectingUpstream(scheme, blobs, '127.0.0.2');
    mirror = await startLayover({ upstreams: [{ prefix: 'r', url: upstream.url, username: BASIC.user, password: BASIC.password }] });
  });
  afterAll(async () => {
    await mirror?.close();
    await upstream?.close();
  });

  it('follows a 307 to another host for the bytes, verifies and caches them, and sends that host no Authorization', async () => {
    upstream.reset();
    const got = await pullBlob(mirror, 'r/cdn/app', onCdn);
    expect(got.status).toBe(200);
    expect(got.digest).toBe(onCdn.digest);
    const seen = upstream.seen();
    const upstreamBlob = seen.filter((s) => s.server === 'upstream' && s.path === `/v2/cdn/app/blobs/${onCdn.digest}`);
    const cdn = seen.filter((s) => s.server === 'cdn');
    expect(upstreamBlob.length).toBeGreaterThan(0);
    // The upstream itself got the credentials on the request it redirected...
    const expected = scheme === 'basic' ? /^Basic / : new RegExp(`^Bearer ${TOKEN}$`);
    expect(upstreamBlob.at(-1)?.authorization).toMatch(expected);
    // ...the CDN got the request, without them.
    expect(cdn.map((s) => [s.method, s.path])).toEqual([['GET', `/blobs/${onCdn.digest}`]]);
    expect(cdn[0]?.authorization).toBeUndefined();
    if (scheme === 'bearer') expect(seen.filter((s) => s.path === '/token')).toHaveLength(1);

    // Cached: the second pull is local.
    upstream.reset();
    expect((await pullBlob(mirror, 'r/cdn/app', onCdn)).digest).toBe(onCdn.digest);
    expect(upstream.seen()).toEqual([]);
    expect(await (await storeBeside(mirror)).statBlob(onCdn.digest as Digest)).toEqual({ digest: onCdn.digest, size: onCdn.size });
  });

  it('keeps the Authorization on a redirect to the same host', async () => {
    upstream.reset();
    const got = await pullBlob(mirror, 'r/same/app', sameHost);
    expect(got.status).toBe(200);
    expect(got.digest).toBe(sameHost.digest);
    const local = upstream.seen().filter((s) => s.path === `/local-blobs/${sameHost.digest}`);
    expect(local).toHaveLength(1);
    expect(local[0]?.authorization).toMatch(scheme === 'basic' ? /^Basic / : /^Bearer /);
    expect(upstream.seen().filter((s) => s.server === 'cdn')).toEqual([]);
  });

  it('bytes from the CDN that do not match the digest: the client errors and nothing is cached', async () => {
    upstream.reset();
    // Either an error status, or a body cut before its last byte: never the whole blob.
    let received = 0;
    let outcome: string;
    try {
      const res = await fetch(`${mirror.url}/v2/r/bad/app/blobs/${corrupt.digest}`);
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) received += chunk.length;
      outcome = `status ${res.status}`;
    } catch {
      outcome = 'cut';
    }
    expect(outcome).toMatch(/^(cut|status 5\d\d)$/);
    expect(received).toBeLessThan(corrupt.size);
    expect(upstream.seen().filter((s) => s.server === 'cdn' && s.path.startsWith('/bad-blobs/'))).toHaveLength(1);
    expect(await (await storeBeside(mirror)).statBlob(corrupt.digest as Digest)).toBeUndefined();
  });
});

// ---- TLS per upstream ----

async function openssl(args: string[]): Promise<void> {
  await runTool('openssl', args, { cwd: tmp.path });
}

describe('TLS per upstream: docker-registry serving HTTPS', () => {
  let caSigned: DockerRegistry;
  let selfSigned: DockerRegistry;
  let image: OciImage;
  let mirror: InProcessLayover;
  let caFile: string;

  beforeAll(async () => {
    const d = tmp.path;
    caFile = `${d}/ca.crt`;
    writeFileSync(`${d}/server.ext`, 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n');
    await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${d}/ca.key`, '-out', caFile, '-days', '2', '-subj', '/CN=layover test CA']);
    await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${d}/server.key`, '-out', `${d}/server.csr`, '-subj', '/CN=127.0.0.1']);
    await openssl(['x509', '-req', '-in', `${d}/server.csr`, '-CA', caFile, '-CAkey', `${d}/ca.key`, '-CAcreateserial', '-out', `${d}/server.crt`, '-days', '2', '-extfile', `${d}/server.ext`]);
    await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${d}/self.key`, '-out', `${d}/self.crt`, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);

    [caSigned, selfSigned] = await Promise.all([
      startDockerRegistry({ tls: { certificate: `${d}/server.crt`, key: `${d}/server.key` } }),
      startDockerRegistry({ tls: { certificate: `${d}/self.crt`, key: `${d}/self.key` } }),
    ]);
    image = await makeOciImage(`${d}/tls-image`, { layers: 2, tag: 'v1', seed: 'proxy-gaps-tls' });
    await skopeoCopy(image.ref, `docker://${caSigned.host}/team/app:v1`);
    await skopeoCopy(image.ref, `docker://${selfSigned.host}/team/app:v1`);
    mirror = await startLayover({
      upstreams: [
        { prefix: 'withca', url: caSigned.url, ca: caFile },
        { prefix: 'noca', url: caSigned.url },
        { prefix: 'insecure', url: selfSigned.url, insecure: true },
        { prefix: 'selfnoca', url: selfSigned.url },
      ],
      // The failing upstreams must fail for their certificate, not because a breaker opened.
      cache: { downAfterFailures: 100 },
    });
  }, 60_000);
  afterAll(async () => {
    await mirror?.close();
    await caSigned?.close();
    await selfSigned?.close();
  });

  it('the URLs really are HTTPS with certificates Node does not trust by itself', async () => {
    expect(caSigned.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    await expect(fetch(`${caSigned.url}/v2/`)).rejects.toThrow();
    await expect(fetch(`${selfSigned.url}/v2/`)).rejects.toThrow();
  });

  it('with `ca:` the mirror pulls the image, digests equal to the upstream', async () => {
    await skopeoCopy(`docker://${mirror.host}/withca/team/app:v1`, `oci:${tmp.path}/tls-out:v1`);
    const raw = await skopeoInspect(`docker://${mirror.host}/withca/team/app:v1`, { raw: true });
    expect(raw.equals(image.manifest.bytes)).toBe(true);
    const store = (await storeBeside(mirror));
    for (const layer of image.layers) expect(await store.blobLinked('withca/team/app', layer.digest as Digest)).toBe(true);
  });

  it('a 24 MiB layer over TLS (read into slabs), three clients at once: exact bytes, and the blob is stored', async () => {
    const big = await makeOciImage(`${tmp.path}/tls-big`, { layers: [24 * 1024 * 1024], tag: 'big', seed: 'proxy-gaps-tls-big', gzipLevel: 1 });
    await skopeoCopy(big.ref, `docker://${caSigned.host}/team/big:v1`);
    const layer = big.layers[0] as OciImage['layers'][number];
    expect(layer.size).toBeGreaterThan(24 * 1024 * 1024);
    const url = `${mirror.url}/v2/withca/team/big/blobs/${layer.digest}`;
    const bodies = await Promise.all([getBytes(url), getBytes(url), getBytes(url)]);
    for (const res of bodies) {
      expect(res.status).toBe(200);
      expect(computeDigest(res.body)).toBe(layer.digest);
    }
    expect(await (await storeBeside(mirror)).blobLinked('withca/team/big', layer.digest as Digest)).toBe(true);
  });

  it('with `insecure: true` a self-signed upstream works', async () => {
    const res = await getBytes(`${mirror.url}/v2/insecure/team/app/manifests/v1`, { headers: { accept: image.manifest.mediaType } });
    expect(res.status).toBe(200);
    expect(computeDigest(res.body)).toBe(image.manifest.digest);
    const layer = image.layers[0] as OciImage['layers'][number];
    const blob = await getBytes(`${mirror.url}/v2/insecure/team/app/blobs/${layer.digest}`);
    expect(blob.status).toBe(200);
    expect(computeDigest(blob.body)).toBe(layer.digest);
  });

  it.each([
    ['noca', 'a CA-signed upstream without `ca:`'],
    ['selfnoca', 'a self-signed upstream without `insecure`'],
  ])('%s: %s fails with a clear UNAVAILABLE error and the mirror keeps serving', async (prefix) => {
    for (const path of ['manifests/v1', `blobs/${image.layers[0]?.digest}`]) {
      const res = await getBytes(`${mirror.url}/v2/${prefix}/team/app/${path}`);
      expect(res.status).toBe(503);
      expect(String(res.headers['content-type'])).toMatch(/application\/json/);
      const error = JSON.parse(res.body.toString()).errors[0];
      expect(error.code).toBe('UNAVAILABLE');
      expect(error.message).toMatch(new RegExp(`upstream ${prefix} .*certificate`));
    }
    expect(mirror.log()).toMatch(/certificate/);
    expect((await getBytes(`${mirror.url}/v2/`)).status).toBe(200);
    const ok = await getBytes(`${mirror.url}/v2/withca/team/app/manifests/v1`, { headers: { accept: image.manifest.mediaType } });
    expect(ok.status).toBe(200);
  });
});

// ---- short-lived upstream tokens ----

describe('token renewal against a layover upstream issuing 2-second tokens', () => {
  let upstream: InProcessLayover;
  let relay: CountingProxy;
  let image: OciImage;
  const USER = { user: 'renewbot', password: 'renew-bot-pw-1' };
  const tokenRequests = () => relay.requests().filter((r) => r.path === '/token');
  const refused = () => relay.requests().filter((r) => r.path.startsWith('/v2/renewbot/') && r.status === 401);

  beforeAll(async () => {
    upstream = await startLayover({ auth: { enabled: true, tokenTTL: '2s', users: [{ name: USER.user, password: USER.password }] } });
    relay = await startCountingProxy(upstream.url);
    image = await makeOciImage(`${tmp.path}/renew`, { layers: 5, tag: 'v1', seed: 'proxy-gaps-renew' });
    await skopeoCopy(image.ref, `docker://${upstream.host}/renewbot/app:v1`, { destCreds: USER });
  }, 60_000);
  afterAll(async () => {
    await relay?.close();
    await upstream?.close();
  });

  it('a token is reused while fresh; after it expires the next miss fetches a new one and succeeds', async () => {
    const mirror = await startLayover({ upstreams: [{ prefix: 'tok', url: relay.url, username: USER.user, password: USER.password }] });
    try {
      relay.reset();
      const [l0, l1, l2] = image.layers as [OciImage['layers'][number], OciImage['layers'][number], OciImage['layers'][number]];
      const get = async (digest: string) => getBytes(`${mirror.url}/v2/tok/renewbot/app/blobs/${digest}`);
      const first = await get(l0.digest);
      expect(first.status).toBe(200);
      expect(computeDigest(first.body)).toBe(l0.digest);
      const second = await get(l1.digest);
      expect(computeDigest(second.body)).toBe(l1.digest);
      expect(tokenRequests()).toHaveLength(1);

      await sleep(2_500);
      const third = await get(l2.digest);
      expect(third.status).toBe(200);
      expect(computeDigest(third.body)).toBe(l2.digest);
      expect(tokenRequests()).toHaveLength(2);
      expect(tokenRequests().every((r) => r.status === 200)).toBe(true);
      // Renewed before use: the upstream never had to refuse a request.
      expect(refused()).toEqual([]);
    } finally {
      await mirror.close();
    }
  }, 30_000);

  it('a token the upstream rejects although our clock says it is fresh: one 401, a new token, success', async () => {
    // A clock that stands still keeps the token "fresh" for ever, as a skewed clock would.
    const frozen = Date.now();
    const config = resolveConfig({ upstreams: [{ prefix: 'tok', url: relay.url, username: USER.user, password: USER.password }] });
    const client = new UpstreamClient(config.upstreams[0] as (typeof config.upstreams)[number], { now: () => frozen });
    const [, , , l3, l4] = image.layers as OciImage['layers'];
    try {
      relay.reset();
      const fetchBlob = async (digest: string) => {
        const res = await client.request('GET', `/v2/renewbot/app/blobs/${digest}`, 'renewbot/app');
        const body = Buffer.from(await res.body.arrayBuffer());
        return { status: res.status, digest: computeDigest(body) };
      };
      expect(await fetchBlob(l3?.digest as string)).toEqual({ status: 200, digest: l3?.digest });
      expect(tokenRequests()).toHaveLength(1);
      // The upstream allows 10 s of clock skew past the 2 s lifetime.
      await sleep(13_000);
      expect(await fetchBlob(l4?.digest as string)).toEqual({ status: 200, digest: l4?.digest });
      expect(refused()).toHaveLength(1);
      expect(tokenRequests()).toHaveLength(2);
    } finally {
      await client.close();
    }
  }, 40_000);
});
