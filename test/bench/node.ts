// Issue 13 benchmark: what the node role (src/node/) adds. Run with
// `npx tsx test/bench/node.ts [--runs N] [--clients N]` (not part of vitest; ~1 min).
//   (a) the node role's RSS at rest (started, then after the load) and its peak under load:
//       N curl clients pulling the 256 MiB blob through it at once (target < 48 MiB)
//   (b) a GET of a 256 MiB stored blob through the node role vs straight from the registry
//       (curl to /dev/null), runs alternating so that drift in machine load hits both alike;
//       medians, ratio target <= 1.05
// Both processes run compiled, with the container image's node flags and malloc settings (and
// the node role with the DaemonSet's heap limit).
// Prints a table and one JSON line (`{"bench":"node",…}`).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';
import { spawnLayover } from '../helpers/layover.js';
import { spawnNodeRole } from '../helpers/node-role.js';
import { peakRssBytes, resetPeakRss, rssBytes, sampleRss } from '../helpers/process-stats.js';
import { uploadBlob } from '../helpers/registry-client.js';
import { freePort } from '../helpers/free-port.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { waitForHttp } from '../helpers/wait-for.js';
import { curlGet, median, writeBlobFile } from './measure.js';
import { printSummary, spreadOf } from './summary.js';

const MiB = 2 ** 20;
/** The V8 flags of the DaemonSet's command (between `node` and the entry point). */
const NODE_DAEMONSET_FLAGS = (() => {
  const daemonSet = parse(readFileSync(new URL('../../deploy/base/node-daemonset.yaml', import.meta.url), 'utf8')) as { spec: { template: { spec: { containers: { command: string[] }[] } } } };
  return daemonSet.spec.template.spec.containers[0]!.command.filter((part) => part.startsWith('--'));
})();
const BLOB_SIZE = 256 * MiB;
const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '7' }, clients: { type: 'string', default: '8' }, 'node-flags': { type: 'string' } } });
const RUNS = Math.max(1, Number(args.runs));
const CLIENTS = Math.max(1, Number(args.clients));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** socat relaying a loopback port to the registry, or undefined when socat is not installed. */
async function startSocatRelay(registryUrl: string): Promise<{ url: string; close(): void } | undefined> {
  const socat = ['/usr/bin/socat', '/usr/local/bin/socat'].find((p) => existsSync(p));
  if (!socat) return undefined;
  const port = await freePort();
  const target = new URL(registryUrl);
  const child = spawn(socat, ['-b', '262144', `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `TCP:${target.hostname}:${target.port}`], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/v2/`, 10_000, () => child.exitCode === null);
  return { url, close: () => child.kill('SIGTERM') };
}

async function main(): Promise<void> {
  const tmp = makeTempDir('layover-bench-node-');
  const registry = await spawnLayover({}, { logLevel: 'warn', compiled: true });
  // The flags deploy/base/node-daemonset.yaml sets in NODE_OPTIONS, unless --node-flags tries others.
  const nodeFlags = args['node-flags']?.split(' ').filter(Boolean) ?? NODE_DAEMONSET_FLAGS;
  const node = await spawnNodeRole(registry.url, { compiled: true, nodeFlags });
  try {
    const blobFile = path.join(tmp.path, 'blob.bin');
    const digest = await writeBlobFile(blobFile, 'bench-node-blob', BLOB_SIZE);
    await uploadBlob(registry.url, 'bench/blob', digest, { file: blobFile });
    const blobPath = `/v2/bench/blob/blobs/${digest}`;

    await sleep(1_000);
    const restStartMiB = rssBytes(node.pid) / MiB;

    // The floor of any user-space relay on this machine: socat, a C program copying between two
    // sockets with 256 KiB buffers, beside the node role in the same runs.
    const relay = await startSocatRelay(registry.url);

    // Warm every path (page cache, connections), then alternate.
    await curlGet(`${registry.url}${blobPath}`, BLOB_SIZE);
    await curlGet(`${node.url}${blobPath}`, BLOB_SIZE);
    if (relay) await curlGet(`${relay.url}${blobPath}`, BLOB_SIZE);
    const direct: number[] = [];
    const through: number[] = [];
    const viaSocat: number[] = [];
    const resetWorked = resetPeakRss(node.pid);
    const sampler = sampleRss(node.pid, 10);
    for (let i = 0; i < RUNS; i++) {
      // Which one goes first alternates too, so neither always follows the other's cache effects.
      const order = [
        async () => direct.push(await curlGet(`${registry.url}${blobPath}`, BLOB_SIZE)),
        async () => through.push(await curlGet(`${node.url}${blobPath}`, BLOB_SIZE)),
        ...(relay ? [async () => viaSocat.push(await curlGet(`${relay.url}${blobPath}`, BLOB_SIZE))] : []),
      ];
      if (i % 2 === 1) order.reverse();
      for (const run of order) await run();
    }
    const singlePeakMiB = Math.max(sampler.stop(), resetWorked ? peakRssBytes(node.pid) : 0) / MiB;

    resetPeakRss(node.pid);
    const loadSampler = sampleRss(node.pid, 10);
    const t0 = performance.now();
    await Promise.all(Array.from({ length: CLIENTS }, () => curlGet(`${node.url}${blobPath}`, BLOB_SIZE)));
    const concurrentSeconds = (performance.now() - t0) / 1000;
    const loadPeakMiB = Math.max(loadSampler.stop(), resetWorked ? peakRssBytes(node.pid) : 0) / MiB;
    await sleep(2_000);
    const restAfterMiB = rssBytes(node.pid) / MiB;

    relay?.close();
    const directMedian = median(direct);
    const throughMedian = median(through);
    const ratio = throughMedian / directMedian;
    const socatMedian = relay ? median(viaSocat) : undefined;
    const socatRatio = socatMedian === undefined ? undefined : socatMedian / directMedian;
    const rows: [string, string, string][] = [
      ['node role RSS at rest, started', `${restStartMiB.toFixed(1)} MiB`, restStartMiB < 48 ? 'ok (< 48 MiB)' : 'OVER 48 MiB'],
      ['node role peak RSS, 1 GET at a time', `${singlePeakMiB.toFixed(1)} MiB`, singlePeakMiB < 48 ? 'ok (< 48 MiB)' : 'OVER 48 MiB'],
      [`node role peak RSS, ${CLIENTS} GETs at once`, `${loadPeakMiB.toFixed(1)} MiB`, loadPeakMiB < 48 ? 'ok (< 48 MiB)' : 'OVER 48 MiB'],
      ['node role RSS at rest, after the load', `${restAfterMiB.toFixed(1)} MiB`, restAfterMiB < 48 ? 'ok (< 48 MiB)' : 'OVER 48 MiB'],
      [`256 MiB GET direct, median of ${RUNS}`, `${directMedian.toFixed(3)} s`, `runs ${direct.map((s) => s.toFixed(3)).join(' ')}`],
      [`256 MiB GET through node role, median of ${RUNS}`, `${throughMedian.toFixed(3)} s`, `runs ${through.map((s) => s.toFixed(3)).join(' ')}`],
      ...(socatMedian === undefined ? [['256 MiB GET through socat', 'skipped', 'socat is not installed (apt-get install socat)'] as [string, string, string]]
        : [[`256 MiB GET through socat, median of ${RUNS}`, `${socatMedian.toFixed(3)} s`, `runs ${viaSocat.map((s) => s.toFixed(3)).join(' ')}`] as [string, string, string]]),
      [`${CLIENTS} x 256 MiB through node role at once`, `${concurrentSeconds.toFixed(2)} s`, ''],
      ['GET ratio node / direct', `${ratio.toFixed(3)}x`, ratio <= 1.05 ? 'ok (<= 1.05)' : 'OVER 1.05'],
      ...(socatRatio === undefined ? [] : [
        ['GET ratio socat / direct (the relay floor)', `${socatRatio.toFixed(3)}x`, ''] as [string, string, string],
        ['GET ratio node / socat', `${(throughMedian / socatMedian!).toFixed(3)}x`, ''] as [string, string, string],
      ]),
    ];
    const width = Math.max(...rows.map((r) => r[0].length));
    console.log(`\nnode role (issue 13)\n${rows.map(([a, b, c]) => `  ${a.padEnd(width)}  ${b.padStart(11)}  ${c}`).join('\n')}`);
    printSummary({
      bench: 'node',
      peer: 'direct GET',
      note: `${RUNS} GETs each, alternating`,
      rows: [
        { metric: 'GET 256 MiB through the node role, median', unit: 's', layover: throughMedian, spread: spreadOf(through), peer: directMedian, target: '≤ 1.05', met: ratio <= 1.05 },
        ...(socatMedian === undefined ? [] : [{ metric: 'GET 256 MiB through the node role vs socat', unit: 's', layover: throughMedian, peer: socatMedian, peerName: 'socat' }]),
        { metric: 'node role RSS at rest, started', unit: 'MiB', digits: 1, layover: restStartMiB, target: '< 48 MiB', met: restStartMiB < 48 },
        { metric: `node role peak RSS, ${CLIENTS} GETs at once`, unit: 'MiB', digits: 1, layover: loadPeakMiB, target: '< 48 MiB', met: loadPeakMiB < 48 },
        { metric: 'node role RSS at rest, after the load', unit: 'MiB', digits: 1, layover: restAfterMiB, target: '< 48 MiB', met: restAfterMiB < 48 },
      ],
    });
    console.log(JSON.stringify({ bench: 'node', restStartMiB, singlePeakMiB, loadPeakMiB, restAfterMiB, directMedian, throughMedian, ratio, socatMedian, socatRatio, concurrentSeconds, runs: RUNS, clients: CLIENTS }));
  } finally {
    await node.close();
    await registry.close();
    tmp.cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
