// kill -9 during uploads: a spawned layover is killed while large monolithic and chunked uploads
// are in flight (slow senders, partly sent) and right after others finished; restarted on the
// same root it must serve every upload that got its 201, hold no blob whose bytes differ from its
// name, and offer an unfinished chunked upload for resumption (or have cleanly forgotten it).
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnLayover, type SpawnedLayover } from '../helpers/layover.js';
import { buildManifest, emptyConfig } from '../helpers/oci-content.js';
import { seededChunks } from '../helpers/random-bytes.js';
import { putManifest, uploadBlob } from '../helpers/registry-client.js';
import { waitFor } from '../helpers/wait-for.js';
import { getGlobalDispatcher } from 'undici';
import { rawRequest, type Answer } from '../helpers/raw-http.js';

const MiB = 2 ** 20;
let layover: SpawnedLayover;


async function call(method: string, target: string, headers: Record<string, string> = {}, body?: Buffer | Readable): Promise<Answer> {
  return rawRequest(layover.url, method, target, headers, body);
}

/** Content made of seeded pseudo-random bytes: never held whole in memory. */
class Blob {
  readonly digest: string;
  constructor(
    readonly seed: string,
    readonly size: number,
  ) {
    const hash = createHash('sha256');
    for (const chunk of seededChunks(seed, size)) hash.update(chunk);
    this.digest = `sha256:${hash.digest('hex')}`;
  }

  /** Bytes [start, end) as a list of chunks. */
  *range(start: number, end = this.size): Generator<Buffer> {
    let offset = 0;
    for (const chunk of seededChunks(this.seed, this.size)) {
      const a = Math.max(start, offset);
      const b = Math.min(end, offset + chunk.length);
      if (a < b) yield chunk.subarray(a - offset, b - offset);
      offset += chunk.length;
      if (offset >= end) return;
    }
  }
}

/**
 * A sender that streams `blob` from `start`, pausing between chunks, and stalls for good after
 * `stallAfter` bytes: the connection stays open with the request unfinished, as a slow client.
 */
function slowSender(blob: Blob, start: number, stallAfter: number, pauseMs = 5): { body: Readable; sent: () => number } {
  let sent = 0;
  const gen = async function* (): AsyncGenerator<Buffer> {
    for (const chunk of blob.range(start)) {
      for (let i = 0; i < chunk.length; i += 256 * 1024) {
        const piece = chunk.subarray(i, Math.min(chunk.length, i + 256 * 1024, i + stallAfter - sent));
        if (piece.length === 0) break;
        yield piece;
        sent += piece.length;
        await sleep(pauseMs);
        if (sent >= stallAfter) {
          await new Promise(() => undefined); // never resolves: the sender hangs mid-body
        }
      }
    }
  };
  return { body: Readable.from(gen()), sent: () => sent };
}

async function startUpload(repo: string): Promise<string> {
  const res = await call('POST', `/v2/${repo}/blobs/uploads/`, { 'content-length': '0' });
  expect(res.status).toBe(202);
  return String(res.headers.location);
}

async function patchChunk(location: string, blob: Blob, start: number, end: number): Promise<Answer> {
  return call('PATCH', location, { 'content-length': String(end - start), 'content-range': `${start}-${end - 1}`, 'content-type': 'application/octet-stream' }, Readable.from(blob.range(start, end)));
}

/** GETs a blob and hashes it as it streams. */
async function servedDigest(repo: string, digest: string): Promise<{ status: number; digest?: string; size: number }> {
  const res = await getGlobalDispatcher().request({ origin: layover.url, path: `/v2/${repo}/blobs/${digest}`, method: 'GET' });
  if (res.statusCode !== 200) {
    await res.body.dump();
    return { status: res.statusCode, size: 0 };
  }
  const hash = createHash(digest.slice(0, digest.indexOf(':')));
  let size = 0;
  for await (const chunk of res.body) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { status: 200, digest: `${digest.slice(0, digest.indexOf(':'))}:${hash.digest('hex')}`, size };
}

/** Every file under root/blobs, hashed: the name it is stored under must be its digest. */
async function corruptBlobs(root: string): Promise<string[]> {
  const bad: string[] = [];
  const base = path.join(root, 'blobs');
  if (!existsSync(base)) return bad;
  for (const algorithm of readdirSync(base)) {
    for (const prefix of readdirSync(path.join(base, algorithm))) {
      for (const hex of readdirSync(path.join(base, algorithm, prefix))) {
        const file = path.join(base, algorithm, prefix, hex);
        const hash = createHash(algorithm);
        for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
        if (hash.digest('hex') !== hex || !hex.startsWith(prefix)) bad.push(path.relative(root, file));
      }
    }
  }
  return bad;
}

function countBlobFiles(root: string): number {
  let n = 0;
  const base = path.join(root, 'blobs');
  for (const algorithm of readdirSync(base)) for (const prefix of readdirSync(path.join(base, algorithm))) n += readdirSync(path.join(base, algorithm, prefix)).length;
  return n;
}

beforeAll(async () => {
  layover = await spawnLayover();
});
afterAll(async () => {
  await layover?.close();
});

describe('kill -9 during uploads', () => {
  it('mid-upload: finished uploads survive, unfinished ones leave no blob, a chunked one resumes', async () => {
    const repo = 'crash/one';
    // Finished before the crash: a monolithic POST ?digest=, a POST+PUT and a three-chunk upload.
    const mono = new Blob('crash-mono', 20 * MiB);
    const putBlob = new Blob('crash-put', 6 * MiB);
    const chunked = new Blob('crash-chunked', 30 * MiB);
    const monoRes = await call('POST', `/v2/${repo}/blobs/uploads/?digest=${mono.digest}`, { 'content-length': String(mono.size) }, Readable.from(mono.range(0)));
    expect(monoRes.status).toBe(201);
    const putLocation = await startUpload(repo);
    const putRes = await call('PUT', `${putLocation}?digest=${putBlob.digest}`, { 'content-length': String(putBlob.size) }, Readable.from(putBlob.range(0)));
    expect(putRes.status).toBe(201);
    const chunkLocation = await startUpload(repo);
    for (const [a, b] of [[0, 10 * MiB], [10 * MiB, 20 * MiB], [20 * MiB, 30 * MiB]] as const) expect((await patchChunk(chunkLocation, chunked, a, b)).status).toBe(202);
    expect((await call('PUT', `${chunkLocation}?digest=${chunked.digest}`, { 'content-length': '0' })).status).toBe(201);
    const config = emptyConfig();
    await uploadBlob(layover.url, repo, config.digest, config.bytes);
    const manifest = buildManifest({ config, layers: [{ mediaType: 'application/octet-stream', digest: mono.digest, size: mono.size }] });
    await putManifest(layover.url, repo, 'v1', manifest);

    // In flight at the crash: a monolithic POST ?digest= (50 MiB), a POST+PUT (40 MiB), and a chunked
    // upload whose first 8 MiB chunk was accepted and whose second chunk is half sent.
    const bigMono = new Blob('crash-big-mono', 50 * MiB);
    const bigPut = new Blob('crash-big-put', 40 * MiB);
    const resumable = new Blob('crash-resumable', 24 * MiB);
    const monoSender = slowSender(bigMono, 0, 12 * MiB);
    const inflight: Promise<unknown>[] = [];
    inflight.push(call('POST', `/v2/${repo}/blobs/uploads/?digest=${bigMono.digest}`, { 'content-length': String(bigMono.size) }, monoSender.body).catch((e: unknown) => e));
    const bigPutLocation = await startUpload(repo);
    const putSender = slowSender(bigPut, 0, 9 * MiB);
    inflight.push(call('PUT', `${bigPutLocation}?digest=${bigPut.digest}`, { 'content-length': String(bigPut.size) }, putSender.body).catch((e: unknown) => e));
    const resumeLocation = await startUpload(repo);
    expect((await patchChunk(resumeLocation, resumable, 0, 8 * MiB)).status).toBe(202);
    const chunkSender = slowSender(resumable, 8 * MiB, 5 * MiB);
    inflight.push(
      call('PATCH', resumeLocation, { 'content-length': String(8 * MiB), 'content-range': `${8 * MiB}-${16 * MiB - 1}` }, chunkSender.body).catch((e: unknown) => e),
    );
    await waitFor(() => monoSender.sent() >= 12 * MiB && putSender.sent() >= 9 * MiB && chunkSender.sent() >= 5 * MiB, 60_000);
    await sleep(300); // let the server write what it has received

    expect(await layover.kill('SIGKILL')).toBe('SIGKILL');
    await Promise.all(inflight);
    await layover.restart();

    // Every upload that got its 201 is served with the right bytes.
    for (const blob of [mono, putBlob, chunked]) {
      const served = await servedDigest(repo, blob.digest);
      expect(served, blob.seed).toEqual({ status: 200, digest: blob.digest, size: blob.size });
    }
    const gotManifest = await call('GET', `/v2/${repo}/manifests/v1`);
    expect(gotManifest.status).toBe(200);
    expect(gotManifest.body.equals(manifest.bytes)).toBe(true);

    // The unfinished ones are absent, not half there.
    for (const blob of [bigMono, bigPut, resumable]) expect((await call('HEAD', `/v2/${repo}/blobs/${blob.digest}`)).status, blob.seed).toBe(404);
    expect(await corruptBlobs(layover.root)).toEqual([]);
    expect(readdirSync(path.join(layover.root, '_tmp'))).toEqual([]);

    // The chunked upload resumes from whatever the server kept (at least the accepted 8 MiB):
    // sessions live on disk, so after a restart it is there, not merely cleanly absent.
    const status = await call('GET', resumeLocation);
    expect(status.status).toBe(204);
    expect(status.headers.location).toBe(resumeLocation);
    const m = /^0-(\d+)$/.exec(String(status.headers.range));
    expect(m).not.toBeNull();
    const have = Number(m?.[1]) + 1;
    expect(have).toBeGreaterThanOrEqual(8 * MiB);
    expect(have).toBeLessThanOrEqual(13 * MiB);
    const rest = await call('PATCH', resumeLocation, { 'content-length': String(resumable.size - have), 'content-range': `${have}-${resumable.size - 1}` }, Readable.from(resumable.range(have)));
    expect(rest.status).toBe(202);
    expect(rest.headers.range).toBe(`0-${resumable.size - 1}`);
    expect((await call('PUT', `${resumeLocation}?digest=${resumable.digest}`, { 'content-length': '0' })).status).toBe(201);
    expect(await servedDigest(repo, resumable.digest)).toEqual({ status: 200, digest: resumable.digest, size: resumable.size });

    // The interrupted POST+PUT session survives too, holding a prefix of what was sent, never more.
    const putStatus = await call('GET', bigPutLocation);
    expect(putStatus.status).toBe(204);
    const kept = Number(/^0-(\d+)$/.exec(String(putStatus.headers.range))?.[1]) + 1;
    expect(kept).toBeLessThanOrEqual(9 * MiB);

    // And the big monolithic upload can simply be sent again.
    const again = await call('POST', `/v2/${repo}/blobs/uploads/?digest=${bigMono.digest}`, { 'content-length': String(bigMono.size) }, Readable.from(bigMono.range(0)));
    expect(again.status).toBe(201);
    expect(await servedDigest(repo, bigMono.digest)).toEqual({ status: 200, digest: bigMono.digest, size: bigMono.size });
    expect(await corruptBlobs(layover.root)).toEqual([]);
  }, 180_000);

  it('right after uploads finish: each one that got its 201 is served after the restart', async () => {
    const repo = 'crash/two';
    const blobs = Array.from({ length: 8 }, (_, i) => new Blob(`crash-burst-${i}`, (3 + (i % 4)) * MiB));
    const acknowledged: Blob[] = [];
    let killed = false;
    const uploads = blobs.map(async (blob, i) => {
      try {
        let res: Answer;
        if (i % 2 === 0) {
          res = await call('POST', `/v2/${repo}/blobs/uploads/?digest=${blob.digest}`, { 'content-length': String(blob.size) }, Readable.from(blob.range(0)));
        } else {
          const location = await startUpload(repo);
          const half = Math.floor(blob.size / 2);
          expect((await patchChunk(location, blob, 0, half)).status).toBe(202);
          res = await call('PUT', `${location}?digest=${blob.digest}`, { 'content-length': String(blob.size - half), 'content-range': `${half}-${blob.size - 1}` }, Readable.from(blob.range(half)));
        }
        if (res.status === 201 && !killed) acknowledged.push(blob);
      } catch {
        // The connection died with the process: this upload never got its answer.
      }
    });
    // Kill the moment the third upload is acknowledged, while the rest are still streaming.
    await waitFor(() => acknowledged.length >= 3, 60_000, 1);
    killed = true;
    const snapshot = [...acknowledged];
    expect(await layover.kill('SIGKILL')).toBe('SIGKILL');
    await Promise.all(uploads);
    await layover.restart();

    expect(snapshot.length).toBeGreaterThanOrEqual(3);
    for (const blob of snapshot) expect(await servedDigest(repo, blob.digest), blob.seed).toEqual({ status: 200, digest: blob.digest, size: blob.size });
    // The others are either absent or complete and correct: never a torn blob.
    for (const blob of blobs.filter((b) => !snapshot.includes(b))) {
      const served = await servedDigest(repo, blob.digest);
      if (served.status === 200) expect(served, blob.seed).toEqual({ status: 200, digest: blob.digest, size: blob.size });
      else expect(served.status).toBe(404);
    }
    expect(await corruptBlobs(layover.root)).toEqual([]);
    expect(countBlobFiles(layover.root)).toBeGreaterThanOrEqual(snapshot.length);
    expect(readdirSync(path.join(layover.root, '_tmp'))).toEqual([]);
  }, 180_000);
});
