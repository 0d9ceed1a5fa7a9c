// Issue 3/16 benchmark: the pull-through cache against docker-registry's own proxy mode, in one run.
// Run with `BENCH_ONLY=proxy npm run bench` or `npx tsx test/bench/proxy.ts [--runs N] [--settle SECONDS] [--no-prime]`
// (about five minutes with the default 5 runs). `--ab VAR` adds a second layover started with VAR=1
// in its environment, in the same rotation (for trying a change behind a temporary switch).
//
// One docker-registry (the upstream) holds N+2 distinct 256 MiB blobs. Both mirrors, layover and
// docker-registry in its proxy mode, are started once and kept running, as a node mirror is:
//   first pull    the first cold GET after the mirror started (blob 0); for layover this
//                 includes V8 compiling the hot path, which a mirror pays once in its life
//   cold          a GET of a blob the mirror has never seen (blobs 1..N): fetched, verified,
//                 stored and streamed. Both mirrors pull the same blob in the same run, taking
//                 turns at going first (run 1 layover first, run 2 docker-registry first, …), so
//                 the ratio layover ÷ docker-registry is taken per run, at the same moment and on
//                 the same layer; the table gives its median and min–max.
//   CPU           of each mirror process (all threads, /proc/PID/stat) while its client is served
//                 (the response path), and until it is quiet again (docker-registry fetches the
//                 blob a second time in the background to store it); and of the other mirror
//                 meanwhile, which must be ~0
//   warm          the same GET again (a local hit); median of N
//   16 concurrent cold GETs of blob N+1, one mirror after the other: the upstream's blob GET
//                 count (its access log), the mirror's peak RSS meanwhile, its RSS at rest before
//                 them, and its peak RSS over everything before them
//   floors        in the same rotation, three bare Node 20 proxies (_bare-proxy.mjs, plain `node`
//                 with the image's flags; --floor picks them): `bare` pipes undici's body to the
//                 response (receive + send, nothing else), `verify` also hashes on the event loop
//                 and holds the last chunk for the verdict, `verify-file` also writes a file. They
//                 answer "what does Node itself cost for this pull": their cold time and CPU (all
//                 threads, and the main thread: Node's event loop) beside layover's and the peer's.
// Every GET is curl to /dev/null; "direct" is the same GET from the upstream itself, taken right
// before each run's cold pulls. Before each cold pull both mirrors must be quiet (no CPU for
// 300 ms): docker-registry's background download once made layover's next pull pay ~40 % more
// CPU when they took turns without waiting. The 1-minute load average is printed beside each run
// (the machine may be shared).
//
// Page cache: on this kind of VM (Firecracker) the first write to a page the guest has never
// touched costs a trip to the host, ~0.8 s per 256 MiB against ~0.06 s for a page already
// used; which mirror happened to inherit used pages decided the cold figures by a factor of
// two. So before every cold GET a 1.5 GiB file is written and deleted (dd), giving both the same warm
// page cache. `--no-prime` skips that.
// Prints a table and one JSON line (`{"bench":"proxy",…}`).
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { startChild } from '../helpers/child-process.js';
import { IMAGE_ENV, IMAGE_NODE_FLAGS, spawnLayover } from '../helpers/layover.js';
import { peakRssBytes, resetPeakRss, rssBytes, sampleRss } from '../helpers/process-stats.js';
import { uploadBlob } from '../helpers/registry-client.js';
import { requireTool } from '../helpers/run-tool.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { waitFor, waitForHttp } from '../helpers/wait-for.js';
import { curlGet, median, writeBlobFile } from './measure.js';
import { printSummary, spreadOf } from './summary.js';

const MiB = 2 ** 20;
const BLOB_SIZE = 256 * MiB;
const CLIENTS = 16;
const REPO = 'bench/big';

type BareMode = 'bare' | 'verify' | 'verify-file';
const BARE_NAMES: Record<BareMode, string> = { bare: 'bare Node proxy', verify: 'bare Node + sha256', 'verify-file': 'bare Node + sha256 + file' };

const { values: args } = parseArgs({
  options: { runs: { type: 'string', default: '5' }, settle: { type: 'string', default: '60' }, 'no-prime': { type: 'boolean', default: false }, ab: { type: 'string' }, floor: { type: 'string', default: 'bare,verify,verify-file' } },
});
const RUNS = Math.max(1, Number(args.runs));
const SETTLE_MS = Number(args.settle) * 1000;
const PRIME = !args['no-prime'];
const AB = args.ab;
/** `--floor bare,verify` picks the bare Node proxies to run beside (`--floor ''` none). */
const FLOORS = (args.floor ?? '').split(',').map((s) => s.trim()).filter(Boolean) as BareMode[];
for (const f of FLOORS) if (!(f in BARE_NAMES)) throw new Error(`--floor: unknown mode ${f} (bare, verify, verify-file)`);

interface Mirror {
  name: string;
  blobUrl(digest: string): string;
  pid: number;
  /** Upstream GETs one cold pull costs: docker-registry's proxy fetches again in the background to store. */
  getsPerMiss: number;
  /** A floor (a bare Node proxy, _bare-proxy.mjs): it caches nothing, so it has no warm pull and no concurrent figures. */
  floor?: boolean;
  close(): Promise<void>;
}

async function startLayoverMirror(upstreamUrl: string, name: string, env: Record<string, string> = {}): Promise<Mirror> {
  // spawnLayover passes this process's environment on.
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    const l = await spawnLayover({ upstreams: [{ prefix: 'up', url: upstreamUrl }] }, { logLevel: 'warn', compiled: true });
    return { name, blobUrl: (d) => `${l.url}/v2/up/${REPO}/blobs/${d}`, pid: l.pid, getsPerMiss: 1, close: () => l.close() };
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

async function startProxyMirror(upstreamUrl: string): Promise<Mirror> {
  const r = await startDockerRegistry({ proxy: { remoteurl: upstreamUrl }, logLevel: 'error' });
  return { name: 'docker-registry proxy', blobUrl: (d) => `${r.url}/v2/${REPO}/blobs/${d}`, pid: r.pid, getsPerMiss: 2, close: () => r.close() };
}


/** The floor: _bare-proxy.mjs under plain `node` with the image's flags and environment, as layover runs. */
async function startBareMirror(upstreamUrl: string, mode: BareMode, dir: string): Promise<Mirror> {
  const script = fileURLToPath(new URL('./_bare-proxy.mjs', import.meta.url));
  const out = path.join(dir, `bare-${mode}.log`);
  const child = startChild(process.execPath, [...IMAGE_NODE_FLAGS, script, upstreamUrl, mode, dir], { stdoutFile: out, env: { ...process.env, NODE_OPTIONS: undefined, ...IMAGE_ENV } });
  try {
    const port = await waitFor(() => /listening (\d+)/.exec(readFileSync(out, 'utf8'))?.[1], 10_000);
    const url = `http://127.0.0.1:${port}`;
    await waitForHttp(`${url}/v2/`, 10_000, child.alive);
    return { name: BARE_NAMES[mode], blobUrl: (d) => `${url}/v2/${REPO}/blobs/${d}`, pid: child.pid, getsPerMiss: 1, floor: true, close: async () => void (await child.stop()) };
  } catch (err) {
    await child.stop('SIGKILL');
    throw new Error(`${BARE_NAMES[mode]} did not start: ${readFileSync(out, 'utf8')}`, { cause: err });
  }
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

/** CPU seconds of a process's main thread (Node's event loop; for Go just one of its threads). */
function mainThreadCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
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

/** Resolves once none of `pids` has used more than 5 ms of CPU in 300 ms (at most 20 s). */
async function quiet(pids: number[]): Promise<void> {
  const deadline = Date.now() + 20_000;
  let last = pids.map(cpuSeconds);
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 300));
    const now = pids.map(cpuSeconds);
    if (now.every((c, i) => c - (last[i] as number) <= 0.005)) return;
    last = now;
  }
}

function fmt(n: number | undefined, digits = 2): string {
  return n === undefined ? 'n/a' : n.toFixed(digits);
}

/** One mirror's figures, a sample per run. */
interface Figures {
  first: number;
  cold: number[];
  /** CPU-s of the mirror while its client was served. */
  coldCpu: number[];
  /** CPU-s of its main thread meanwhile (Node: the event loop, where receive and send run). */
  mainCpu: number[];
  /** CPU-s of the mirror from the request until it was quiet again (background work included). */
  missCpu: number[];
  /** CPU-s of the other mirrors meanwhile (should be ~0). */
  othersCpu: number[];
  warm: number[];
}

const spreadText = (xs: number[], digits = 2) => (xs.length ? `${fmt(median(xs), digits)} (${fmt(Math.min(...xs), digits)}–${fmt(Math.max(...xs), digits)})` : 'n/a');

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

    // `--ab VAR` (development): a second layover with VAR=1 in its environment, in the same rotation.
    mirrors.push(await startLayoverMirror(upstream.url, 'layover'));
    if (AB) mirrors.push(await startLayoverMirror(upstream.url, `layover ${AB}=1`, { [AB]: '1' }));
    for (const mode of FLOORS) mirrors.push(await startBareMirror(upstream.url, mode, tmp.path));
    mirrors.push(await startProxyMirror(upstream.url));
    const peer = mirrors.at(-1) as Mirror;
    const pids = () => mirrors.map((m) => m.pid);
    const figures = new Map<Mirror, Figures>(mirrors.map((m) => [m, { first: 0, cold: [], coldCpu: [], mainCpu: [], missCpu: [], othersCpu: [], warm: [] }]));
    const direct: number[] = [];
    const loads: number[] = [];
    const expected = new Map<string, number>();

    const cold = async (m: Mirror, digest: string): Promise<number> => {
      const f = figures.get(m) as Figures;
      primePageCache(tmp.path);
      await quiet(pids());
      const others = mirrors.filter((o) => o !== m);
      const cpu0 = cpuSeconds(m.pid);
      const main0 = mainThreadCpuSeconds(m.pid);
      const others0 = others.map((o) => cpuSeconds(o.pid));
      const seconds = await curlGet(m.blobUrl(digest), BLOB_SIZE);
      const served = cpuSeconds(m.pid) - cpu0;
      f.mainCpu.push(mainThreadCpuSeconds(m.pid) - main0);
      expected.set(digest, (expected.get(digest) ?? 0) + m.getsPerMiss);
      await settle(upstream, digest, expected.get(digest) as number);
      await quiet([m.pid]);
      f.coldCpu.push(served);
      f.missCpu.push(cpuSeconds(m.pid) - cpu0);
      f.othersCpu.push(others.reduce((sum, o, i) => sum + cpuSeconds(o.pid) - (others0[i] as number), 0));
      return seconds;
    };

    // First pulls, not counted: they include start-up work.
    for (const m of mirrors) {
      const digest = digests[0] as string;
      expected.set(digest, (expected.get(digest) ?? 0) + 1);
      await curlGet(directUrl(digest), BLOB_SIZE);
      const f = figures.get(m) as Figures;
      f.first = await cold(m, digest);
      f.coldCpu = [];
      f.mainCpu = [];
      f.missCpu = [];
      f.othersCpu = [];
    }
    for (let run = 1; run <= RUNS; run++) {
      const digest = digests[run] as string;
      // Each mirror goes first in turn.
      const order = mirrors.map((_, i) => mirrors[(i + run - 1) % mirrors.length] as Mirror);
      await quiet(pids());
      direct.push(await curlGet(directUrl(digest), BLOB_SIZE));
      expected.set(digest, (expected.get(digest) ?? 0) + 1);
      loads.push(loadavg()[0] as number);
      const line: string[] = [];
      for (const m of order) {
        const f = figures.get(m) as Figures;
        f.cold.push(await cold(m, digest));
        line.push(`${m.name} ${fmt(f.cold.at(-1), 3)} s ${fmt(f.coldCpu.at(-1))}/${fmt(f.missCpu.at(-1))} CPU-s`);
      }
      for (const m of order) if (!m.floor) (figures.get(m) as Figures).warm.push(await curlGet(m.blobUrl(digest), BLOB_SIZE));
      console.error(`run ${run} (load ${fmt(loads.at(-1))}): direct ${fmt(direct.at(-1), 3)} s; cold ${line.join('; ')}`);
    }
    loads.push(loadavg()[0] as number);

    const conc = new Map<Mirror, Concurrent>();
    for (const m of mirrors) {
      if (m.floor) continue;
      await quiet(pids());
      conc.set(m, await concurrentCold(m, upstream, digests[RUNS + 1] as string, tmp.path));
    }

    const P = figures.get(peer) as Figures;
    const layovers = mirrors.filter((m) => m !== peer && !m.floor);
    const floors = mirrors.filter((m) => m.floor);
    const ratiosTo = (m: Mirror, base: Mirror) => (figures.get(m) as Figures).cold.map((c, i) => c / ((figures.get(base) as Figures).cold[i] as number));
    const ratios = (m: Mirror) => ratiosTo(m, peer);
    console.log(`\nprimed page cache: ${PRIME ? 'yes' : 'no'}; runs: ${RUNS}, each mirror first in turn; load average (1 min) ${spreadText(loads)}`);
    const cols = mirrors.map((m) => m.name);
    const width = Math.max(24, ...cols.map((c) => c.length + 2));
    console.log(`${'metric, median (min–max)'.padEnd(46)}${cols.map((c) => c.padStart(width)).join('')}`);
    const row = (label: string, cell: (m: Mirror) => string) => console.log(`${label.padEnd(46)}${mirrors.map((m) => cell(m).padStart(width)).join('')}`);
    const F = (m: Mirror) => figures.get(m) as Figures;
    const C = (m: Mirror) => conc.get(m);
    row('first pull after start 256 MiB, s', (m) => fmt(F(m).first, 3));
    row('cold pull 256 MiB, s', (m) => spreadText(F(m).cold, 3));
    row('cold ÷ dr-proxy cold, same run (target ≤ 1.0)', (m) => (m === peer ? '1' : spreadText(ratios(m))));
    for (const f of floors) row(`cold ÷ ${f.name}, same run`, (m) => (m === f ? '1' : spreadText(ratiosTo(m, f))));
    row('cold ÷ direct', (m) => spreadText(F(m).cold.map((c, i) => c / (direct[i] as number))));
    row('CPU-s while serving the cold pull', (m) => spreadText(F(m).coldCpu));
    row('  of which the main thread (Node: event loop)', (m) => (m === peer ? 'n/a' : spreadText(F(m).mainCpu)));
    row('CPU-s per miss until quiet', (m) => spreadText(F(m).missCpu));
    row('CPU-s of the other mirrors meanwhile', (m) => spreadText(F(m).othersCpu));
    row('warm pull 256 MiB, s', (m) => spreadText(F(m).warm, 3));
    row(`upstream GETs, ${CLIENTS} concurrent cold (target 1)`, (m) => String(C(m)?.fetches ?? 'n/a'));
    row(`${CLIENTS} concurrent cold pulls, s`, (m) => fmt(C(m)?.seconds));
    row('RSS at rest before them, MiB', (m) => fmt(C(m)?.restRssMiB, 1));
    row('peak RSS meanwhile, MiB (target ≤ 128)', (m) => fmt(C(m)?.peakRssMiB, 1));
    row('peak RSS before them, from start, MiB', (m) => fmt(C(m)?.lifePeakRssMiB, 1));
    console.log(`direct GET 256 MiB, s: ${spreadText(direct, 3)}`);

    const L = figures.get(layovers[0] as Mirror) as Figures;
    const lc = C(layovers[0] as Mirror) as Concurrent;
    const dc = conc.get(peer) as Concurrent;
    const ratio = median(ratios(layovers[0] as Mirror));
    const directMedian = median(direct);
    const loadNote = `load average ${spreadText(loads)}`;
    printSummary({
      bench: 'proxy',
      peer: 'docker-registry proxy',
      note: `${RUNS} runs, mirrors alternating; primed page cache: ${PRIME ? 'yes' : 'no'}; ${loadNote}`,
      rows: [
        { metric: 'cold pull 256 MiB, median', unit: 's', layover: median(L.cold), spread: spreadOf(L.cold), peer: median(P.cold) },
        { metric: 'cold ÷ dr-proxy cold per run, median', layover: ratio, spread: spreadOf(ratios(layovers[0] as Mirror), 2), peer: 1, ratio, target: '≤ 1.0', met: ratio <= 1.0 },
        // The floors: what Node itself costs for the same pull, in the same runs. Their rows put the
        // floor's own figure in the layover column where the metric says so.
        ...floors.flatMap((f) => {
          const fr = ratiosTo(f, peer);
          const lr = ratiosTo(layovers[0] as Mirror, f);
          const fc = (figures.get(f) as Figures).coldCpu;
          return [
            { metric: `floor: ${f.name} ÷ dr-proxy cold per run`, layover: median(fr), spread: spreadOf(fr, 2), peer: 1, ratio: median(fr) },
            { metric: `cold ÷ ${f.name} cold per run`, layover: median(lr), spread: spreadOf(lr, 2), peer: 1, peerName: f.name, ratio: median(lr) },
            { metric: `floor: CPU while serving, ${f.name}`, unit: 'CPU-s', digits: 2, layover: median(fc), spread: spreadOf(fc, 2), peer: median(P.coldCpu), ratio: median(fc) / median(P.coldCpu) },
            { metric: `event loop CPU while serving ÷ ${f.name}'s`, unit: 'CPU-s', digits: 2, layover: median(L.mainCpu), spread: spreadOf(L.mainCpu, 2), peer: median((figures.get(f) as Figures).mainCpu), peerName: f.name },
          ];
        }),
        { metric: 'CPU while serving a cold pull', unit: 'CPU-s', digits: 2, layover: median(L.coldCpu), spread: spreadOf(L.coldCpu, 2), peer: median(P.coldCpu) },
        { metric: 'CPU per miss until quiet', unit: 'CPU-s', digits: 2, layover: median(L.missCpu), spread: spreadOf(L.missCpu, 2), peer: median(P.missCpu) },
        { metric: 'cold ÷ direct', layover: median(L.cold) / directMedian, peer: directMedian, peerName: 'direct GET, s', ratio: median(L.cold) / directMedian, target: '≤ 1.15', met: median(L.cold) / directMedian <= 1.15 },
        { metric: 'warm pull 256 MiB, median', unit: 's', layover: median(L.warm), spread: spreadOf(L.warm), peer: median(P.warm) },
        { metric: 'warm ÷ direct', layover: median(L.warm) / directMedian, peer: directMedian, peerName: 'direct GET, s', ratio: median(L.warm) / directMedian, target: '≤ 1.0', met: median(L.warm) / directMedian <= 1.0 },
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
      directRuns: direct,
      loadAverages: loads,
      mirrors: Object.fromEntries(mirrors.map((m) => [m.name, { ...F(m), coldRatios: m === peer ? undefined : ratios(m), ...(C(m) ?? {}) }])),
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
