// Issue 2 benchmark: layover against docker-registry (Distribution 2.8) on the same machine, in
// one run. Run with `npx tsx test/bench/registry.ts [--runs N] [--concurrent-runs N] [--skip-layover]`.
// Both registries run side by side for the whole of (a) to (c), so each GET and each load meets
// the same machine (it is shared and its load drifts):
//   (a) RSS at rest, started with no traffic; and again after a 256 MiB upload
//   (b) GET of the 256 MiB blob (curl to /dev/null): layover's and docker-registry's GETs
//       alternate (A B, B A, A B…), median and spread (min–max) of N each
//   (c) peak RSS of each registry process while 16 curl clients pull the blob at once, one
//       registry at a time, alternating, and its RSS at rest after the load
//   (d) skopeo push (copy from a local OCI layout) of a 3-layer ~300 MiB image, fresh storage
//       each run, alternating
// Prints a summary table (summary.ts) and one JSON line (`{"bench":"registry",…}`); ratios are
// layover ÷ docker-registry.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { spawnLayover } from '../helpers/layover.js';
import { makeOciImage, type OciImage } from '../helpers/oci-layout.js';
import { peakRssBytes, resetPeakRss, rssBytes, sampleRss } from '../helpers/process-stats.js';
import { uploadBlob } from '../helpers/registry-client.js';
import { requireTool } from '../helpers/run-tool.js';
import { skopeoCopy } from '../helpers/skopeo.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { curlGet, median, writeBlobFile } from './measure.js';
import { printSummary, spreadOf } from './summary.js';

const MiB = 2 ** 20;
const BLOB_SIZE = 256 * MiB;
const CLIENTS = 16;

interface Target {
  name: 'layover' | 'docker-registry';
  url: string;
  pid: number;
  close(): Promise<void>;
}

type Starter = () => Promise<Target>;

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '5' }, 'concurrent-runs': { type: 'string', default: '2' }, 'skip-layover': { type: 'boolean', default: false } } });
const RUNS = Math.max(1, Number(args.runs));
const CONCURRENT_RUNS = Math.max(1, Number(args['concurrent-runs']));

const startLayoverTarget: Starter = async () => {
  const l = await spawnLayover({}, { logLevel: 'warn', compiled: true });
  return { name: 'layover', url: l.url, get pid() { return l.pid; }, close: () => l.close() };
};
const startDockerTarget: Starter = async () => {
  const r = await startDockerRegistry({ logLevel: 'error' });
  return { name: 'docker-registry', url: r.url, pid: r.pid, close: () => r.close() };
};

interface Figures {
  gets: number[];
  pushes: number[];
  /** Peak RSS under each round of CLIENTS concurrent GETs, MiB. */
  peaks: number[];
  concurrentSeconds: number[];
  restStartMiB?: number;
  afterUploadMiB?: number;
  afterLoadMiB?: number;
  error?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const REST_MS = 10_000;
const rssMiB = (pid: number) => rssBytes(pid) / MiB;

async function measurePush(start: Starter, image: OciImage): Promise<number> {
  const target = await start();
  try {
    const t0 = performance.now();
    await skopeoCopy(image.ref, `docker://${new URL(target.url).host}/bench/image:1`);
    return (performance.now() - t0) / 1000;
  } finally {
    await target.close();
  }
}

async function peakUnderLoad(target: Target, url: string): Promise<{ peakMiB: number; seconds: number }> {
  const resetWorked = resetPeakRss(target.pid);
  const sampler = sampleRss(target.pid, 10);
  const started = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, () => curlGet(url, BLOB_SIZE)));
  const seconds = (performance.now() - started) / 1000;
  const sampled = sampler.stop();
  const hwm = resetWorked ? peakRssBytes(target.pid) : 0;
  return { peakMiB: Math.max(sampled, hwm) / MiB, seconds };
}

function errorText(err: unknown): string {
  return (err as Error).message.split('\n').slice(0, 3).join(' | ');
}

/** Rounds of `each`, one call per target, the order flipped every round (A B, B A, …). */
async function alternate(targets: Target[], rounds: number, each: (t: Target) => Promise<void>): Promise<void> {
  for (let i = 0; i < rounds; i++) for (const t of i % 2 ? [...targets].reverse() : targets) await each(t);
}

async function main(): Promise<void> {
  requireTool('skopeo');
  requireTool('docker-registry');
  requireTool('curl');
  const tmp = makeTempDir('layover-bench-');
  const results: Record<Target['name'], Figures> = {
    layover: { gets: [], pushes: [], peaks: [], concurrentSeconds: [] },
    'docker-registry': { gets: [], pushes: [], peaks: [], concurrentSeconds: [] },
  };
  const starters: [Target['name'], Starter][] = [['docker-registry', startDockerTarget]];
  if (!args['skip-layover']) starters.unshift(['layover', startLayoverTarget]);
  const running: Target[] = [];
  try {
    const t0 = performance.now();
    const blobFile = path.join(tmp.path, 'blob.bin');
    const [digest, image] = await Promise.all([
      writeBlobFile(blobFile, 'bench-registry-blob', BLOB_SIZE),
      // Stored gzip (level 0): the content is random, so compressing only costs set-up time.
      makeOciImage(path.join(tmp.path, 'image'), { layers: [100 * MiB, 100 * MiB, 100 * MiB], seed: 'bench-registry-image', gzipLevel: 0 }),
    ]);
    const imageMiB = image.layers.reduce((n, l) => n + l.size, 0) / MiB;
    console.error(`set-up: 256 MiB blob and ${imageMiB.toFixed(0)} MiB image in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    // (a) Both started, then left alone: RSS at rest with no traffic; then one upload each.
    for (const [name, start] of starters) {
      try {
        running.push(await start());
      } catch (err) {
        results[name].error = errorText(err);
        console.error(`${name}: ${results[name].error}`);
      }
    }
    // At rest means settled: layover collects 2 s into a quiet spell and again 6 s later
    // (idle-gc.ts), so each reading comes 10 s after the last activity.
    await sleep(REST_MS);
    for (const t of running) results[t.name].restStartMiB = rssMiB(t.pid);
    const blobUrl = (t: Target) => `${t.url}/v2/bench/blob/blobs/${digest}`;
    for (const t of running) await uploadBlob(t.url, 'bench/blob', digest, { file: blobFile });
    await sleep(REST_MS);
    for (const t of running) results[t.name].afterUploadMiB = rssMiB(t.pid);

    // (b) Warm (page cache, lazy state), then GETs taking turns.
    for (const t of running) await curlGet(blobUrl(t), BLOB_SIZE);
    await alternate(running, RUNS, async (t) => {
      const s = await curlGet(blobUrl(t), BLOB_SIZE);
      results[t.name].gets.push(s);
      console.error(`${t.name}: GET ${s.toFixed(3)} s`);
    });

    // (c) One registry under load at a time, the other idle; the order alternates.
    await alternate(running, CONCURRENT_RUNS, async (t) => {
      const { peakMiB, seconds } = await peakUnderLoad(t, blobUrl(t));
      results[t.name].peaks.push(peakMiB);
      results[t.name].concurrentSeconds.push(seconds);
      console.error(`${t.name}: ${CLIENTS} clients ${seconds.toFixed(2)} s, peak RSS ${peakMiB.toFixed(1)} MiB`);
    });
    await sleep(REST_MS);
    for (const t of running) results[t.name].afterLoadMiB = rssMiB(t.pid);
    for (const t of running.splice(0)) await t.close();

    // (d) Alternating registries so drift in machine load hits both alike.
    const pushRuns = Math.min(RUNS, 3);
    for (let i = 0; i < pushRuns; i++) {
      for (const [name, start] of i % 2 ? [...starters].reverse() : starters) {
        if (results[name].error) continue;
        try {
          results[name].pushes.push(await measurePush(start, image));
        } catch (err) {
          results[name].error = errorText(err);
          console.error(`${name}: push failed: ${results[name].error}`);
        }
      }
    }

    const l = results.layover;
    const d = results['docker-registry'];
    const med = (xs: number[]) => (xs.length ? median(xs) : undefined);
    const max = (xs: number[]) => (xs.length ? Math.max(...xs) : undefined);
    const layoverPeak = max(l.peaks);
    const dockerPeak = max(d.peaks);
    printSummary({
      bench: 'registry',
      peer: 'docker-registry',
      note: `${RUNS} GETs each, alternating; ${CONCURRENT_RUNS} rounds of ${CLIENTS} concurrent GETs; shared machine (load ${(await import('node:os')).loadavg()[0]!.toFixed(1)})`,
      rows: [
        { metric: 'GET 256 MiB blob, median', unit: 's', layover: med(l.gets), spread: spreadOf(l.gets), peer: med(d.gets), target: '≤ 1.0', met: (med(l.gets) ?? Infinity) <= (med(d.gets) ?? 0) },
        { metric: 'skopeo push 3x100 MiB, median', unit: 's', digits: 2, layover: med(l.pushes), spread: spreadOf(l.pushes, 2), peer: med(d.pushes), target: '≤ 1.0', met: (med(l.pushes) ?? Infinity) <= (med(d.pushes) ?? 0) },
        { metric: 'RSS at rest, started', unit: 'MiB', digits: 1, layover: l.restStartMiB, peer: d.restStartMiB, target: '≤ 60 MiB', met: (l.restStartMiB ?? Infinity) <= 60 },
        { metric: 'RSS after a 256 MiB upload', unit: 'MiB', digits: 1, layover: l.afterUploadMiB, peer: d.afterUploadMiB, target: '≤ 80 MiB', met: (l.afterUploadMiB ?? Infinity) <= 80 },
        { metric: `peak RSS, ${CLIENTS} concurrent GETs (max)`, unit: 'MiB', digits: 1, layover: layoverPeak, spread: spreadOf(l.peaks, 1), peer: dockerPeak, target: '≤ 1.0', met: (layoverPeak ?? Infinity) <= (dockerPeak ?? 0) },
        { metric: `${CLIENTS} concurrent GETs, median`, unit: 's', digits: 2, layover: med(l.concurrentSeconds), spread: spreadOf(l.concurrentSeconds, 2), peer: med(d.concurrentSeconds) },
        { metric: 'RSS at rest after the load', unit: 'MiB', digits: 1, layover: l.afterLoadMiB, peer: d.afterLoadMiB },
      ],
    });
    if (l.error) console.log(`layover: ${l.error}`);
    if (d.error) console.log(`docker-registry: ${d.error}`);
    console.log(JSON.stringify({
      bench: 'registry',
      runs: RUNS,
      concurrentRuns: CONCURRENT_RUNS,
      blobMiB: BLOB_SIZE / MiB,
      imageMiB: Number(imageMiB.toFixed(1)),
      clients: CLIENTS,
      layover: l,
      dockerRegistry: d,
      targets: { getRatio: 1, pushRatio: 1, restMiB: 60, afterUploadMiB: 80, peakRatio: 1 },
    }));
  } finally {
    for (const t of running) await t.close().catch(() => undefined);
    tmp.cleanup();
  }
}

await main();
