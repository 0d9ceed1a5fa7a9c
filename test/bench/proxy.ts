// Issue 3 benchmark: the pull-through cache against docker-registry, in one run.
// Run with `npx tsx test/bench/proxy.ts [--runs N] [--settle SECONDS] [--no-prime]` (about four minutes).
//
// One docker-registry (the upstream) holds N+2 distinct 256 MiB blobs. Each mirror, layover and
// docker-registry in its own proxy mode, is started once and kept running, as a node mirror is:
//   first pull    the first cold GET after the mirror started (blob 0); for layover this
//                 includes V8 compiling the hot path, which a mirror pays once in its life
//   cold          a GET of a blob the mirror has never seen (blobs 1..N): fetched, verified,
//                 stored and streamed; median of N
//   warm          the same GET again (a local hit); median of N
//   16 concurrent cold GETs of blob N+1: the upstream's blob GET count (its access log), the
//                 mirror's peak RSS meanwhile, its RSS at rest before them, and its peak RSS
//                 over everything before them (start-up and the first pull included)
// Every GET is curl to /dev/null; "direct" is the same GET from the upstream itself, taken right
// before each cold pull, and each mirror's ratios use the direct GETs of its own runs. One mirror
// runs after the other, each alone: taking turns run by run made layover pay for docker-registry's
// background download and memory churn (~+40 % CPU per miss), and never the other way round.
//
// Page cache: on this kind of VM (Firecracker) the first write to a page the guest has never
// touched costs a trip to the host, ~0.8 s per 256 MiB against ~0.06 s for a page already
// used; which mirror happened to inherit used pages decided the cold figures by a factor of
// two. So before every cold GET a 1.5 GiB file is written and deleted (dd), giving both the same warm
// page cache. `--no-prime` skips that.
// Prints a table and one JSON line (`{"bench":"proxy",…}`).
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { spawnLayover } from '../helpers/layover.js';
import { peakRssBytes, resetPeakRss, rssBytes, sampleRss } from '../helpers/process-stats.js';
import { uploadBlob } from '../helpers/registry-client.js';
import { requireTool } from '../helpers/run-tool.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';
import { curlGet, median, writeBlobFile } from './measure.js';
import { printSummary, spreadOf } from './summary.js';

const MiB = 2 ** 20;
const BLOB_SIZE = 256 * MiB;
const CLIENTS = 16;
const REPO = 'bench/big';

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '3' }, settle: { type: 'string', default: '60' }, 'no-prime': { type: 'boolean', default: false } } });
const RUNS = Math.max(1, Number(args.runs));
const SETTLE_MS = Number(args.settle) * 1000;
const PRIME = !args['no-prime'];

interface Mirror {
  name: string;
  blobUrl(digest: string): string;
  pid: number;
  /** Upstream GETs one cold pull costs: docker-registry's proxy fetches again in the background to store. */
  getsPerMiss: number;
  close(): Promise<void>;
}

async function startLayoverMirror(upstreamUrl: string): Promise<Mirror> {
  const l = await spawnLayover({ upstreams: [{ prefix: 'up', url: upstreamUrl }] }, { logLevel: 'warn', compiled: true });
  return { name: 'layover', blobUrl: (d) => `${l.url}/v2/up/${REPO}/blobs/${d}`, pid: l.pid, getsPerMiss: 1, close: () => l.close() };
}

async function startProxyMirror(upstreamUrl: string): Promise<Mirror> {
  const r = await startDockerRegistry({ proxy: { remoteurl: upstreamUrl }, logLevel: 'error' });
  return { name: 'docker-registry proxy', blobUrl: (d) => `${r.url}/v2/${REPO}/blobs/${d}`, pid: r.pid, getsPerMiss: 2, close: () => r.close() };
}

/** Writes and deletes 1.5 GiB in `dir` (dd, 1 MiB blocks), so the next writes land on pages the guest has used. */
function primePageCache(dir: string): void {
  if (!PRIME) return;
  const file = path.join(dir, 'prime.bin');
  const dd = spawnSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', 'count=1536', 'status=none']);
  rmSync(file, { force: true });
  if (dd.status !== 0) throw new Error(`dd: ${dd.stderr.toString()}`);
}

/** User + system CPU seconds of a process (all its threads) so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function blobGets(upstream: DockerRegistry, digest: string): number {
  return upstream.accessLog().filter((r) => r.method === 'GET' && r.path === `/v2/${REPO}/blobs/${digest}`).length;
}

/**
 * Waits until the upstream has served `expected` GETs of `digest` (its log line comes when a
 * response ends), then a little longer: a mirror still downloading in the background must not
 * share the CPU with the next measurement.
 */
async function settle(upstream: DockerRegistry, digest: string, expected: number): Promise<void> {
  await waitFor(() => blobGets(upstream, digest) >= expected, 20_000);
  await new Promise((r) => setTimeout(r, 500));
}

interface Figures { first: number; cold: number[]; warm: number[]; coldCpu: number[]; direct: number[] }

interface Concurrent { fetches: number; peakRssMiB: number; restRssMiB: number; lifePeakRssMiB: number; seconds: number }

async function concurrentCold(mirror: Mirror, upstream: DockerRegistry, digest: string, scratch: string): Promise<Concurrent> {
  primePageCache(scratch);
  const before = blobGets(upstream, digest);
  const restRssMiB = rssBytes(mirror.pid) / MiB;
  // Everything before: start-up, the first pull, the cold and warm pulls.
  const lifePeakRssMiB = peakRssBytes(mirror.pid) / MiB;
  const resetWorked = resetPeakRss(mirror.pid);
  const sampler = sampleRss(mirror.pid, 10);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, () => curlGet(mirror.blobUrl(digest), BLOB_SIZE)));
  const seconds = (performance.now() - t0) / 1000;
  const peak = Math.max(sampler.stop(), resetWorked ? peakRssBytes(mirror.pid) : 0);
  // The upstream logs a request when its response ends; docker-registry's proxy fetches in the background too.
  await new Promise((r) => setTimeout(r, 1500));
  await waitFor(() => blobGets(upstream, digest) > before, 10_000);
  return { fetches: blobGets(upstream, digest) - before, peakRssMiB: peak / MiB, restRssMiB, lifePeakRssMiB, seconds };
}

function fmt(n: number | undefined, digits = 2): string {
  return n === undefined ? 'n/a' : n.toFixed(digits);
}

async function main(): Promise<void> {
  requireTool('curl');
  const tmp = makeTempDir('layover-bench-proxy-');
  const upstream = await startDockerRegistry({ logLevel: 'error' });
  const mirrors: Mirror[] = [];
  try {
    // Blob 0: first pulls; 1..RUNS: cold and warm; RUNS+1: the concurrent pull.
    const digests: string[] = [];
    const blobFile = path.join(tmp.path, 'blob.bin');
    for (let i = 0; i < RUNS + 2; i++) {
      const digest = await writeBlobFile(blobFile, `bench-proxy-blob-${i}`, BLOB_SIZE);
      await uploadBlob(upstream.url, REPO, digest, { file: blobFile });
      digests.push(digest);
    }
    rmSync(blobFile);
    // Flush the uploads now, then let the machine settle: right after the setup has written
    // ~3 GiB, the VM's host is still writing them back, and a cold pull measured then cost
    // layover 1.3-1.5 CPU-s against 0.5-0.8 a minute later (docker-registry's 0.45 against 0.33).
    spawnSync('sync');
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const directUrl = (d: string) => `${upstream.url}/v2/${REPO}/blobs/${d}`;
    // Direct GETs are taken right before each cold pull, so each ratio compares the same moment.

    const expected = new Map<string, number>();
    /** One mirror alone on the machine: first pull, RUNS cold and warm pulls, then the concurrent pull. */
    const measure = async (start: () => Promise<Mirror>): Promise<{ figures: Figures; conc: Concurrent }> => {
      const m = await start();
      mirrors.push(m);
      const f: Figures = { first: 0, cold: [], warm: [], coldCpu: [], direct: [] };
      const cold = async (digest: string): Promise<number> => {
        f.direct.push(await curlGet(directUrl(digest), BLOB_SIZE));
        expected.set(digest, (expected.get(digest) ?? 0) + 1);
        primePageCache(tmp.path);
        const cpu0 = cpuSeconds(m.pid);
        const seconds = await curlGet(m.blobUrl(digest), BLOB_SIZE);
        f.coldCpu.push(cpuSeconds(m.pid) - cpu0);
        expected.set(digest, (expected.get(digest) as number) + m.getsPerMiss);
        await settle(upstream, digest, expected.get(digest) as number);
        return seconds;
      };
      f.first = await cold(digests[0] as string);
      for (let run = 1; run <= RUNS; run++) {
        f.cold.push(await cold(digests[run] as string));
        f.warm.push(await curlGet(m.blobUrl(digests[run] as string), BLOB_SIZE));
        console.error(`${m.name}: direct ${fmt(f.direct.at(-1), 3)} s, cold ${fmt(f.cold.at(-1), 3)} s (${fmt(f.coldCpu.at(-1))} CPU-s), warm ${fmt(f.warm.at(-1), 3)} s`);
      }
      const conc = await concurrentCold(m, upstream, digests[RUNS + 1] as string, tmp.path);
      await m.close();
      mirrors.pop();
      return { figures: f, conc };
    };
    const { figures: L, conc: lc } = await measure(() => startLayoverMirror(upstream.url));
    const { figures: D, conc: dc } = await measure(() => startProxyMirror(upstream.url));

    // The first pull is not counted: it includes start-up work.
    const sum = (f: Figures) => ({ first: f.first, cold: median(f.cold), warm: median(f.warm), coldCpu: median(f.coldCpu.slice(1)), direct: median(f.direct.slice(1)) });
    const layover = sum(L);
    const proxy = sum(D);
    const direct = median([...L.direct.slice(1), ...D.direct.slice(1)]);
    const rows: [string, string, string, string][] = [
      ['first pull after start 256 MiB, s', fmt(layover.first, 3), fmt(proxy.first, 3), fmt(direct, 3)],
      ['cold pull 256 MiB, s', fmt(layover.cold, 3), fmt(proxy.cold, 3), fmt(direct, 3)],
      ['CPU-s of the mirror per cold pull', fmt(layover.coldCpu), fmt(proxy.coldCpu), '-'],
      ['direct GETs meanwhile, s', fmt(layover.direct, 3), fmt(proxy.direct, 3), fmt(direct, 3)],
      ['cold ÷ direct (target ≤ 1.15)', fmt(layover.cold / layover.direct), fmt(proxy.cold / proxy.direct), '1.00'],
      ['warm pull 256 MiB, s', fmt(layover.warm, 3), fmt(proxy.warm, 3), fmt(direct, 3)],
      ['warm ÷ direct (target ≤ 1.0)', fmt(layover.warm / layover.direct), fmt(proxy.warm / proxy.direct), '1.00'],
      [`upstream GETs, ${CLIENTS} concurrent cold (target 1)`, String(lc.fetches), String(dc.fetches), '-'],
      [`${CLIENTS} concurrent cold pulls, s`, fmt(lc.seconds), fmt(dc.seconds), '-'],
      ['RSS at rest before them, MiB', fmt(lc.restRssMiB, 1), fmt(dc.restRssMiB, 1), '-'],
      ['peak RSS meanwhile, MiB (target ≤ 128)', fmt(lc.peakRssMiB, 1), fmt(dc.peakRssMiB, 1), '-'],
      ['peak RSS before them, from start, MiB', fmt(lc.lifePeakRssMiB, 1), fmt(dc.lifePeakRssMiB, 1), '-'],
    ];
    console.log(`\nprimed page cache: ${PRIME ? 'yes' : 'no'}; runs: ${RUNS}`);
    console.log(`${'metric'.padEnd(44)}${'layover'.padStart(10)}${'dr-proxy'.padStart(10)}${'direct'.padStart(10)}`);
    for (const [label, a, b, c] of rows) console.log(`${label.padEnd(44)}${a.padStart(10)}${b.padStart(10)}${c.padStart(10)}`);
    printSummary({
      bench: 'proxy',
      peer: 'docker-registry proxy',
      note: `${RUNS} runs, one mirror after the other; primed page cache: ${PRIME ? 'yes' : 'no'}`,
      rows: [
        { metric: 'cold pull 256 MiB, median', unit: 's', layover: layover.cold, spread: spreadOf(L.cold), peer: proxy.cold, target: '≤ 1.0', met: layover.cold <= proxy.cold },
        { metric: 'CPU of the mirror per cold pull', unit: 'CPU-s', digits: 2, layover: layover.coldCpu, spread: spreadOf(L.coldCpu.slice(1), 2), peer: proxy.coldCpu },
        { metric: 'cold ÷ direct', layover: layover.cold / layover.direct, peer: direct, peerName: 'direct GET, s', ratio: layover.cold / layover.direct, target: '≤ 1.15', met: layover.cold / layover.direct <= 1.15 },
        { metric: 'warm pull 256 MiB, median', unit: 's', layover: layover.warm, spread: spreadOf(L.warm), peer: proxy.warm },
        { metric: 'warm ÷ direct', layover: layover.warm / layover.direct, peer: direct, peerName: 'direct GET, s', ratio: layover.warm / layover.direct, target: '≤ 1.0', met: layover.warm / layover.direct <= 1.0 },
        { metric: `upstream GETs, ${CLIENTS} concurrent cold`, digits: 0, layover: lc.fetches, peer: dc.fetches, target: '1', met: lc.fetches === 1 },
        { metric: `peak RSS, ${CLIENTS} concurrent cold`, unit: 'MiB', digits: 1, layover: lc.peakRssMiB, peer: dc.peakRssMiB, target: '≤ 128 MiB', met: lc.peakRssMiB <= 128 },
        { metric: 'RSS at rest before them', unit: 'MiB', digits: 1, layover: lc.restRssMiB, peer: dc.restRssMiB },
      ],
    });
    console.log(JSON.stringify({
      bench: 'proxy',
      runs: RUNS,
      primed: PRIME,
      blobMiB: BLOB_SIZE / MiB,
      clients: CLIENTS,
      directSeconds: direct,
      layover: { ...layover, coldRuns: L.cold, warmRuns: L.warm, directRuns: L.direct, coldRatio: layover.cold / layover.direct, warmRatio: layover.warm / layover.direct, ...lc },
      dockerRegistryProxy: { ...proxy, coldRuns: D.cold, warmRuns: D.warm, directRuns: D.direct, coldRatio: proxy.cold / proxy.direct, warmRatio: proxy.warm / proxy.direct, ...dc },
    }));
  } finally {
    for (const m of mirrors) await m.close().catch(() => undefined);
    await upstream.close();
    tmp.cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
