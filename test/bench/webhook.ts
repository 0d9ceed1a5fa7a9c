// AdmissionReviews per second and latency at 1,000 reviews/s, beside a bare fastify HTTPS route
// that returns a fixed body, on this machine. `npx tsx test/bench/webhook.ts` (about 45 s).
// The servers run in a child process so autocannon does not share their event loop.
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
import { admissionReview, apiserverDefaults, loadPod } from '../fixtures/pods/admission.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

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
  for (const [name, url] of [['webhook /mutate', urls.webhook], ['bare fastify', urls.bare]] as const) {
    record(name, '1,000 req/s', await run(url, { overallRate: 1000, duration: 10, connections: 10 }));
  }
  child.stdin!.end();
  await once(child, 'exit');

  console.log(`AdmissionReview body: ${REVIEW.length} bytes (an apiserver-defaulted Pod with an init container); node ${process.version}, ${(await import('node:os')).cpus().length} cores`);
  console.table(rows);
  const max = rows.find((r) => r.target === 'webhook /mutate' && r.mode === 'max throughput');
  const paced = rows.find((r) => r.target === 'webhook /mutate' && r.mode === '1,000 req/s');
  console.log(`target ≥ 5,000 reviews/s: ${Number(max?.['req/s']) >= 5000 ? 'met' : 'NOT met'}; target p99 ≤ 5 ms at 1,000/s: ${Number(paced?.['p99 ms']) <= 5 ? 'met' : 'NOT met'}`);
}

async function fetchOnce(url: string): Promise<string> {
  const { Agent, request } = await import('undici');
  const agent = new Agent({ connect: { rejectUnauthorized: false } });
  const res = await request(`${url}/mutate`, { method: 'POST', body: REVIEW, headers: { 'content-type': 'application/json' }, dispatcher: agent });
  const text = await res.body.text();
  await agent.close();
  return text;
}

if (process.argv.includes('--serve')) await serve();
else await measure();
