// Three `layover serve` replicas on one Ceph RGW bucket and one PostgreSQL, mirroring a real
// docker-registry behind a counting relay that paces blob bodies (so that cold pulls overlap a
// download): cold pulls of one blob spread over the three make one upstream GET, every client
// gets the exact bytes and its first bytes before the download ends; a holder killed mid-download
// cuts its followers' clients (never a short 200) and a retry succeeds; a lease naming a replica
// that does not answer never fails a pull; a HEAD starts no download. With registry.tls, the
// replicas (one certificate, as from one Secret, naming none of their addresses) still follow each
// other, and refuse a peer presenting any other certificate (cluster-tls.ts).
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { Agent, request, type Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UpstreamConfig } from '../../src/config/config.js';
import { sourceId } from '../../src/registry/proxy/source-id.js';
import { startCephRgw, type CephRgw } from '../helpers/ceph-rgw.js';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { spawnLayover, type SpawnedLayover } from '../helpers/layover.js';
import { computeDigest } from '../helpers/oci-content.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';
import { seededBytes } from '../helpers/random-bytes.js';
import { basicAuthHeader, uploadBlob, type Auth } from '../helpers/registry-client.js';
import { runTool } from '../helpers/run-tool.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const MiB = 2 ** 20;
const admin: Auth = { user: 'admin', password: 'admin-pw-cold-pulls' };
const REPO = 'lib/big';

let postgres: Postgres;
let rgw: CephRgw;
let upstream: DockerRegistry;
let relay: CountingProxy;
let tmp: TempDir;
let replicas: SpawnedLayover[] = [];
/** A pull token from one replica, accepted by all (shared signing keys); no password hashing per pull. */
let bearer = '';

interface Blob { digest: string; size: number }

async function pushUpstream(seed: string, size: number): Promise<Blob> {
  const bytes = seededBytes(seed, size);
  const digest = computeDigest(bytes);
  await uploadBlob(upstream.url, REPO, digest, bytes);
  return { digest, size };
}

const blobPath = (digest: string) => `/v2/${REPO}/blobs/${digest}`;

interface Pull {
  replica: number;
  status: number;
  bytes: number;
  sha256: string;
  /** Milliseconds from the request to its first body byte; undefined when none came. */
  firstByteAt?: number;
  /** Date.now() at the first body byte, and at the end. */
  firstByteClock?: number;
  endClock?: number;
  /** Why the body ended early (a cut), if it did. */
  error?: string;
}

/** GETs a blob through replica `i` (mirror prefix `up/`), hashing it as it arrives. */
async function pull(i: number, digest: string, repo = REPO, set = { replicas, bearer, dispatcher: undefined as Dispatcher | undefined }): Promise<Pull> {
  const replica = set.replicas[i] as SpawnedLayover;
  const started = Date.now();
  const res = await request(`${replica.url}/v2/up/${repo}/blobs/${digest}`, { headers: { authorization: `Bearer ${set.bearer}` }, dispatcher: set.dispatcher });
  const hash = createHash('sha256');
  const out: Pull = { replica: i, status: res.statusCode, bytes: 0, sha256: '' };
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      if (out.firstByteClock === undefined) {
        out.firstByteClock = Date.now();
        out.firstByteAt = out.firstByteClock - started;
      }
      out.bytes += chunk.length;
      hash.update(chunk);
    }
  } catch (err) {
    out.error = (err as Error).message;
  }
  out.endClock = Date.now();
  out.sha256 = `sha256:${hash.digest('hex')}`;
  return out;
}

/** The replica whose URL the lease for `digest` names, while one does. */
async function leaseHolder(digest: string): Promise<{ index: number; key: string } | undefined> {
  const rows = (await postgres.query<{ key: string; holder: string }>('SELECT key, holder FROM leases WHERE key LIKE $1', [`pull:%:${digest}`])).rows;
  const row = rows[0];
  if (!row) return undefined;
  const index = replicas.findIndex((r) => row.holder.startsWith(`${r.url} `));
  return index < 0 ? undefined : { index, key: row.key };
}

const upstreamGets = (digest: string) => upstream.accessLog().filter((r) => r.method === 'GET' && r.path === blobPath(digest));

beforeAll(async () => {
  tmp = makeTempDir('layover-cold-pulls-');
  [postgres, rgw, upstream] = await Promise.all([startPostgres(), startCephRgw(), startDockerRegistry()]);
  relay = await startCountingProxy(upstream.url);
  const bucket = await rgw.createBucket('cold');
  const raw = {
    auth: { enabled: true, users: [{ name: 'admin', password: admin.password, admin: true }] },
    // A holder that does not answer is given up on within blobHeaders + 5 s.
    upstreams: [{ prefix: 'up', url: relay.url, timeouts: { blobHeaders: '5s' } }],
    gc: { interval: '48h' },
  };
  const opts = { database: postgres.url, s3: { ...rgw, bucket }, root: path.join(tmp.path, 'data'), startTimeoutMs: 120_000 };
  // One first, so that the migrations are done once; the other two together.
  replicas = [await spawnLayover(raw, opts)];
  replicas.push(...(await Promise.all([spawnLayover(raw, opts), spawnLayover(raw, opts)])));
  const res = await request(`${replicas[0]?.url}/token?service=layover&scope=${encodeURIComponent(`repository:up/${REPO}:pull`)}&scope=${encodeURIComponent('repository:up/lib/other:pull')}`, { headers: { authorization: basicAuthHeader(admin) } });
  bearer = ((await res.body.json()) as { token: string }).token;
}, 300_000);

afterAll(async () => {
  await Promise.all(replicas.map((r) => r.close()));
  await relay?.close();
  await upstream?.close();
  await rgw?.close();
  await postgres?.close();
  tmp?.cleanup();
});

describe('cold pulls spread over three replicas', () => {
  it('16 concurrent pulls of one 64 MiB blob: one upstream GET, all byte-exact, every client served before the download ends', async () => {
    const blob = await pushUpstream('cold-pulls-64', 64 * MiB);
    // About 8 s of download: every pull starts while it runs.
    relay.throttle(8 * MiB, (r) => r.method === 'GET' && r.path.includes('/blobs/'));
    try {
      const t0 = Date.now();
      const running = Promise.all(Array.from({ length: 16 }, (_, i) => pull(i % 3, blob.digest)));
      const holder = await waitFor(() => leaseHolder(blob.digest), 30_000);
      const pulls = await running;
      for (const p of pulls) {
        expect(p, `pull through replica ${p.replica}`).toMatchObject({ status: 200, bytes: blob.size, sha256: blob.digest });
        expect(p.error).toBeUndefined();
      }
      expect(relay.count('GET', blobPath(blob.digest))).toBe(1);
      await waitFor(() => upstreamGets(blob.digest).length === 1, 10_000);
      // No second GET after the access line of the first.
      await new Promise((r) => setTimeout(r, 500));
      expect(upstreamGets(blob.digest)).toHaveLength(1);
      const downloadEnd = relay.requests().find((r) => r.method === 'GET' && r.path === blobPath(blob.digest))?.finishedAt;
      expect(downloadEnd).toBeTypeOf('number');
      for (const p of pulls) expect(p.firstByteClock, `first byte through replica ${p.replica}`).toBeLessThan(downloadEnd as number);
      const byReplica = [0, 1, 2].map((i) => pulls.filter((p) => p.replica === i).map((p) => p.firstByteAt as number));
      const ends = pulls.map((p) => (p.endClock as number) - t0);
      console.log(`time to first byte (ms) per replica: ${byReplica.map((t, i) => `#${i}${i === holder.index ? ' (holder)' : ''} ${Math.min(...t)}..${Math.max(...t)}`).join(', ')}; `
        + `upstream body done at ${(downloadEnd as number) - t0} ms; clients done ${Math.min(...ends)}..${Math.max(...ends)} ms`);
      // The lease is given back once the download is over.
      await waitFor(async () => (await leaseHolder(blob.digest)) === undefined, 10_000);
    } finally {
      relay.throttle(null);
    }
  }, 240_000);

  it('a ranged GET on a follower is served from the holder\'s download: 206, the exact bytes, still one upstream GET', async () => {
    const bytes = seededBytes('cold-range', 12 * MiB);
    const digest = computeDigest(bytes);
    await uploadBlob(upstream.url, REPO, digest, bytes);
    relay.throttle(2 * MiB, (r) => r.method === 'GET' && r.path === blobPath(digest));
    try {
      const whole = pull(0, digest);
      const holder = await waitFor(() => leaseHolder(digest), 30_000);
      const follower = replicas[(holder.index + 1) % 3] as SpawnedLayover;
      const res = await request(`${follower.url}/v2/up/${REPO}/blobs/${digest}`, { headers: { authorization: `Bearer ${bearer}`, range: 'bytes=1000000-3999999' } });
      const part = Buffer.from(await res.body.arrayBuffer());
      expect(res.statusCode).toBe(206);
      expect(res.headers['content-range']).toBe(`bytes 1000000-3999999/${bytes.length}`);
      expect(part.equals(bytes.subarray(1_000_000, 4_000_000))).toBe(true);
      expect(await whole).toMatchObject({ status: 200, bytes: bytes.length, sha256: digest });
      expect(relay.count('GET', blobPath(digest))).toBe(1);
    } finally {
      relay.throttle(null);
    }
  }, 120_000);

  it('one blob pulled through two repositories of the upstream, on every replica: one GET, the second repository confirmed by a HEAD', async () => {
    const bytes = seededBytes('cold-two-repos', 12 * MiB);
    const digest = computeDigest(bytes);
    await uploadBlob(upstream.url, REPO, digest, bytes);
    await uploadBlob(upstream.url, 'lib/other', digest, bytes);
    const blobGets = () => relay.count('GET', blobPath(digest)) + relay.count('GET', `/v2/lib/other/blobs/${digest}`);
    relay.throttle(2 * MiB, (r) => r.method === 'GET' && r.path.endsWith(digest));
    try {
      const first = pull(0, digest);
      await waitFor(() => leaseHolder(digest), 30_000);
      const others = [pull(0, digest, 'lib/other'), pull(1, digest, 'lib/other'), pull(2, digest, 'lib/other'), pull(1, digest)];
      for (const p of await Promise.all([first, ...others])) expect(p, `through replica ${p.replica}`).toMatchObject({ status: 200, bytes: bytes.length, sha256: digest });
      expect(blobGets()).toBe(1);
      expect(relay.count('HEAD', `/v2/lib/other/blobs/${digest}`)).toBeGreaterThanOrEqual(1);
    } finally {
      relay.throttle(null);
    }
  }, 120_000);

  it('a HEAD of a cold blob starts no download and takes no lease', async () => {
    const blob = await pushUpstream('cold-head', 3 * MiB);
    const res = await request(`${replicas[1]?.url}/v2/up/${REPO}/blobs/${blob.digest}`, { method: 'HEAD', headers: { authorization: basicAuthHeader(admin) } });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe(String(blob.size));
    expect(relay.count('GET', blobPath(blob.digest))).toBe(0);
    expect(await leaseHolder(blob.digest)).toBeUndefined();
  });

  it('the peer route refuses a request without a replica token', async () => {
    const blob = await pushUpstream('cold-peer-auth', 1 * MiB);
    for (const headers of [{}, { authorization: basicAuthHeader(admin) }, { authorization: 'Bearer not.a.token' }]) {
      const res = await request(`${replicas[0]?.url}/_layover/cluster/pulls/${'0'.repeat(32)}/${blob.digest}?repository=up/${REPO}`, { headers });
      await res.body.dump();
      expect(res.statusCode).toBe(401);
    }
  });

  it('a holder killed mid-download cuts its followers\' clients (no short 200), and a retry succeeds', async () => {
    const blob = await pushUpstream('cold-kill', 48 * MiB);
    relay.throttle(4 * MiB, (r) => r.method === 'GET' && r.path.includes('/blobs/'));
    const first = pull(0, blob.digest);
    const holder = await waitFor(() => leaseHolder(blob.digest), 30_000);
    // Followers on the two other replicas, and the bytes flowing to them.
    const followers = [0, 1, 2].filter((i) => i !== holder.index);
    const followed = [...followers, ...followers].map((i) => pull(i, blob.digest));
    await waitFor(() => relay.requests().some((r) => r.path === blobPath(blob.digest)), 30_000);
    await new Promise((r) => setTimeout(r, 3_000));
    expect(relay.count('GET', blobPath(blob.digest))).toBe(1);
    await replicas[holder.index]?.kill('SIGKILL');
    relay.throttle(null);
    const outcomes = await Promise.all([first, ...followed]);
    for (const p of outcomes) {
      // Cut: the body ends early with an error, never as a complete 200 of fewer bytes.
      const complete = p.status === 200 && p.bytes === blob.size && p.sha256 === blob.digest && !p.error;
      if (complete) throw new Error(`a pull through replica ${p.replica} completed although its holder was killed`);
      if (p.status === 200) {
        expect(p.error, `pull through replica ${p.replica}`).toBeDefined();
        expect(p.bytes).toBeLessThan(blob.size);
      }
    }
    expect(outcomes.filter((p) => p.replica !== holder.index).every((p) => (p.firstByteAt ?? Infinity) < Infinity)).toBe(true);
    // The dead holder's lease has not expired yet: the survivor finds it unreachable and pulls itself.
    expect(await leaseHolder(blob.digest)).toBeDefined();
    const retry = await pull(followers[0] as number, blob.digest);
    expect(retry).toMatchObject({ status: 200, bytes: blob.size, sha256: blob.digest });
    const again = await pull(followers[1] as number, blob.digest);
    expect(again).toMatchObject({ status: 200, bytes: blob.size, sha256: blob.digest });
    await replicas[holder.index]?.restart();
  }, 240_000);

  it('a lease held by a replica that accepts connections but never answers does not fail a pull', async () => {
    const blob = await pushUpstream('cold-black-hole', 2 * MiB);
    const sockets = new Set<net.Socket>();
    const hole = net.createServer((s) => sockets.add(s));
    await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', resolve));
    const port = (hole.address() as net.AddressInfo).port;
    try {
      const source = sourceId(replicas[0]?.config.upstreams[0] as UpstreamConfig);
      await postgres.query('INSERT INTO leases (key, holder, expires) VALUES ($1, $2, (extract(epoch from clock_timestamp()) * 1000)::bigint + 300000)', [
        `pull:${source}:${blob.digest}`,
        `http://127.0.0.1:${port} black-hole:1:0`,
      ]);
      const started = Date.now();
      const p = await pull(1, blob.digest);
      expect(p).toMatchObject({ status: 200, bytes: blob.size, sha256: blob.digest });
      console.log(`pull past an unanswering lease holder: ${Date.now() - started} ms`);
      expect(relay.count('GET', blobPath(blob.digest))).toBe(1);
    } finally {
      for (const s of sockets) s.destroy();
      hole.close();
    }
  }, 120_000);
});

describe('cold pulls over TLS replicas that share one certificate', () => {
  // Like a certificate for the registry's public name mounted from one Secret: it names no
  // replica's address (the Pod IPs in cluster.advertiseUrl), so a hostname check always fails.
  const NAME = 'registry.layover.test';
  const tlsReplicas: SpawnedLayover[] = [];
  let tlsBearer = '';
  let client: Agent;
  let impostor: https.Server;
  let impostorConnections = 0;
  let impostorRequests = 0;
  const pullTls = (i: number, digest: string) => pull(i, digest, REPO, { replicas: tlsReplicas, bearer: tlsBearer, dispatcher: client });

  beforeAll(async () => {
    const d = path.join(tmp.path, 'tls');
    const openssl = (args: string[]) => runTool('openssl', args, { cwd: tmp.path });
    mkdirSync(d, { recursive: true });
    await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${d}/tls.key`, '-out', `${d}/tls.crt`, '-days', '2', '-subj', `/CN=${NAME}`, '-addext', `subjectAltName=DNS:${NAME}`]);
    // The impostor's certificate even names the address it is reached at: only the pin refuses it.
    await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${d}/other.key`, '-out', `${d}/other.crt`, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
    const cert = readFileSync(`${d}/tls.crt`, 'utf8');
    // The test's own client trusts that certificate without its name (it connects to 127.0.0.1).
    client = new Agent({ connect: { ca: cert, checkServerIdentity: () => undefined } });
    impostor = https.createServer({ cert: readFileSync(`${d}/other.crt`), key: readFileSync(`${d}/other.key`) }, (_req, res) => {
      impostorRequests++;
      res.writeHead(500).end();
    });
    impostor.on('connection', () => impostorConnections++);
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));

    const database = await postgres.createDatabase('cold_tls');
    const bucket = await rgw.createBucket('cold-tls');
    const raw = {
      registry: { tls: { cert: `${d}/tls.crt`, key: `${d}/tls.key` } },
      auth: { enabled: true, users: [{ name: 'admin', password: admin.password, admin: true }] },
      upstreams: [{ prefix: 'up', url: relay.url, timeouts: { blobHeaders: '5s' } }],
      gc: { interval: '48h' },
    };
    const opts = { database, s3: { ...rgw, bucket }, root: path.join(tmp.path, 'tls-data'), startTimeoutMs: 120_000 };
    tlsReplicas.push(await spawnLayover(raw, opts));
    tlsReplicas.push(...(await Promise.all([spawnLayover(raw, opts), spawnLayover(raw, opts)])));
    expect(tlsReplicas.map((r) => r.config.cluster?.advertiseUrl)).toEqual(tlsReplicas.map((r) => `https://127.0.0.1:${r.port}`));
    const res = await request(`${tlsReplicas[0]?.url}/token?service=layover&scope=${encodeURIComponent(`repository:up/${REPO}:pull`)}`, { headers: { authorization: basicAuthHeader(admin) }, dispatcher: client });
    tlsBearer = ((await res.body.json()) as { token: string }).token;
  }, 300_000);

  afterAll(async () => {
    await Promise.all(tlsReplicas.map((r) => r.close()));
    await client?.close();
    impostor?.close();
  });

  it('9 concurrent pulls of one 24 MiB blob over the three: one upstream GET, all byte-exact', async () => {
    const blob = await pushUpstream('cold-tls-24', 24 * MiB);
    relay.throttle(6 * MiB, (r) => r.method === 'GET' && r.path === blobPath(blob.digest));
    try {
      const pulls = await Promise.all(Array.from({ length: 9 }, (_, i) => pullTls(i % 3, blob.digest)));
      for (const p of pulls) {
        expect(p, `pull through replica ${p.replica}`).toMatchObject({ status: 200, bytes: blob.size, sha256: blob.digest });
        expect(p.error).toBeUndefined();
      }
      // Before the pin, every follower failed the hostname check and downloaded itself.
      expect(relay.count('GET', blobPath(blob.digest))).toBe(1);
      const refused = tlsReplicas.filter((r) => r.log().includes('is not this replica')).length;
      expect(refused).toBe(0);
    } finally {
      relay.throttle(null);
    }
  }, 120_000);

  it('a lease held by a peer presenting another certificate: refused before any request, the pull downloads itself', async () => {
    const blob = await pushUpstream('cold-tls-impostor', 2 * MiB);
    const source = sourceId(tlsReplicas[0]?.config.upstreams[0] as UpstreamConfig);
    const port = (impostor.address() as net.AddressInfo).port;
    await postgres.query(
      'INSERT INTO leases (key, holder, expires) VALUES ($1, $2, (extract(epoch from clock_timestamp()) * 1000)::bigint + 300000)',
      [`pull:${source}:${blob.digest}`, `https://127.0.0.1:${port} impostor:1:0`],
      'cold_tls',
    );
    const p = await pullTls(1, blob.digest);
    expect(p).toMatchObject({ status: 200, bytes: blob.size, sha256: blob.digest });
    expect(relay.count('GET', blobPath(blob.digest))).toBe(1);
    // The replica did connect (so it was the pin that refused), and its token never reached it.
    expect(impostorConnections).toBeGreaterThanOrEqual(1);
    expect(impostorRequests).toBe(0);
    expect(tlsReplicas[1]?.log()).toContain('is not this replica');
  }, 60_000);
});
