// Issue 2 benchmark: layover against docker-registry (Distribution 2.8) on the same machine, in
// one run. Run with `npx tsx test/bench/registry.ts [--runs N] [--skip-layover]`.
//   (a) GET of a 256 MiB blob already stored (curl to /dev/null, median of N runs)
//   (b) skopeo push (copy from a local OCI layout) of a 3-layer ~300 MiB image, fresh storage each run
//   (c) peak RSS of each registry process while 16 curl clients pull the 256 MiB blob at once
// Prints a table and one JSON line (`{"bench":"registry",…}`); ratios are layover ÷ docker-registry.
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

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '5' }, 'skip-layover': { type: 'boolean', default: false } } });
const RUNS = Math.max(1, Number(args.runs));

const startLayoverTarget: Starter = async () => {
  const l = await spawnLayover({}, { logLevel: 'warn', compiled: true });
  return { name: 'layover', url: l.url, get pid() { return l.pid; }, close: () => l.close() };
};
const startDockerTarget: Starter = async () => {
  const r = await startDockerRegistry({ logLevel: 'error' });
  return { name: 'docker-registry', url: r.url, pid: r.pid, close: () => r.close() };
};

interface Figures {
  getSeconds?: number;
  pushSeconds?: number;
  peakRssMiB?: number;
  restRssMiB?: number;
  concurrentSeconds?: number;
  error?: string;
}

async function measureGetAndRss(target: Target, blobFile: string, digest: string, figures: Figures, getTimes: number[]): Promise<void> {
  await uploadBlob(target.url, 'bench/blob', digest, { file: blobFile });
  const url = `${target.url}/v2/bench/blob/blobs/${digest}`;
  await curlGet(url, BLOB_SIZE); // warm: page cache and any lazy state
  for (let i = 0; i < RUNS; i++) getTimes.push(await curlGet(url, BLOB_SIZE));
  figures.getSeconds = median(getTimes);

  // RSS at rest before the load, so a high peak can be told apart from memory kept since the upload.
  figures.restRssMiB = rssBytes(target.pid) / MiB;
  const resetWorked = resetPeakRss(target.pid);
  const sampler = sampleRss(target.pid, 10);
  const started = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, () => curlGet(url, BLOB_SIZE)));
  figures.concurrentSeconds = (performance.now() - started) / 1000;
  const sampled = sampler.stop();
  const hwm = resetWorked ? peakRssBytes(target.pid) : 0;
  figures.peakRssMiB = Math.max(sampled, hwm) / MiB;
}

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

function fmt(n: number | undefined, digits = 2): string {
  return n === undefined ? 'n/a' : n.toFixed(digits);
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

async function main(): Promise<void> {
  requireTool('skopeo');
  requireTool('docker-registry');
  const tmp = makeTempDir('layover-bench-');
  const results: Record<Target['name'], Figures> = { layover: {}, 'docker-registry': {} };
  const starters: [Target['name'], Starter][] = [['docker-registry', startDockerTarget]];
  if (!args['skip-layover']) starters.unshift(['layover', startLayoverTarget]);
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

    // (a) and (c): one long-lived process of each.
    for (const [name, start] of starters) {
      let target: Target | undefined;
      try {
        target = await start();
        await measureGetAndRss(target, blobFile, digest, results[name], []);
        console.error(`${name}: GET median ${fmt(results[name].getSeconds, 3)} s, ${CLIENTS} clients ${fmt(results[name].concurrentSeconds)} s, peak RSS ${fmt(results[name].peakRssMiB, 1)} MiB`);
      } catch (err) {
        results[name].error = (err as Error).message.split('\n').slice(0, 3).join(' | ');
        console.error(`${name}: ${results[name].error}`);
      } finally {
        await target?.close();
      }
    }

    // (b): alternate registries so drift in machine load hits both alike.
    const pushes: Record<Target['name'], number[]> = { layover: [], 'docker-registry': [] };
    const pushRuns = Math.min(RUNS, 3);
    for (let i = 0; i < pushRuns; i++) {
      for (const [name, start] of starters) {
        if (results[name].error) continue;
        try {
          pushes[name].push(await measurePush(start, image));
        } catch (err) {
          results[name].error = (err as Error).message.split('\n').slice(0, 3).join(' | ');
          console.error(`${name}: push failed: ${results[name].error}`);
        }
      }
    }
    for (const [name] of starters) if (pushes[name].length) results[name].pushSeconds = median(pushes[name]);

    const l = results.layover;
    const d = results['docker-registry'];
    const rows: [string, number | undefined, number | undefined, number][] = [
      ['GET 256 MiB blob, median s', l.getSeconds, d.getSeconds, 3],
      ['skopeo push 3x100 MiB, median s', l.pushSeconds, d.pushSeconds, 2],
      [`peak RSS, ${CLIENTS} clients, MiB`, l.peakRssMiB, d.peakRssMiB, 1],
      ['RSS at rest before the load, MiB', l.restRssMiB, d.restRssMiB, 1],
      [`${CLIENTS} concurrent GETs, s`, l.concurrentSeconds, d.concurrentSeconds, 2],
    ];
    console.log(`\n${'metric'.padEnd(34)}${'layover'.padStart(10)}${'docker-reg'.padStart(12)}${'ratio'.padStart(8)}`);
    for (const [label, a, b, digits] of rows) {
      console.log(`${label.padEnd(34)}${fmt(a, digits).padStart(10)}${fmt(b, digits).padStart(12)}${fmt(ratio(a, b)).padStart(8)}`);
    }
    if (l.error) console.log(`layover: ${l.error}`);
    if (d.error) console.log(`docker-registry: ${d.error}`);
    console.log(JSON.stringify({
      bench: 'registry',
      runs: RUNS,
      blobMiB: BLOB_SIZE / MiB,
      imageMiB: Number(imageMiB.toFixed(1)),
      clients: CLIENTS,
      layover: l,
      dockerRegistry: d,
      ratio: {
        get: ratio(l.getSeconds, d.getSeconds),
        push: ratio(l.pushSeconds, d.pushSeconds),
        peakRss: ratio(l.peakRssMiB, d.peakRssMiB),
        concurrentGet: ratio(l.concurrentSeconds, d.concurrentSeconds),
      },
      targets: { getRatio: 1, pushRatio: 1, layoverPeakRssMiB: 128 },
    }));
  } finally {
    tmp.cleanup();
  }
}

await main();
