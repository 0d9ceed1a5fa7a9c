// Issue 14 benchmark: layover with storage.driver s3 against docker-registry with its S3 driver,
// both on the same Ceph RGW (test/helpers/ceph-rgw.ts), in one run.
// Run with `npx tsx test/bench/s3.ts [--runs N]`.
//   (a) GET of a 256 MiB blob already stored, streamed through the registry (no redirect),
//       curl to /dev/null, runs alternating between the two, medians
//   (b) skopeo push (copy from a local OCI layout) of a 3-layer 300 MiB image into a fresh
//       bucket, alternating, medians
//   (c) the same GET in redirect mode (307 to a presigned URL, curl -L), for reference
//       Each streamed GET also records the CPU seconds used meanwhile by the registry process,
//       radosgw, ceph-osd and the whole machine (/proc), medians per GET in the table.
//       `--ab NAME=VALUE[,NAME=VALUE]` adds a third party, "layover-B": a layover started with
//       those extra environment variables, alternating with the other two (A/B of a variant).
//   (d) aggregate throughput of 48 concurrent GETs over 3 layover replicas ÷ over 1, on one
//       bucket and one PostgreSQL, with each party's CPU time (s3-replicas.ts); `--only replicas`
//       runs just this part; `--only get` runs just (a)
// Prints a table and one JSON line (`{"bench":"s3",…}`); ratios are layover ÷ docker-registry.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startCephRgw, type CephRgw } from '../helpers/ceph-rgw.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { spawnLayover } from '../helpers/layover.js';
import { makeOciImage } from '../helpers/oci-layout.js';
import { uploadBlob } from '../helpers/registry-client.js';
import { requireTool } from '../helpers/run-tool.js';
import { skopeoCopy } from '../helpers/skopeo.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { median, writeBlobFile } from './measure.js';
import { benchReplicas, machineBusyTicks, ticksOf, TICKS_PER_SECOND, type ReplicaFigures } from './s3-replicas.js';
import { printSummary, spreadOf } from './summary.js';

const MiB = 2 ** 20;
const BLOB_SIZE = 256 * MiB;
const NAMES = ['layover', 'docker-registry'] as const;
type Name = (typeof NAMES)[number];
type Party = Name | 'layover-B';

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '3' }, only: { type: 'string', default: 'all' }, ab: { type: 'string' } } });
const ONLY_REPLICAS = args.only === 'replicas';
const ONLY_GET = args.only === 'get';
const RUNS = Math.max(1, Number(args.runs));
/** The extra environment of "layover-B" (--ab), when there is one. */
const AB_ENV: Record<string, string> | undefined = args.ab
  ? Object.fromEntries(args.ab.split(',').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]))
  : undefined;

interface Target { url: string; pid: number; close(): Promise<void> }

/** CPU seconds used during one GET by the registry process, radosgw, ceph-osd and the whole machine. */
interface GetCpu { registry: number; radosgw: number; osd: number; machine: number }

/** `root`: layover's metadata directory, kept to restart it on the same content (docker-registry keeps all in the bucket). */
async function start(name: Party, rgw: CephRgw, bucket: string, redirect = false, root?: string): Promise<Target> {
  if (name !== 'docker-registry') {
    // spawnLayover passes this process's environment on: layover-B's extra variables go there
    // only while it starts.
    const saved = { ...process.env };
    if (name === 'layover-B') Object.assign(process.env, AB_ENV);
    try {
      const l = await spawnLayover({}, { root, logLevel: 'warn', compiled: true, s3: { ...rgw, bucket, redirect } });
      return { url: l.url, pid: l.pid, close: () => l.close() };
    } finally {
      for (const key of Object.keys(AB_ENV ?? {})) if (!(key in saved)) delete process.env[key];
      Object.assign(process.env, saved);
    }
  }
  const r = await startDockerRegistry({ logLevel: 'error', s3: { ...rgw, bucket, redirect } });
  return { url: r.url, pid: r.pid, close: () => r.close() };
}

/** `get()` timed, with the CPU each party used meanwhile. */
async function measuredGet(get: () => Promise<number>, registryPid: number, rgw: CephRgw): Promise<{ seconds: number; cpu: GetCpu }> {
  const [, osdPid, rgwPid] = rgw.pids as [number, number, number];
  const before = { r: ticksOf(registryPid), g: ticksOf(rgwPid), o: ticksOf(osdPid), m: machineBusyTicks() };
  const seconds = await get();
  const s = (after: number, from: number) => (after - from) / TICKS_PER_SECOND;
  return { seconds, cpu: { registry: s(ticksOf(registryPid), before.r), radosgw: s(ticksOf(rgwPid), before.g), osd: s(ticksOf(osdPid), before.o), machine: s(machineBusyTicks(), before.m) } };
}

function medianCpu(xs: GetCpu[]): GetCpu | undefined {
  if (!xs.length) return undefined;
  const m = (k: keyof GetCpu) => Number(median(xs.map((x) => x[k])).toFixed(2));
  return { registry: m('registry'), radosgw: m('radosgw'), osd: m('osd'), machine: m('machine') };
}

function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

/** One curl GET to /dev/null (following redirects when asked); seconds, after checking status and size. */
function curlGet(url: string, expectedSize: number, follow = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(requireTool('curl'), ['-sS', ...(follow ? ['-L'] : []), '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.once('close', () => {
      const [code, size, seconds] = out.trim().split(' ');
      if (code !== '200' || Number(size) !== expectedSize) reject(new Error(`GET ${url}: HTTP ${code}, ${size} bytes ${err}`));
      else resolve(Number(seconds));
    });
  });
}

function fmt(n: number | undefined, digits = 2): string {
  return n === undefined ? 'n/a' : n.toFixed(digits);
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

async function main(): Promise<void> {
  requireTool('skopeo');
  requireTool('docker-registry');
  const tmp = makeTempDir('layover-bench-s3-');
  // Objects live in the OSD's RAM: room for both registries' copies of everything.
  const rgw = await startCephRgw({ memoryBytes: 8 * 2 ** 30 });
  const get: Record<Party, number[]> = { layover: [], 'docker-registry': [], 'layover-B': [] };
  const getCpu: Record<Party, GetCpu[]> = { layover: [], 'docker-registry': [], 'layover-B': [] };
  const getRedirect: Record<Name, number[]> = { layover: [], 'docker-registry': [] };
  const push: Record<Name, number[]> = { layover: [], 'docker-registry': [] };
  const loads: string[] = [];
  let replicas: ReplicaFigures | undefined;
  try {
    if (ONLY_REPLICAS) {
      replicas = await benchReplicas(rgw, tmp.path, RUNS);
      printReplicas(replicas);
      return;
    }
    const t0 = performance.now();
    const blobFile = path.join(tmp.path, 'blob.bin');
    const [digest, image] = await Promise.all([
      writeBlobFile(blobFile, 'bench-s3-blob', BLOB_SIZE),
      makeOciImage(path.join(tmp.path, 'image'), { layers: [100 * MiB, 100 * MiB, 100 * MiB], seed: 'bench-s3-image', gzipLevel: 0 }),
    ]);
    const imageMiB = image.layers.reduce((n, l) => n + l.size, 0) / MiB;
    console.error(`set-up: Ceph RGW, 256 MiB blob and ${imageMiB.toFixed(0)} MiB image in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    // (a) and (c): each registry on its own bucket with the blob pushed once; both processes
    // stay up and the GETs alternate, so drift in machine load hits both alike.
    const buckets: Record<Party, string> = {
      layover: await rgw.createBucket('bench-layover'),
      'docker-registry': await rgw.createBucket('bench-docker'),
      'layover-B': await rgw.createBucket('bench-layover-b'),
    };
    for (const redirect of ONLY_GET ? [false] : [false, true]) {
      const parties: Party[] = AB_ENV && !redirect ? ['layover', 'docker-registry', 'layover-B'] : [...NAMES];
      const targets = {} as Record<Party, Target>;
      try {
        for (const name of parties) {
          targets[name] = await start(name, rgw, buckets[name], redirect, path.join(tmp.path, `${name}-root`));
          if (!redirect) await uploadBlob(targets[name].url, 'bench/blob', digest, { file: blobFile });
        }
        for (const name of parties) await curlGet(`${targets[name].url}/v2/bench/blob/blobs/${digest}`, BLOB_SIZE, redirect); // warm
        for (let i = 0; i < RUNS; i++) {
          loads.push(loadAverage());
          // Each party goes first, second, … in turn.
          const order = parties.map((_, j) => parties[(i + j) % parties.length]!);
          for (const name of i % 2 ? order.reverse() : order) {
            const url = `${targets[name].url}/v2/bench/blob/blobs/${digest}`;
            if (redirect) {
              const seconds = await curlGet(url, BLOB_SIZE, true);
              getRedirect[name as Name].push(seconds);
              console.error(`${name}: GET (redirect) ${seconds.toFixed(3)} s`);
              continue;
            }
            const { seconds, cpu } = await measuredGet(() => curlGet(url, BLOB_SIZE), targets[name].pid, rgw);
            get[name].push(seconds);
            getCpu[name].push(cpu);
            console.error(`${name}: GET ${seconds.toFixed(3)} s, CPU s registry ${cpu.registry.toFixed(2)} radosgw ${cpu.radosgw.toFixed(2)} osd ${cpu.osd.toFixed(2)} machine ${cpu.machine.toFixed(2)} (load ${loadAverage()})`);
          }
        }
      } finally {
        for (const name of parties) await targets[name]?.close();
      }
    }
    if (ONLY_GET) {
      printGet(get, getCpu, loads);
      return;
    }

    // (b): a fresh bucket and process per push, alternating.
    for (let i = 0; i < RUNS; i++) {
      for (const name of i % 2 ? [...NAMES].reverse() : NAMES) {
        const target = await start(name, rgw, await rgw.createBucket(`push-${name === 'layover' ? 'l' : 'd'}`));
        try {
          const started = performance.now();
          await skopeoCopy(image.ref, `docker://${new URL(target.url).host}/bench/image:1`);
          const seconds = (performance.now() - started) / 1000;
          push[name].push(seconds);
          console.error(`${name}: push ${seconds.toFixed(2)} s`);
        } finally {
          await target.close();
        }
      }
    }

    replicas = await benchReplicas(rgw, tmp.path, RUNS);

    const m = (xs: number[]) => (xs.length ? median(xs) : undefined);
    const l = { getSeconds: m(get.layover), pushSeconds: m(push.layover), redirectGetSeconds: m(getRedirect.layover) };
    const d = { getSeconds: m(get['docker-registry']), pushSeconds: m(push['docker-registry']), redirectGetSeconds: m(getRedirect['docker-registry']) };
    const rows: [string, number | undefined, number | undefined, number][] = [
      ['GET 256 MiB blob via S3, median s', l.getSeconds, d.getSeconds, 3],
      ['skopeo push 3x100 MiB to S3, median s', l.pushSeconds, d.pushSeconds, 2],
      ['GET 256 MiB, redirect mode (-L), s', l.redirectGetSeconds, d.redirectGetSeconds, 3],
    ];
    console.log(`\n${'metric'.padEnd(38)}${'layover'.padStart(10)}${'docker-reg'.padStart(12)}${'ratio'.padStart(8)}`);
    for (const [label, a, b, digits] of rows) console.log(`${label.padEnd(38)}${fmt(a, digits).padStart(10)}${fmt(b, digits).padStart(12)}${fmt(ratio(a, b)).padStart(8)}`);
    printGet(get, getCpu, loads);
    printReplicas(replicas);
    printSummary({
      bench: 's3',
      peer: 'docker-registry',
      note: `${RUNS} runs, alternating`,
      rows: [
        { metric: 'GET 256 MiB blob via S3, median', unit: 's', layover: l.getSeconds, spread: spreadOf(get.layover), peer: d.getSeconds, target: '≤ 1.0', met: (l.getSeconds ?? Infinity) <= (d.getSeconds ?? 0) },
        { metric: 'skopeo push 3x100 MiB to S3, median', unit: 's', digits: 2, layover: l.pushSeconds, spread: spreadOf(push.layover, 2), peer: d.pushSeconds, target: '≤ 1.0', met: (l.pushSeconds ?? Infinity) <= (d.pushSeconds ?? 0) },
        { metric: 'GET 256 MiB, redirect mode (-L)', unit: 's', layover: l.redirectGetSeconds, spread: spreadOf(getRedirect.layover), peer: d.redirectGetSeconds },
      ],
    });
    console.log(JSON.stringify({
      bench: 's3',
      runs: RUNS,
      blobMiB: BLOB_SIZE / MiB,
      imageMiB: Number(imageMiB.toFixed(1)),
      layover: l,
      dockerRegistry: d,
      getCpuPerGet: { layover: medianCpu(getCpu.layover), dockerRegistry: medianCpu(getCpu['docker-registry']) },
      loads,
      samples: { get, push, getRedirect, getCpu },
      ratio: { get: ratio(l.getSeconds, d.getSeconds), push: ratio(l.pushSeconds, d.pushSeconds), redirectGet: ratio(l.redirectGetSeconds, d.redirectGetSeconds) },
      targets: { getRatio: 1, pushRatio: 1 },
      replicas,
    }));
  } finally {
    await rgw.close();
    tmp.cleanup();
  }
}

/** Part (a) per party: median seconds, spread, ratio to docker-registry and median CPU seconds per GET. */
function printGet(get: Record<Party, number[]>, cpu: Record<Party, GetCpu[]>, loads: string[]): void {
  const peer = get['docker-registry'].length ? median(get['docker-registry']) : undefined;
  console.log(`\nstreamed GET of 256 MiB (load averages at each round: ${loads.join(' | ')})`);
  console.log(`${'party'.padEnd(17)}${'median s'.padStart(9)}${'spread'.padStart(14)}${'ratio'.padStart(7)}   CPU s per GET: registry / radosgw / osd / machine`);
  for (const name of ['layover', 'layover-B', 'docker-registry'] as const) {
    if (!get[name].length) continue;
    const m = median(get[name]);
    const c = medianCpu(cpu[name])!;
    console.log(`${name.padEnd(17)}${m.toFixed(3).padStart(9)}${(spreadOf(get[name]) ?? '').padStart(14)}${fmt(ratio(m, peer)).padStart(7)}   ${c.registry.toFixed(2)} / ${c.radosgw.toFixed(2)} / ${c.osd.toFixed(2)} / ${c.machine.toFixed(2)}`);
  }
  if (ONLY_GET) console.log(JSON.stringify({ bench: 's3-get', runs: RUNS, ab: AB_ENV, loads, samples: get, cpu }));
}

function printReplicas(r: ReplicaFigures): void {
  console.log(`\n${r.clients} concurrent GETs of ${r.blobMiB} MiB blobs, aggregate: 1 replica ${r.one.mibPerSecond.toFixed(0)} MiB/s, 3 replicas ${r.three.mibPerSecond.toFixed(0)} MiB/s, ratio ${r.ratio.toFixed(2)}`);
  console.log('CPU seconds per round (layover processes / radosgw / ceph-osd / postgres / whole machine):');
  for (const x of r.rounds) console.log(`  ${x.replicas} replica(s) ${x.seconds.toFixed(2)} s: ${x.cpu.layover} / ${x.cpu.radosgw} / ${x.cpu.osd} / ${x.cpu.postgres} / ${x.cpu.machine}`);
  if (ONLY_REPLICAS) console.log(JSON.stringify({ bench: 's3-replicas', ...r }));
}

await main();
