// Issue 3 benchmark: the pull-through cache against docker-registry, in one run.
// Run with `npx tsx test/bench/proxy.ts [--runs N]` (about two minutes).
// One docker-registry holds a 256 MiB blob (the upstream). Figures, median of N runs, curl to /dev/null:
//   direct        GET from the upstream itself
//   layover cold  GET through a fresh layover mirror (a miss: fetched, verified, stored, streamed)
//   layover warm  the same GET again (a local hit)
//   proxy cold/warm  the same through docker-registry in its own proxy mode
//   16 concurrent cold GETs through a fresh mirror: the upstream's blob GET count (its access
//   log) and the mirror's peak RSS meanwhile
// Prints a table and one JSON line (`{"bench":"proxy",…}`).
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { spawnLayover } from '../helpers/layover.js';
import { peakRssBytes, resetPeakRss, sampleRss } from '../helpers/process-stats.js';
import { uploadBlob } from '../helpers/registry-client.js';
import { requireTool } from '../helpers/run-tool.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { curlGet, median, writeBlobFile } from './measure.js';
import { waitFor } from '../helpers/wait-for.js';

const MiB = 2 ** 20;
const BLOB_SIZE = 256 * MiB;
const CLIENTS = 16;
const REPO = 'bench/big';

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '3' } } });
const RUNS = Math.max(1, Number(args.runs));

function blobGets(upstream: DockerRegistry, digest: string): number {
  return upstream.accessLog().filter((r) => r.method === 'GET' && r.path === `/v2/${REPO}/blobs/${digest}`).length;
}

interface Mirror { url: string; pid: number; close(): Promise<void> }

async function startLayoverMirror(upstreamUrl: string): Promise<Mirror> {
  const l = await spawnLayover({ upstreams: [{ prefix: 'up', url: upstreamUrl }] }, { logLevel: 'warn', compiled: true });
  return { url: `${l.url}/v2/up/${REPO}`, pid: l.pid, close: () => l.close() };
}

async function startProxyMirror(upstreamUrl: string): Promise<Mirror> {
  const r = await startDockerRegistry({ proxy: { remoteurl: upstreamUrl }, logLevel: 'error' });
  return { url: `${r.url}/v2/${REPO}`, pid: r.pid, close: () => r.close() };
}

/** Cold GET on a fresh mirror, then warm GETs on the same one; median of RUNS each. */
async function coldAndWarm(start: () => Promise<Mirror>, digest: string): Promise<{ cold: number; warm: number }> {
  const cold: number[] = [];
  const warm: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const mirror = await start();
    try {
      cold.push(await curlGet(`${mirror.url}/blobs/${digest}`, BLOB_SIZE));
      warm.push(await curlGet(`${mirror.url}/blobs/${digest}`, BLOB_SIZE));
    } finally {
      await mirror.close();
    }
  }
  return { cold: median(cold), warm: median(warm) };
}

async function concurrentCold(start: () => Promise<Mirror>, upstream: DockerRegistry, digest: string): Promise<{ fetches: number; peakRssMiB: number; seconds: number }> {
  const mirror = await start();
  try {
    const before = blobGets(upstream, digest);
    const resetWorked = resetPeakRss(mirror.pid);
    const sampler = sampleRss(mirror.pid, 10);
    const t0 = performance.now();
    await Promise.all(Array.from({ length: CLIENTS }, () => curlGet(`${mirror.url}/blobs/${digest}`, BLOB_SIZE)));
    const seconds = (performance.now() - t0) / 1000;
    const peak = Math.max(sampler.stop(), resetWorked ? peakRssBytes(mirror.pid) : 0);
    // The upstream logs a request when its response ends; docker-registry's proxy fetches in the background too.
    await new Promise((r) => setTimeout(r, 1500));
    await waitFor(() => blobGets(upstream, digest) > before, 10_000);
    return { fetches: blobGets(upstream, digest) - before, peakRssMiB: peak / MiB, seconds };
  } finally {
    await mirror.close();
  }
}

function fmt(n: number | undefined, digits = 2): string {
  return n === undefined ? 'n/a' : n.toFixed(digits);
}

async function main(): Promise<void> {
  requireTool('curl');
  const tmp = makeTempDir('layover-bench-proxy-');
  const upstream = await startDockerRegistry({ logLevel: 'error' });
  try {
    const blobFile = path.join(tmp.path, 'blob.bin');
    const digest = await writeBlobFile(blobFile, 'bench-proxy-blob', BLOB_SIZE);
    await uploadBlob(upstream.url, REPO, digest, { file: blobFile });
    const directUrl = `${upstream.url}/v2/${REPO}/blobs/${digest}`;
    await curlGet(directUrl, BLOB_SIZE); // page cache
    const directTimes: number[] = [];
    for (let i = 0; i < RUNS; i++) directTimes.push(await curlGet(directUrl, BLOB_SIZE));
    const direct = median(directTimes);
    console.error(`direct: ${direct.toFixed(3)} s`);

    const layover = await coldAndWarm(() => startLayoverMirror(upstream.url), digest);
    console.error(`layover: cold ${layover.cold.toFixed(3)} s, warm ${layover.warm.toFixed(3)} s`);
    const proxy = await coldAndWarm(() => startProxyMirror(upstream.url), digest);
    console.error(`docker-registry proxy: cold ${proxy.cold.toFixed(3)} s, warm ${proxy.warm.toFixed(3)} s`);
    const layoverConc = await concurrentCold(() => startLayoverMirror(upstream.url), upstream, digest);
    const proxyConc = await concurrentCold(() => startProxyMirror(upstream.url), upstream, digest);

    const rows: [string, string, string, string][] = [
      ['cold pull 256 MiB, s', fmt(layover.cold, 3), fmt(proxy.cold, 3), fmt(direct, 3)],
      ['cold ÷ direct (target ≤ 1.15)', fmt(layover.cold / direct), fmt(proxy.cold / direct), '1.00'],
      ['warm pull 256 MiB, s', fmt(layover.warm, 3), fmt(proxy.warm, 3), fmt(direct, 3)],
      ['warm ÷ direct (target ≤ 1.0)', fmt(layover.warm / direct), fmt(proxy.warm / direct), '1.00'],
      [`upstream GETs, ${CLIENTS} concurrent cold (target 1)`, String(layoverConc.fetches), String(proxyConc.fetches), '-'],
      [`${CLIENTS} concurrent cold pulls, s`, fmt(layoverConc.seconds), fmt(proxyConc.seconds), '-'],
      ['peak RSS meanwhile, MiB (target ≤ 128)', fmt(layoverConc.peakRssMiB, 1), fmt(proxyConc.peakRssMiB, 1), '-'],
    ];
    console.log(`\n${'metric'.padEnd(44)}${'layover'.padStart(10)}${'dr-proxy'.padStart(10)}${'direct'.padStart(10)}`);
    for (const [label, a, b, c] of rows) console.log(`${label.padEnd(44)}${a.padStart(10)}${b.padStart(10)}${c.padStart(10)}`);
    console.log(JSON.stringify({
      bench: 'proxy',
      runs: RUNS,
      blobMiB: BLOB_SIZE / MiB,
      clients: CLIENTS,
      directSeconds: direct,
      layover: { ...layover, coldRatio: layover.cold / direct, warmRatio: layover.warm / direct, ...layoverConc },
      dockerRegistryProxy: { ...proxy, coldRatio: proxy.cold / direct, warmRatio: proxy.warm / direct, ...proxyConc },
    }));
  } finally {
    await upstream.close();
    tmp.cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
