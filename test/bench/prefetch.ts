// Issue 13 benchmark: prefetch on admission. Run with
// `npx tsx test/bench/prefetch.ts [--runs N] [--rate MiB_PER_S] [--layers N]` (about two minutes).
// On a busy machine the pull is bound by CPU (digests, gunzip, unpack) rather than by the link,
// which hides what prefetch saves: a slower --rate shows it.
//
// A docker-registry upstream holds a ~300 MiB image (N layers of random, incompressible bytes),
// behind a relay that paces every response body to --rate MiB/s (default 5, 40 Mbit/s per
// connection, as CDNs pace one connection). For each run a fresh layover registry (cold
// cache) and a webhook in front of it admit a Pod using the image; one second after the answer,
// containerd (`ctr images pull`, the puller kubelet uses, through layover) pulls it, fetching,
// verifying and unpacking every layer. Measured: the pull's own time and admission → pulled, with
// webhook.prefetch off and on, alternating, median of --runs. Prints a table and a JSON line.
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { defaultConfig } from '../../src/config/resolve.js';
import { createLogger } from '../../src/log.js';
import { startWebhook } from '../../src/webhook/server.js';
import { admissionReview, apiserverDefaults } from '../fixtures/pods/admission.js';
import { startContainerd } from '../helpers/containerd.js';
import { startCountingProxy } from '../helpers/counting-proxy.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { startLayover } from '../helpers/layover.js';
import { makeOciImage } from '../helpers/oci-layout.js';
import { skopeoCopy } from '../helpers/skopeo.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { median } from './measure.js';
import { printSummary, spreadOf } from './summary.js';

const MiB = 2 ** 20;
const { values } = parseArgs({ options: { runs: { type: 'string', default: '2' }, rate: { type: 'string', default: '5' }, layers: { type: 'string', default: '6' } } });
const RUNS = Number(values.runs);
const RATE = Number(values.rate) * MiB;
const LAYERS = Number(values.layers);
const TOTAL = 300 * MiB;

const tmp = makeTempDir('layover-bench-prefetch-');
const logger = createLogger('silent');
const insecure = new Agent({ connect: { rejectUnauthorized: false } });

async function admit(webhookUrl: string, image: string): Promise<string> {
  const pod = apiserverDefaults({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'bench' }, spec: { containers: [{ name: 'app', image }] } }, 'bench');
  const res = await request(`${webhookUrl}/mutate`, { method: 'POST', dispatcher: insecure, headers: { 'content-type': 'application/json' }, body: JSON.stringify(admissionReview(pod)) });
  const body = (await res.body.json()) as { response: { patch?: string; warnings?: string[] } };
  const ops = JSON.parse(Buffer.from(body.response.patch ?? 'W10=', 'base64').toString()) as Array<{ path: string; value: string }>;
  const rewritten = ops.find((op) => op.path === '/spec/containers/0/image')?.value;
  if (!rewritten) throw new Error(`not rewritten: ${JSON.stringify(body.response)}`);
  return rewritten;
}

async function main(): Promise<void> {
  const upstream = await startDockerRegistry();
  const relay = await startCountingProxy(upstream.url);
  process.stderr.write(`building a ${TOTAL / MiB} MiB image in ${LAYERS} layers…\n`);
  const image = await makeOciImage(`${tmp.path}/image`, { layers: Array.from({ length: LAYERS }, () => Math.floor(TOTAL / LAYERS)), tag: 'v1', seed: 'bench-prefetch' });
  await skopeoCopy(image.ref, `docker://${upstream.host}/bench/app:v1`);
  const imageBytes = image.layers.reduce((sum, l) => sum + l.fileSize, 0);
  relay.throttle(RATE, (r) => r.method === 'GET' && r.path.includes('/blobs/'));

  const results: Record<'off' | 'on', { pull: number[]; total: number[] }> = { off: { pull: [], total: [] }, on: { pull: [], total: [] } };
  for (let run = 0; run < RUNS; run++) {
    for (const mode of ['off', 'on'] as const) {
      const layover = await startLayover({ upstreams: [{ prefix: 'up', url: relay.url }] });
      const containerd = await startContainerd();
      const webhook = await startWebhook(defaultConfig({
        auth: { enabled: false },
        upstreams: [{ prefix: 'up', url: relay.url }],
        webhook: { listen: '127.0.0.1:0', selfSigned: true, healthURL: `${layover.url}/v2/`, prefetch: mode === 'on' },
      }), { logger });
      try {
        const blobGetsBefore = relay.count('GET', /\/blobs\//);
        const admitted = performance.now();
        const rewritten = await admit(webhook.url, `${relay.host}/bench/app:v1`);
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        const early = relay.count('GET', /\/blobs\//) - blobGetsBefore;
        // Nodes pull 127.0.0.1:<node port>/…; here containerd reaches the registry directly.
        const ref = rewritten.replace(/^127\.0\.0\.1:\d+\//, `${layover.host}/`);
        const started = performance.now();
        await containerd.pullWithCtr(ref, { plainHttp: true });
        const done = performance.now();
        results[mode].pull.push((done - started) / 1000);
        results[mode].total.push((done - admitted) / 1000);
        process.stderr.write(`run ${run + 1} prefetch ${mode}: pull ${((done - started) / 1000).toFixed(2)} s, admission → pulled ${((done - admitted) / 1000).toFixed(2)} s (upstream blob GETs before the pull: ${early})\n`);
      } finally {
        await webhook.close();
        await containerd.close();
        await layover.close();
      }
    }
  }
  await relay.close();
  await upstream.close();
  await insecure.close();
  tmp.cleanup();

  const row = (mode: 'off' | 'on') => ({ pull: median(results[mode].pull), total: median(results[mode].total) });
  const off = row('off');
  const on = row('on');
  const fmt = (s: number) => `${s.toFixed(2)} s`.padStart(10);
  process.stdout.write([
    `prefetch: ${(imageBytes / MiB).toFixed(0)} MiB image in ${LAYERS} layers, upstream paced to ${(RATE / MiB).toFixed(1)} MiB/s per response, ctr pull 1 s after admission, median of ${RUNS}`,
    '| prefetch | ctr pull | admission → pulled |',
    '| --- | ---: | ---: |',
    `| off | ${fmt(off.pull)} | ${fmt(off.total)} |`,
    `| on | ${fmt(on.pull)} | ${fmt(on.total)} |`,
    `| on / off | ${(on.pull / off.pull).toFixed(2).padStart(8)} | ${(on.total / off.total).toFixed(2).padStart(8)} |`,
    JSON.stringify({ bench: 'prefetch', imageBytes, layers: LAYERS, bytesPerSecond: RATE, runs: RUNS, off, on, ratioPull: on.pull / off.pull, ratioTotal: on.total / off.total }),
    '',
  ].join('\n'));
  printSummary({
    bench: 'prefetch',
    peer: 'prefetch off',
    note: `median of ${RUNS}; ratio = on ÷ off`,
    rows: [
      { metric: 'ctr pull with prefetch on, median', unit: 's', digits: 2, layover: on.pull, spread: spreadOf(results.on.pull, 2), peer: off.pull, target: '< 1.0', met: on.pull < off.pull },
      { metric: 'admission → pulled with prefetch on, median', unit: 's', digits: 2, layover: on.total, spread: spreadOf(results.on.total, 2), peer: off.total, target: '< 1.0', met: on.total < off.total },
    ],
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  tmp.cleanup();
  process.exit(1);
});
