// Issue 12 item 4: pushing an image index of the largest allowed size whose ~30,000 children are
// all missing must not stall the event loop for everyone else. Two pushers PUT such an index
// over and over while a third client times `GET /v2/`; layover runs as its own process so that
// only its event loop is measured. Checking every child at once held the loop ~1 s per push
// (`/v2/` median ~1 s); now the check stops at the first missing child and the 4 MiB body is
// parsed in steps (manifest.ts: parseManifestYielding).
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { spawnLayover, type SpawnedLayover } from '../helpers/layover.js';
import { computeDigest, MediaType } from '../helpers/oci-content.js';

const PUSH_FOR_MS = 4_000;
const LIMIT = 4 * 2 ** 20;

let layover: SpawnedLayover;
// Own connections for the probe, so it never queues behind a 4 MiB upload on a shared socket.
const probeAgent = new Agent({ connections: 1 });
const pushAgent = new Agent({ connections: 2 });

/** An OCI index just under the manifest size limit, every child absent from the registry. */
function hugeIndex(): { bytes: Buffer; children: string[] } {
  const children: string[] = [];
  const entry = (digest: string): string => JSON.stringify({ mediaType: MediaType.ociManifest, digest, size: 1000 });
  const head = `{"schemaVersion":2,"mediaType":"${MediaType.ociIndex}","manifests":[`;
  let length = head.length + 2;
  for (let i = 0; ; i++) {
    const digest = computeDigest(`absent child ${i}`);
    const add = entry(digest).length + 1;
    if (length + add > LIMIT) break;
    children.push(digest);
    length += add;
  }
  const bytes = Buffer.from(`${head}${children.map(entry).join(',')}]}`);
  expect(bytes.length).toBeLessThanOrEqual(LIMIT);
  return { bytes, children };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
}

beforeAll(async () => {
  layover = await spawnLayover({}, { logLevel: 'warn' });
}, 60_000);
afterAll(async () => {
  await layover?.close();
  await probeAgent.close();
  await pushAgent.close();
});

describe('an index push with many missing children', () => {
  it('answers MANIFEST_BLOB_UNKNOWN while other clients stay fast', async () => {
    const { bytes, children } = hugeIndex();
    expect(children.length).toBeGreaterThan(25_000);
    const until = Date.now() + PUSH_FOR_MS;
    let pushes = 0;
    const pusher = async (): Promise<void> => {
      while (Date.now() < until) {
        const res = await request(`${layover.url}/v2/stall/index/manifests/latest`, {
          method: 'PUT',
          headers: { 'content-type': MediaType.ociIndex },
          body: bytes,
          dispatcher: pushAgent,
        });
        const text = await res.body.text();
        expect(res.statusCode, text.slice(0, 300)).toBe(400);
        const doc = JSON.parse(text) as { errors: { code: string; detail?: { missing?: string[] } }[] };
        expect(doc.errors[0]?.code).toBe('MANIFEST_BLOB_UNKNOWN');
        const missing = doc.errors[0]?.detail?.missing ?? [];
        expect(missing.length).toBeGreaterThan(0);
        for (const digest of missing) expect(children).toContain(digest);
        pushes += 1;
      }
    };
    const latencies: number[] = [];
    const probe = async (): Promise<void> => {
      await sleep(200); // let both pushes get going
      while (Date.now() < until) {
        const started = performance.now();
        const res = await request(`${layover.url}/v2/`, { dispatcher: probeAgent });
        await res.body.dump();
        latencies.push(performance.now() - started);
        expect(res.statusCode).toBe(200);
        await sleep(10);
      }
    };
    await Promise.all([pusher(), pusher(), probe()]);
    latencies.sort((a, b) => a - b);
    const median = percentile(latencies, 0.5);
    const p95 = percentile(latencies, 0.95);
    console.info(`index stall: ${pushes} pushes, ${latencies.length} probes, /v2/ median ${median.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms`);
    expect(pushes).toBeGreaterThanOrEqual(4);
    // Measured on a loaded 2-core machine: checking every child at once, median 1-3 s; stopping
    // at the first missing child, ~70-130 ms (parsing a 4 MiB index is ~35 ms of CPU); parsing
    // in steps with the loop free between them, ~25-30 ms, p95 ~90 ms, and 530 ms once when the
    // machine ran four other test suites beside this one. The bounds leave room for such load
    // and still fail the old code, whose ~1 s blocks put the median at 1 s even on a quiet machine.
    expect(median).toBeLessThan(400);
    expect(p95).toBeLessThan(1500);
  }, 60_000);
});
