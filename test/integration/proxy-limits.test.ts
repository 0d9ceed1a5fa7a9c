// Upstreams that misbehave in time and size (issue 12, items 5, 6 and 12): a token endpoint
// answering hundreds of megabytes, manifests and blobs trickled a byte at a time, blob answers
// whose headers never come, and manifest bodies cut off or stalled half way. Each is a small
// server on 127.0.0.1; layover must answer every waiting client promptly with a Distribution
// error (or cut a client already streaming), keep its memory low, and cache nothing.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import type { Socket } from 'node:net';
import { request } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startLayover, spawnLayover, type InProcessLayover, type SpawnedLayover } from '../helpers/layover.js';
import { buildManifest, emptyConfig, randomBlob, MediaType } from '../helpers/oci-content.js';
import { rssBytes, sampleRss } from '../helpers/process-stats.js';
import { storedBlobNames, tempObjectNames } from '../helpers/stored-content.js';

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void;

interface Misbehaving {
  url: string;
  seen: { method: string; path: string; query: string }[];
  close(): Promise<void>;
}

const servers: Misbehaving[] = [];
const layovers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(layovers.splice(0).map((l) => l.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** A server on 127.0.0.1 answering with `handler`; timers it starts stop when a socket closes. */
async function misbehaving(handler: Handler): Promise<Misbehaving> {
  const seen: Misbehaving['seen'] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    seen.push({ method: req.method ?? '', path: url.pathname, query: url.search });
    res.on('error', () => undefined);
    handler(req, res, url);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, () => resolve()));
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('no address');
  const m: Misbehaving = {
    url: `http://127.0.0.1:${address.port}`,
    seen,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  servers.push(m);
  return m;
}

/** An upstream without auth: /v2/ answers 200, anything the handler leaves is 404. */
function openUpstream(handler: (res: ServerResponse, path: string) => boolean | void): Promise<Misbehaving> {
  return misbehaving((_req, res, url) => {
    if (url.pathname === '/v2/') return void res.writeHead(200, { 'content-length': '0' }).end();
    if (handler(res, url.pathname) === false) res.writeHead(404, { 'content-length': '0' }).end();
  });
}

/** The headers of a 200 for MANIFEST (the body is the caller's to write, or not). */
function manifestHead(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': MediaType.ociManifest, 'content-length': String(MANIFEST.bytes.length), 'docker-content-digest': MANIFEST.digest });
}

/** Writes `bytes` one at a time, every `everyMs`, until done or the client goes away. */
function trickle(res: ServerResponse, bytes: Buffer, everyMs: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (res.destroyed || i >= bytes.length) {
      clearInterval(timer);
      if (!res.destroyed) res.end();
      return;
    }
    res.write(bytes.subarray(i, i + 1));
    i += 1;
  }, everyMs);
  res.once('close', () => clearInterval(timer));
}

/** Streams `total` bytes of JSON ({"token":"aaaa…"}) as fast as the client takes them, chunked. */
function hugeToken(res: ServerResponse, total: number): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  const chunk = Buffer.alloc(2 ** 20, 'a');
  let sent = 0;
  res.write('{"token":"');
  const pump = () => {
    while (sent < total) {
      sent += chunk.length;
      if (!res.write(chunk)) return void res.once('drain', pump);
    }
    res.end('"}');
  };
  pump();
}

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer; ms: number; code?: string }

/** GET through layover: status, headers, body, time taken and the Distribution error code if any. */
async function get(url: string): Promise<Answer> {
  const started = Date.now();
  const res = await request(url);
  const body = Buffer.from(await res.body.arrayBuffer());
  let code: string | undefined;
  if (res.statusCode >= 400) code = (JSON.parse(body.toString()) as { errors: { code: string }[] }).errors[0]?.code;
  return { status: res.statusCode, headers: res.headers, body, ms: Date.now() - started, code };
}

/** A GET that reports what it got before the connection ended, even when it was cut. */
async function getCut(url: string): Promise<{ status: number; bytes: number; cut: boolean; ms: number }> {
  const started = Date.now();
  const res = await request(url);
  let bytes = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) bytes += chunk.length;
    return { status: res.statusCode, bytes, cut: false, ms: Date.now() - started };
  } catch {
    return { status: res.statusCode, bytes, cut: true, ms: Date.now() - started };
  }
}

/** Every answer is a 504 Distribution error within [minMs, maxMs], all within 300 ms of each other. */
function expectTimedOutTogether(answers: Answer[], minMs: number, maxMs: number): void {
  for (const a of answers) {
    expect({ status: a.status, code: a.code }).toEqual({ status: 504, code: 'UNAVAILABLE' });
    expect(a.ms).toBeGreaterThan(minMs);
    expect(a.ms).toBeLessThan(maxMs);
  }
  const times = answers.map((a) => a.ms);
  expect(Math.max(...times) - Math.min(...times)).toBeLessThan(300);
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

/** What the store holds of `hex`, and anything left in its _tmp: on its root, and in its bucket when it has one. */
async function leftovers(l: InProcessLayover, hex: string): Promise<string[]> {
  const local = filesUnder(l.root).filter((f) => f.includes(hex) || f.includes(`${path.sep}_tmp${path.sep}`));
  const blobs = (await storedBlobNames(l)).filter((name) => name === hex).map((name) => `blob ${name}`);
  const temporary = (await tempObjectNames(l)).map((name) => `_tmp object ${name}`);
  return [...local, ...blobs, ...temporary];
}

async function mirrorOf(url: string, timeouts: Record<string, string | number>): Promise<InProcessLayover> {
  const upstream = Object.keys(timeouts).length ? { prefix: 'up', url, timeouts } : { prefix: 'up', url };
  const l = await startLayover({ upstreams: [upstream] } as Parameters<typeof startLayover>[0]);
  layovers.push(l);
  return l;
}

const MANIFEST = buildManifest({ config: emptyConfig(), layers: [], mediaType: MediaType.ociManifest });

// ---- item 5: unbounded token responses ----

describe('an upstream token endpoint answering hundreds of megabytes', () => {
  it('the pull fails promptly with a Distribution error and layover\'s RSS stays low (streamed, and declared)', async () => {
    const upstream = await misbehaving((req, res, url) => {
      if (url.pathname === '/v2/') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${req.headers.host}/token",service="huge"`, 'content-length': '0' }).end();
      } else if (url.pathname === '/token' && url.searchParams.get('scope')?.includes('declared/')) {
        // Declares 300 MB, then trickles: only the declared length can stop this one early.
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(300 * 2 ** 20) });
        trickle(res, Buffer.alloc(1024, 'a'), 200);
      } else if (url.pathname === '/token') {
        hugeToken(res, 256 * 2 ** 20);
      } else {
        res.writeHead(404, { 'content-length': '0' }).end();
      }
    });
    const mirror: SpawnedLayover = await spawnLayover({ upstreams: [{ prefix: 'up', url: upstream.url }] });
    layovers.push(mirror);
    // Settle start-up, then take the baseline.
    await get(`${mirror.url}/v2/`);
    await new Promise((r) => setTimeout(r, 500));
    const before = rssBytes(mirror.pid);
    const sampler = sampleRss(mirror.pid, 10);
    const streamed = await get(`${mirror.url}/v2/up/streamed/app/manifests/v1`);
    const declared = await get(`${mirror.url}/v2/up/declared/app/manifests/v1`);
    const peak = sampler.stop();
    await new Promise((r) => setTimeout(r, 300));
    const after = rssBytes(mirror.pid);
    const mib = (n: number) => (n / 2 ** 20).toFixed(0);
    console.log(`huge token: RSS ${mib(before)} MiB before, peak ${mib(peak)} MiB, ${mib(after)} MiB after; answered in ${streamed.ms} ms (streamed 256 MiB) and ${declared.ms} ms (declared 300 MiB)`);
    for (const answer of [streamed, declared]) {
      expect(answer.status).toBe(502);
      expect(answer.code).toBe('UNAVAILABLE');
      expect(answer.body.toString()).toMatch(/token/);
    }
    expect(declared.ms).toBeLessThan(2_000);
    expect(streamed.ms).toBeLessThan(5_000);
    expect(peak - before).toBeLessThan(64 * 2 ** 20);
    // Nothing of the 256 MiB kept. The bound leaves room for V8 tiering up the HTTP client's
    // parser a moment after its first use (~25 MiB; seen once as 39 MiB after, 17 at the peak).
    expect(after - before).toBeLessThan(48 * 2 ** 20);
  }, 60_000);
});

describe('an upstream manifest declared larger than registry.maxManifestSize', () => {
  it('is refused before its body is read: 502 at once, not when the trickle ends', async () => {
    const upstream = await openUpstream((res) => {
      res.writeHead(200, { 'content-type': MediaType.ociManifest, 'content-length': String(100 * 2 ** 20) });
      trickle(res, Buffer.alloc(1000, ' '), 200);
    });
    const mirror = await mirrorOf(upstream.url, {});
    const a = await get(`${mirror.url}/v2/up/app/manifests/v1`);
    expect({ status: a.status, code: a.code }).toEqual({ status: 502, code: 'MANIFEST_INVALID' });
    expect(a.ms).toBeLessThan(1_000);
  }, 20_000);
});

describe('an upstream answering 200 with something that is no manifest', () => {
  it('is the upstream\'s fault: 502 MANIFEST_INVALID in the error format, nothing cached', async () => {
    const junk = Buffer.from('<html>not a manifest</html>');
    const upstream = await openUpstream((res) => {
      res.writeHead(200, { 'content-type': MediaType.ociManifest, 'content-length': String(junk.length) });
      res.end(junk);
    });
    const mirror = await mirrorOf(upstream.url, {});
    const a = await get(`${mirror.url}/v2/up/app/manifests/v1`);
    expect({ status: a.status, code: a.code }).toEqual({ status: 502, code: 'MANIFEST_INVALID' });
    const tags = await request(`${mirror.url}/v2/up/app/tags/list`);
    expect(tags.statusCode).toBe(404);
    await tags.body.dump();
  }, 20_000);
});

// ---- item 6: overall deadlines ----

describe('deadlines on upstream fetches', () => {
  it('a manifest trickled a byte every 200 ms: every coalesced client gets 504 at the deadline, nothing is cached', async () => {
    const upstream = await openUpstream((res, path) => {
      if (path !== '/v2/app/manifests/v1') return false;
      manifestHead(res);
      trickle(res, MANIFEST.bytes, 200);
    });
    const mirror = await mirrorOf(upstream.url, { manifest: '1s' });
    const answers = await Promise.all([0, 1, 2].map(() => get(`${mirror.url}/v2/up/app/manifests/v1`)));
    console.log(`trickled manifest: answered after ${answers.map((a) => a.ms).join(', ')} ms`);
    expectTimedOutTogether(answers, 900, 2_500);
    expect(upstream.seen.filter((s) => s.path === '/v2/app/manifests/v1')).toHaveLength(1);
    expect(await leftovers(mirror, MANIFEST.digest.slice(7))).toEqual([]);
  }, 20_000);

  it('a token trickled a byte every 200 ms: 504 at the token deadline', async () => {
    const upstream = await misbehaving((req, res, url) => {
      if (url.pathname === '/v2/') {
        return void res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${req.headers.host}/token",service="slow"`, 'content-length': '0' }).end();
      }
      if (url.pathname === '/token') {
        const body = Buffer.from(JSON.stringify({ token: 'x'.repeat(200) }));
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) });
        return trickle(res, body, 200);
      }
      res.writeHead(404, { 'content-length': '0' }).end();
    });
    const mirror = await mirrorOf(upstream.url, { token: '1s' });
    const a = await get(`${mirror.url}/v2/up/app/manifests/v1`);
    console.log(`trickled token: answered after ${a.ms} ms`);
    expect({ status: a.status, code: a.code }).toEqual({ status: 504, code: 'UNAVAILABLE' });
    expect(a.body.toString()).toMatch(/token/);
    expect(a.ms).toBeLessThan(2_500);
  }, 20_000);

  it('blob response headers that never come: every coalesced client gets 504 at the deadline', async () => {
    const blob = randomBlob(64 * 1024, 'limits-no-headers');
    // Blob requests are held without an answer.
    const upstream = await openUpstream((_res, path) => path.includes('/blobs/'));
    const mirror = await mirrorOf(upstream.url, { blobHeaders: '1s' });
    const answers = await Promise.all([0, 1, 2].map(() => get(`${mirror.url}/v2/up/app/blobs/${blob.digest}`)));
    console.log(`blob headers never sent: answered after ${answers.map((a) => a.ms).join(', ')} ms`);
    expectTimedOutTogether(answers, 0, 2_500);
    expect(upstream.seen.filter((s) => s.path.includes('/blobs/'))).toHaveLength(1);
    expect(await leftovers(mirror, blob.digest.slice(7))).toEqual([]);
  }, 20_000);

  it('a blob body trickled below the minimum rate: waiting clients get 504 together, nothing becomes visible', async () => {
    const blob = randomBlob(2 ** 20, 'limits-trickle');
    const upstream = await openUpstream((res, path) => {
      if (path !== `/v2/app/blobs/${blob.digest}`) return false;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(blob.size), 'docker-content-digest': blob.digest });
      trickle(res, blob.bytes, 200);
    });
    const mirror = await mirrorOf(upstream.url, { blobMinRate: '1KiB', blobRateWindow: '2s' });
    const url = `${mirror.url}/v2/up/app/blobs/${blob.digest}`;
    const answers = await Promise.all([0, 1, 2].map(() => get(url)));
    console.log(`trickled blob (5 B/s): answered after ${answers.map((a) => a.ms).join(', ')} ms`);
    expectTimedOutTogether(answers, 1_900, 4_500);
    expect(await leftovers(mirror, blob.digest.slice(7))).toEqual([]);
    // Not cached: the next request goes upstream again.
    await get(url);
    expect(upstream.seen.filter((s) => s.path.includes('/blobs/'))).toHaveLength(2);
  }, 30_000);

  it('a blob that starts fast then trickles: clients already streaming are cut short, never given a complete body', async () => {
    const blob = randomBlob(2 * 2 ** 20, 'limits-fast-then-slow');
    const upstream = await openUpstream((res, path) => {
      if (path !== `/v2/app/blobs/${blob.digest}`) return false;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(blob.size), 'docker-content-digest': blob.digest });
      res.write(blob.bytes.subarray(0, 2 ** 20));
      trickle(res, blob.bytes.subarray(2 ** 20), 200);
    });
    const mirror = await mirrorOf(upstream.url, { blobMinRate: '1KiB', blobRateWindow: '2s' });
    const url = `${mirror.url}/v2/up/app/blobs/${blob.digest}`;
    const answers = await Promise.all([0, 1].map(() => getCut(url)));
    console.log(`fast then trickled blob: cut after ${answers.map((a) => `${a.ms} ms/${a.bytes} B`).join(', ')}`);
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.cut).toBe(true);
      expect(a.bytes).toBeLessThan(blob.size);
      expect(a.ms).toBeLessThan(5_000);
    }
    expect(await leftovers(mirror, blob.digest.slice(7))).toEqual([]);
  }, 30_000);
});

// ---- item 12: a manifest body that breaks off ----

describe('a manifest body that breaks off mid-way', () => {
  it('a reset after the headers and part of the body: 502 with a Distribution error, nothing cached', async () => {
    const upstream = await openUpstream((res) => {
      manifestHead(res);
      res.write(MANIFEST.bytes.subarray(0, 40), () => setTimeout(() => res.socket?.resetAndDestroy(), 50));
    });
    const mirror = await mirrorOf(upstream.url, {});
    const a = await get(`${mirror.url}/v2/up/app/manifests/v1`);
    expect({ status: a.status, code: a.code }).toEqual({ status: 502, code: 'UNAVAILABLE' });
    expect(await leftovers(mirror, MANIFEST.digest.slice(7))).toEqual([]);
    expect(mirror.log()).not.toMatch(/unhandled error/);
  }, 20_000);

  it('a stall after part of the body: 504 at the manifest deadline', async () => {
    const upstream = await openUpstream((res) => {
      manifestHead(res);
      res.write(MANIFEST.bytes.subarray(0, 40));
    });
    const mirror = await mirrorOf(upstream.url, { manifest: '1s' });
    const a = await get(`${mirror.url}/v2/up/app/manifests/v1`);
    expect({ status: a.status, code: a.code }).toEqual({ status: 504, code: 'UNAVAILABLE' });
    expect(a.ms).toBeLessThan(2_500);
    expect(mirror.log()).not.toMatch(/unhandled error/);
  }, 20_000);
});
