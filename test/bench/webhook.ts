// AdmissionReviews per second and latency at 1,000 reviews/s, beside a bare fastify HTTPS route
// that returns a fixed body, on this machine. `npx tsx test/bench/webhook.ts [--paced-runs N]`
// (about 90 s). The servers run in a child process so autocannon does not share their event
// loop. The paced runs (1,000 reviews/s, 10 s) take turns: webhook, bare, bare, webhook, …; the
// target is p99 ≤ 5 ms in every one of them. Then the webhook role's resident memory: `layover
// serve` as the image runs it, the webhook alone with file TLS, at rest after it started.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { defaultConfig } from '../../src/config/resolve.js';
import { createLogger } from '../../src/log.js';
import { startWebhook } from '../../src/webhook/server.js';
import { generateCertificate } from '../../src/webhook/selfsigned.js';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { admissionReview, apiserverDefaults, loadPod } from '../fixtures/pods/admission.js';
import { compiledEntry, IMAGE_ENV, IMAGE_NODE_FLAGS } from '../helpers/layover.js';
import { freePort } from '../helpers/free-port.js';
import { rssBytes } from '../helpers/process-stats.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { median } from './measure.js';
import { printSummary, spreadOf } from './summary.js';

// Not strict: run.ts passes every benchmark the same arguments.
const { values: args } = parseArgs({ options: { 'paced-runs': { type: 'string', default: '3' }, serve: { type: 'boolean', default: false } }, strict: false });
const PACED_RUNS = Math.max(1, Number(args['paced-runs']) || 3);

interface Histogram { p50: number; p99: number; average: number; max: number }
interface Result { requests: { average: number; total: number }; latency: Histogram; '2xx': number; non2xx: number; errors: number; timeouts: number }
interface Options { url: string; method: 'POST'; headers: Record<string, string>; body: string; connections: number; duration: number; overallRate?: number; servername?: string }
const autocannon = createRequire(import.meta.url)('autocannon') as (opts: Options) => Promise<Result>;

const REVIEW = JSON.stringify(admissionReview(apiserverDefaults(loadPod('multi.json'), 'team-a')));

async function serve(): Promise<void> {
  const tmp = makeTempDir('layover-bench-webhook-');
  const pair = await generateCertificate(['layover-webhook.layover.svc'], ['127.0.0.1']);
  writeFileSync(path.join(tmp.path, 'tls.crt'), pair.cert);
  writeFileSync(path.join(tmp.path, 'tls.key'), pair.key);
  const config = defaultConfig({
    registry: { publicHost: 'localhost:30500' },
    auth: { enabled: true },
    upstreams: [{ prefix: 'docker.io', url: 'https://registry-1.docker.io' }, { prefix: 'quay.io', url: 'https://quay.io' }],
    webhook: { listen: '127.0.0.1:0', tls: { cert: path.join(tmp.path, 'tls.crt'), key: path.join(tmp.path, 'tls.key') } },
  });
  const health = { healthy: () => true, refresh: async () => true, close: async () => {} };
  // Every image resolves: this measures the review itself (a real check is cached per image anyway).
  const webhook = await startWebhook(config, { logger: createLogger('warn'), health, resolver: { check: async () => ({ ok: true }), close: async () => {} } });

  const fixed = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'x', allowed: true } });
  const bare = Fastify({ https: { cert: pair.cert, key: pair.key }, bodyLimit: 4 * 1024 * 1024 });
  bare.post('/mutate', async (_req, reply) => reply.type('application/json').send(fixed));
  const bareUrl = (await bare.listen({ host: '127.0.0.1', port: 0 })).replace(/^http:/, 'https:');
  process.stdout.write(`${JSON.stringify({ webhook: webhook.url, bare: bareUrl })}\n`);
  process.stdin.resume();
  await once(process.stdin, 'end');
  await webhook.close();
  await bare.close();
  tmp.cleanup();
}

async function measure(): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--serve'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  const urls = JSON.parse(line) as { webhook: string; bare: string };

  // One real answer first: the benchmark must measure reviews that actually rewrite.
  const check = await fetchOnce(urls.webhook);
  if (!check.includes('"patchType":"JSONPatch"')) throw new Error(`webhook did not patch: ${check}`);

  const run = (url: string, extra: Partial<Options>) => autocannon({
    url: `${url}/mutate`, method: 'POST', headers: { 'content-type': 'application/json' }, body: REVIEW,
    connections: 8, duration: 8, servername: 'layover-webhook.layover.svc', ...extra,
  });
  const rows: Array<Record<string, string | number>> = [];
  const record = (name: string, mode: string, r: Result) => {
    if (r.non2xx || r.errors || r.timeouts) throw new Error(`${name} ${mode}: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
    rows.push({ target: name, mode, 'req/s': Math.round(r.requests.average), 'p50 ms': r.latency.p50, 'p99 ms': r.latency.p99, 'max ms': r.latency.max, requests: r.requests.total });
  };
  await run(urls.webhook, { duration: 2 }); // warm-up: JIT, TLS session setup
  await run(urls.bare, { duration: 2 });
  for (const [name, url] of [['webhook /mutate', urls.webhook], ['bare fastify', urls.bare]] as const) {
    record(name, 'max throughput', await run(url, {}));
  }
  const paced: Record<'webhook' | 'bare', number[]> = { webhook: [], bare: [] };
  const targets = [['webhook', 'webhook /mutate', urls.webhook], ['bare', 'bare fastify', urls.bare]] as const;
  for (let i = 0; i < PACED_RUNS; i++) {
    for (const [key, name, url] of i % 2 ? [...targets].reverse() : targets) {
      const r = await run(url, { overallRate: 1000, duration: 10, connections: 10 });
      record(name, `1,000 req/s #${i + 1}`, r);
      paced[key].push(r.latency.p99);
    }
  }
  child.stdin!.end();
  await once(child, 'exit');
  const restMiB = await webhookRoleRestMiB();

  console.log(`AdmissionReview body: ${REVIEW.length} bytes (an apiserver-defaulted Pod with an init container); node ${process.version}, ${(await import('node:os')).cpus().length} cores`);
  console.table(rows);
  const max = (target: string) => Number(rows.find((r) => r.target === target && r.mode === 'max throughput')?.['req/s']);
  const worst = Math.max(...paced.webhook);
  printSummary({
    bench: 'webhook',
    peer: 'bare fastify HTTPS',
    note: `${PACED_RUNS} paced runs each, alternating; shared machine (load ${(await import('node:os')).loadavg()[0]!.toFixed(1)})`,
    rows: [
      { metric: 'reviews/s, max throughput', digits: 0, layover: max('webhook /mutate'), peer: max('bare fastify'), target: '≥ 5,000/s', met: max('webhook /mutate') >= 5000 },
      { metric: 'p99 at 1,000/s, median of runs', unit: 'ms', digits: 1, layover: median(paced.webhook), spread: spreadOf(paced.webhook, 1), peer: median(paced.bare) },
      { metric: 'p99 at 1,000/s, worst run', unit: 'ms', digits: 1, layover: worst, peer: Math.max(...paced.bare), target: `≤ 5 ms in ${PACED_RUNS} of ${PACED_RUNS}`, met: worst <= 5 },
      { metric: 'webhook role RSS at rest, file TLS', unit: 'MiB', digits: 1, layover: restMiB, target: '≤ 70 MiB', met: restMiB <= 70 },
    ],
  });
}

/** `layover serve` (compiled, as the image runs it) with only the webhook role and file TLS: RSS at rest. */
async function webhookRoleRestMiB(): Promise<number> {
  const tmp = makeTempDir('layover-bench-webhook-role-');
  try {
    const pair = await generateCertificate(['layover-webhook.layover.svc'], ['127.0.0.1']);
    writeFileSync(path.join(tmp.path, 'tls.crt'), pair.cert);
    writeFileSync(path.join(tmp.path, 'tls.key'), pair.key);
    const port = await freePort();
    const configFile = path.join(tmp.path, 'layover.yaml');
    writeFileSync(configFile, stringify({
      registry: { enabled: false, publicHost: 'localhost:30500' },
      log: { level: 'warn' },
      webhook: { enabled: true, listen: `127.0.0.1:${port}`, tls: { cert: path.join(tmp.path, 'tls.crt'), key: path.join(tmp.path, 'tls.key') } },
    }));
    const child = spawn(process.execPath, [...IMAGE_NODE_FLAGS, await compiledEntry(), 'serve', '--config', configFile], {
      cwd: tmp.path, stdio: 'ignore', env: { ...process.env, LAYOVER_CONFIG: undefined, NODE_OPTIONS: undefined, KUBERNETES_SERVICE_HOST: undefined, KUBECONFIG: undefined, ...IMAGE_ENV },
    });
    try {
      await waitFor(async () => (await fetchHealth(port)) === 200, 30_000);
      await new Promise((r) => setTimeout(r, 3000));
      return rssBytes(child.pid!) / 2 ** 20;
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  } finally {
    tmp.cleanup();
  }
}

async function fetchHealth(port: number): Promise<number> {
  const { Agent, request } = await import('undici');
  const agent = new Agent({ connect: { rejectUnauthorized: false } });
  try {
    return (await request(`https://127.0.0.1:${port}/healthz`, { dispatcher: agent })).statusCode;
  } catch {
    return 0;
  } finally {
    await agent.close();
  }
}

async function fetchOnce(url: string): Promise<string> {
  const { Agent, request } = await import('undici');
  const agent = new Agent({ connect: { rejectUnauthorized: false } });
  const res = await request(`${url}/mutate`, { method: 'POST', body: REVIEW, headers: { 'content-type': 'application/json' }, dispatcher: agent });
  const text = await res.body.text();
  await agent.close();
  return text;
}

if (args.serve) await serve();
else await measure();
