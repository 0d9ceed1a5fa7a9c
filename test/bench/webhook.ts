// AdmissionReviews per second and latency at 1,000 reviews/s, beside a bare fastify HTTPS route
// that returns a fixed body, on this machine. `npx tsx test/bench/webhook.ts [--paced-runs N]`
// (about 3 min). The webhook is what the image ships: the compiled `layover serve` with the
// image's node flags and malloc settings, the webhook role alone with file TLS, its default log
// level (info), its registry health check and image checks answered by a stub registry. The bare
// route and the stub registry run in a second child with the same flags, so the load shares
// neither's event loop. The paced runs (1,000 reviews/s, 10 s) take turns: webhook, bare, bare,
// webhook, …; the target is p99 ≤ 5 ms in every one of them. The webhook role's resident memory
// is read at rest before the load (after its idle collections) and again 10 s after it.
//
// Setups (BENCH_WEBHOOK_SETUP, default `rt` as root, else `shared`): where the load generator and
// the servers run. On a 2-core machine shared with other work they otherwise take each other's
// core and wait for everything else: the generator wakes late (its wake-up lag is part of every
// latency) and the servers wait for a core. A real measurement puts the load on another machine
// and the server on a core it is guaranteed; here:
//   shared     no pinning, normal priority (what the bench did before).
//   pinned     the load generator (and this process, which runs autocannon) on CPU 0, both servers
//              (the webhook and the bare route's process) on the last CPU, normal priority.
//   rt         not pinned; the servers (every thread) under SCHED_RR 1, the load generator's two
//              clock threads (pacing and main) under SCHED_RR 2 (root only): the scheduler no
//              longer keeps them off a core for other work, and the generator never waits for
//              the servers. It measures the servers as if each had a core of its own.
//   pinned-rt  both.
// Measured at load 8-17 (2 cores, three other sessions busy): pinned alone starves the servers on
// one shared core (webhook p50 0.2-0.6 s); pinned-rt holds the generator on CPU 0 behind whatever
// the kernel does there (this kernel is PREEMPT_NONE: a waking RT thread waits for the CPU's
// current kernel work), lag p99 up to 188 ms; rt had the generator's lag p99 at 1.0-16.8 ms
// over 24 runs at load 10-17 (27-218 ms shared). BENCH_WEBHOOK_RT=1 still selects rt.
// The webhook and the bare route always run under the same setup, and the webhook is stopped
// (SIGSTOP) while the bare route is measured: idle, it makes two full collections (idle-gc.ts,
// 20-380 ms each at that load) that would take a core from the route being measured.
// BENCH_WEBHOOK_SETUPS=shared,rt compares setups in one run: each paced round goes through every
// setup (the servers are moved with `taskset -a -p` / `chrt -a -p` between runs), starting one
// further along each round, so a busy spell of the machine falls on all of them.
// BENCH_WEBHOOK_NODE_ARGS adds node flags to the webhook (e.g. `--trace-gc`, `--cpu-prof`);
// BENCH_WEBHOOK_STDOUT names a file for its output (its log, and what such flags print);
// BENCH_PEERS_NODE_ARGS adds node flags to the bare route's process; BENCH_LOAD_NODE_ARGS to the
// load generator's. The paced load comes from _paced-load.ts in a process of its own (why not
// autocannon: see there).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { loadavg, cpus } from 'node:os';
import Fastify from 'fastify';
import { generateCertificate } from '../../src/webhook/selfsigned.js';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { admissionReview, apiserverDefaults, loadPod } from '../fixtures/pods/admission.js';
import { compiledEntry, IMAGE_ENV, IMAGE_NODE_FLAGS } from '../helpers/layover.js';
import { freePort } from '../helpers/free-port.js';
import { cpuSeconds, rssBytes } from '../helpers/process-stats.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { median } from './measure.js';
import { printSummary, spreadOf, type SummaryRow } from './summary.js';
import type { PacedLoadOptions, PacedLoadResult } from './_paced-load.js';

// Not strict: run.ts passes every benchmark the same arguments.
const { values: args } = parseArgs({ options: { 'paced-runs': { type: 'string', default: '3' }, peers: { type: 'boolean', default: false } }, strict: false });
const PACED_RUNS = Math.max(1, Number(args['paced-runs']) || 3);

type Setup = 'shared' | 'pinned' | 'pinned-rt' | 'rt';
const SETUPS: Record<Setup, { pinned: boolean; rt: boolean; label: string }> = {
  shared: { pinned: false, rt: false, label: 'not pinned, normal priority' },
  pinned: { pinned: true, rt: false, label: 'load generator on CPU 0, servers on the last CPU' },
  'pinned-rt': { pinned: true, rt: true, label: 'load generator on CPU 0 (its clock threads SCHED_RR 2), servers on the last CPU (SCHED_RR 1)' },
  rt: { pinned: false, rt: true, label: 'not pinned; load generator\'s clock threads SCHED_RR 2, servers SCHED_RR 1' },
};
const isSetup = (s: string): s is Setup => s in SETUPS;
// SCHED_RR and moving other processes' threads need root.
const DEFAULT_SETUP = process.getuid?.() === 0 ? 'rt' : 'shared';
const chosen = (process.env.BENCH_WEBHOOK_SETUPS ?? process.env.BENCH_WEBHOOK_SETUP ?? (process.env.BENCH_WEBHOOK_RT ? 'rt' : DEFAULT_SETUP)).split(',').map((s) => s.trim()).filter(Boolean);
for (const s of chosen) if (!isSetup(s)) throw new Error(`unknown setup ${s}: one of ${Object.keys(SETUPS).join(', ')}`);
const SETUP_LIST = chosen as Setup[];
const CORES = cpus().length;
const LOAD_CPU = '0';
const SERVER_CPU = String(CORES - 1);
const ALL_CPUS = `0-${CORES - 1}`;
// The load generator's clock threads run above the servers (1): a generator on another machine
// never waits for the server's CPU.
const LOAD_RT_PRIORITY = 2;

/** The load generator's command under a setup: `taskset` execs it, so the pid stays node's. */
function forLoad(setup: Setup, command: string, args: string[]): [string, string[]] {
  return SETUPS[setup].pinned ? ['taskset', ['-c', LOAD_CPU, command, ...args]] : [command, args];
}

/** Moves a running server (every thread of it) to the setup's CPU and scheduling class. */
function placeServer(setup: Setup, pid: number): void {
  if (setup === 'shared' && DEFAULT_SETUP === 'shared') return; // not root: nothing was moved
  execFileSync('taskset', ['-a', '-p', '-c', SETUPS[setup].pinned ? SERVER_CPU : ALL_CPUS, String(pid)], { stdio: 'ignore' });
  execFileSync('chrt', ['-a', ...(SETUPS[setup].rt ? ['-r', '-p', '1'] : ['-o', '-p', '0']), String(pid)], { stdio: 'ignore' });
}

/** This process runs autocannon (max throughput) and waits for the generator: it stays off the servers' CPU when pinned. */
function placeSelf(setup: Setup): void {
  if (setup === 'shared' && DEFAULT_SETUP === 'shared') return;
  execFileSync('taskset', ['-a', '-p', '-c', SETUPS[setup].pinned ? LOAD_CPU : ALL_CPUS, String(process.pid)], { stdio: 'ignore' });
}

interface Histogram { p50: number; p99: number; average: number; max: number }
interface Result { requests: { average: number; total: number }; latency: Histogram; '2xx': number; non2xx: number; errors: number; timeouts: number }
interface Options { url: string; method: 'POST'; headers: Record<string, string>; body: string; connections: number; duration: number; overallRate?: number; servername?: string }
const autocannon = createRequire(import.meta.url)('autocannon') as (opts: Options) => Promise<Result>;

const REVIEW = JSON.stringify(admissionReview(apiserverDefaults(loadPod('multi.json'), 'team-a')));

/** The second child: the bare fastify HTTPS route and the stub registry the webhook checks against. */
async function peers(): Promise<void> {
  const cert = readFileSync(process.env.BENCH_TLS_CERT!, 'utf8');
  const key = readFileSync(process.env.BENCH_TLS_KEY!, 'utf8');
  const fixed = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'x', allowed: true } });
  const bare = Fastify({ https: { cert, key }, bodyLimit: 4 * 1024 * 1024 });
  bare.post('/mutate', async (_req, reply) => reply.type('application/json').send(fixed));
  const bareUrl = (await bare.listen({ host: '127.0.0.1', port: 0 })).replace(/^http:/, 'https:');
  // Every image resolves: the health check's /v2/ and each image check's manifest HEAD answer 200.
  let heads = 0;
  const registry = createServer((req, res) => {
    if (req.method === 'HEAD') heads += 1;
    res.writeHead(200, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' }).end(req.method === 'HEAD' ? undefined : '{}');
  });
  registry.listen(0, '127.0.0.1');
  await once(registry, 'listening');
  const { port } = registry.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ bare: bareUrl, registry: `http://127.0.0.1:${port}` })}\n`);
  process.stdin.resume();
  await once(process.stdin, 'end');
  process.stdout.write(`${JSON.stringify({ heads })}\n`);
  registry.close();
  await bare.close();
}

interface Webhook { url: string; child: ChildProcess; stop(): Promise<void> }

/** `layover serve` as the image runs it: the webhook role alone, file TLS, checks against the stub. */
async function startWebhookRole(dir: string, registryUrl: string): Promise<Webhook> {
  const port = await freePort();
  const configFile = path.join(dir, 'layover.yaml');
  writeFileSync(configFile, stringify({
    registry: { enabled: false, publicHost: 'localhost:30500' },
    auth: { enabled: true },
    upstreams: [{ prefix: 'docker.io', url: 'https://registry-1.docker.io' }, { prefix: 'quay.io', url: 'https://quay.io' }],
    webhook: { enabled: true, listen: `127.0.0.1:${port}`, healthURL: `${registryUrl}/v2/`, tls: { cert: path.join(dir, 'tls.crt'), key: path.join(dir, 'tls.key') } },
  }));
  const extra = process.env.BENCH_WEBHOOK_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...IMAGE_NODE_FLAGS, ...extra, await compiledEntry(), 'serve', '--config', configFile], {
    cwd: dir, stdio: ['ignore', process.env.BENCH_WEBHOOK_STDOUT ? openSync(process.env.BENCH_WEBHOOK_STDOUT, 'w') : 'ignore', 'inherit'],
    env: { ...process.env, LAYOVER_CONFIG: undefined, NODE_OPTIONS: undefined, KUBERNETES_SERVICE_HOST: undefined, KUBECONFIG: undefined, ...IMAGE_ENV },
  });
  await waitFor(async () => (await fetchHealth(port)) === 200, 30_000);
  return {
    url: `https://127.0.0.1:${port}`,
    child,
    async stop() {
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

/** Times the process's main thread went to sleep (blocked in epoll, mostly): its event-loop wake-ups. */
function wakeUps(pid: number): number {
  return Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
}

/** Resident memory once the process has been quiet long enough for idle-gc.ts's two collections. */
async function restingMiB(pid: number): Promise<number> {
  await new Promise((r) => setTimeout(r, 11_000));
  return rssBytes(pid) / 2 ** 20;
}

async function measure(): Promise<void> {
  const tmp = makeTempDir('layover-bench-webhook-');
  const pair = await generateCertificate(['layover-webhook.layover.svc'], ['127.0.0.1']);
  writeFileSync(path.join(tmp.path, 'tls.crt'), pair.cert);
  writeFileSync(path.join(tmp.path, 'tls.key'), pair.key);
  const peerArgs = process.env.BENCH_PEERS_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const peersChild = spawn(process.execPath, [...IMAGE_NODE_FLAGS, ...peerArgs, '--import', 'tsx', fileURLToPath(import.meta.url), '--peers'], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, ...IMAGE_ENV, BENCH_TLS_CERT: path.join(tmp.path, 'tls.crt'), BENCH_TLS_KEY: path.join(tmp.path, 'tls.key') },
  });
  const peerLines = createInterface({ input: peersChild.stdout! });
  const [line] = (await once(peerLines, 'line')) as [string];
  const peerUrls = JSON.parse(line) as { bare: string; registry: string };
  const webhook = await startWebhookRole(tmp.path, peerUrls.registry);
  const urls = { webhook: webhook.url, bare: peerUrls.bare };
  const restMiB = await restingMiB(webhook.child.pid!);

  // One real answer first: the benchmark must measure reviews that actually rewrite.
  const check = await fetchOnce(urls.webhook);
  if (!check.includes('"patchType":"JSONPatch"')) throw new Error(`webhook did not patch: ${check}`);

  const run = (url: string, extra: Partial<Options>) => autocannon({
    url: `${url}/mutate`, method: 'POST', headers: { 'content-type': 'application/json' }, body: REVIEW,
    connections: 8, duration: 8, servername: 'layover-webhook.layover.svc', ...extra,
  });
  const pids = { webhook: webhook.child.pid!, bare: peersChild.pid! };
  const place = (setup: Setup) => {
    placeSelf(setup);
    placeServer(setup, pids.webhook);
    placeServer(setup, pids.bare);
  };
  let paused = false;
  /** Stops the webhook while the bare route is measured; when it resumes, its idle collection runs before the load. */
  const pause = async (stop: boolean) => {
    if (stop === paused) return;
    webhook.child.kill(stop ? 'SIGSTOP' : 'SIGCONT');
    paused = stop;
    if (!stop) await new Promise((r) => setTimeout(r, 2_500));
  };
  const rows: Array<Record<string, string | number>> = [];
  const pacedRows: Array<Record<string, string | number>> = [];
  const record = (name: string, mode: string, r: Result, load: number, cpu: number) => {
    if (r.non2xx || r.errors || r.timeouts) throw new Error(`${name} ${mode}: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
    rows.push({ target: name, setup: SETUP_LIST[0]!, mode, 'req/s': Math.round(r.requests.average), 'p50 ms': r.latency.p50, 'p99 ms': r.latency.p99, 'max ms': r.latency.max, requests: r.requests.total, 'CPU µs/req': Math.round((cpu * 1e6) / r.requests.total), load: load.toFixed(2) });
  };
  // Max throughput (autocannon from this process) under the first setup only.
  place(SETUP_LIST[0]!);
  await run(urls.webhook, { duration: 2 }); // warm-up: JIT, TLS session setup
  await pause(true);
  await run(urls.bare, { duration: 2 });
  // CPU-seconds of the server's process over a run: a figure the machine's load moves far less than latency.
  const measured = async (key: 'webhook' | 'bare', url: string, extra: Partial<Options>) => {
    const before = cpuSeconds(pids[key]);
    const r = await run(url, extra);
    return { r, cpu: cpuSeconds(pids[key]) - before };
  };
  for (const [key, name, url] of [['webhook', 'webhook /mutate', urls.webhook], ['bare', 'bare fastify', urls.bare]] as const) {
    await pause(key === 'bare');
    const { r, cpu } = await measured(key, url, {});
    record(name, 'max throughput', r, loadavg()[0]!, cpu);
  }
  type Key = 'webhook' | 'bare';
  interface PacedRun { result: PacedLoadResult; cpuPerReview: number; wakesPerReview: number; load: number }
  const paced = new Map<Setup, Record<Key, PacedRun[]>>(SETUP_LIST.map((s) => [s, { webhook: [], bare: [] }]));
  const targets = [['webhook', 'webhook /mutate', urls.webhook], ['bare', 'bare fastify', urls.bare]] as const;
  for (let i = 0; i < PACED_RUNS; i++) {
    // Each round goes through every setup, starting one further along each time.
    const setups = SETUP_LIST.map((_, j) => SETUP_LIST[(i + j) % SETUP_LIST.length]!);
    for (const setup of setups) {
      place(setup);
      for (const [key, name, url] of i % 2 ? [...targets].reverse() : targets) {
        await pause(key === 'bare');
        const before = cpuSeconds(pids[key]);
        const sleptBefore = wakeUps(pids[key]);
        const r = await pacedLoadChild(setup, { rtPriority: SETUPS[setup].rt ? LOAD_RT_PRIORITY : undefined, url: `${url}/mutate`, body: REVIEW, rate: 1000, durationMs: 10_000, connections: 8, servername: 'layover-webhook.layover.svc' });
        const cpu = cpuSeconds(pids[key]) - before;
        const wakes = (wakeUps(pids[key]) - sleptBefore) / r.requests;
        if (r.non2xx || r.errors) throw new Error(`${name} paced: ${r.non2xx} non-2xx, ${r.errors} errors`);
        const load = loadavg()[0]!;
        rows.push({ target: name, setup, mode: `1,000 req/s #${i + 1}`, 'req/s': r.rate, 'p50 ms': r.latency.p50, 'p99 ms': r.latency.p99, 'max ms': r.latency.max, requests: r.requests, 'CPU µs/req': Math.round((cpu * 1e6) / r.requests), load: load.toFixed(2) });
        pacedRows.push({ target: name, setup, run: i + 1, 'p99.9 ms': r.latency.p999, 'service p99 ms': r.service.p99, 'send lag p99 ms': r.sendLag.p99, 'send lag max ms': r.sendLag.max, 'timer lag p99 ms': r.timerLag.p99, 'server wake-ups/req': wakes.toFixed(2), 'load gen GCs': r.gc.count, 'load gen GC max ms': r.gc.maxMs, load: load.toFixed(2) });
        paced.get(setup)![key].push({ result: r, cpuPerReview: (cpu * 1e6) / r.requests, wakesPerReview: wakes, load });
      }
    }
  }
  await pause(false);
  place('shared');
  const afterMiB = await restingMiB(webhook.child.pid!);
  await webhook.stop();
  peersChild.stdin!.end();
  const [counts] = (await once(peerLines, 'line')) as [string];
  await once(peersChild, 'exit');
  tmp.cleanup();

  console.log(`AdmissionReview body: ${REVIEW.length} bytes (an apiserver-defaulted Pod with an init container); node ${process.version}, ${CORES} cores; image checks sent to the registry: ${(JSON.parse(counts) as { heads: number }).heads}`);
  for (const s of SETUP_LIST) console.log(`setup ${s}: ${SETUPS[s].label}`);
  console.table(rows);
  console.log('Paced runs: where the tail comes from (latency counts from when each request was due; service from its write; send lag is the load generator\'s own lateness)');
  console.table(pacedRows);
  const max = (target: string) => Number(rows.find((r) => r.target === target && r.mode === 'max throughput')?.['req/s']);
  const many = SETUP_LIST.length > 1;
  const setupRows = (setup: Setup): SummaryRow[] => {
    const runs = paced.get(setup)!;
    const tag = many ? `[${setup}] ` : '';
    const of = (key: Key, pick: (r: PacedRun) => number) => runs[key].map(pick);
    const p99 = of('webhook', (r) => r.result.latency.p99);
    const worst = Math.max(...p99);
    const medianRow = (metric: string, pick: (r: PacedRun) => number, digits: number, unit?: string): SummaryRow =>
      ({ metric: `${tag}${metric}`, unit, digits, layover: median(of('webhook', pick)), spread: spreadOf(of('webhook', pick), digits), peer: median(of('bare', pick)) });
    return [
      ...runs.webhook.flatMap((w, i): SummaryRow[] => {
        const b = runs.bare[i]!;
        const load = `load ${w.load.toFixed(2)}`;
        return [
          { metric: `${tag}p99 at 1,000/s, run ${i + 1} (${load})`, unit: 'ms', digits: 1, layover: w.result.latency.p99, peer: b.result.latency.p99, target: '≤ 5 ms', met: w.result.latency.p99 <= 5 },
          { metric: `${tag}p50 at 1,000/s, run ${i + 1}`, unit: 'ms', digits: 2, layover: w.result.latency.p50, peer: b.result.latency.p50 },
        ];
      }),
      { metric: `${tag}p99 at 1,000/s, worst run`, unit: 'ms', digits: 1, layover: worst, peer: Math.max(...of('bare', (r) => r.result.latency.p99)), target: `≤ 5 ms in ${PACED_RUNS} of ${PACED_RUNS}`, met: worst <= 5 },
      // Where the tail comes from: the server (from the write to the answer) and the machine (how late
      // a process that does nothing but wake every millisecond wakes: the load generator's clock).
      medianRow('p99 from the write (service), median', (r) => r.result.service.p99, 1, 'ms'),
      medianRow('load generator wake-up lag p99 (floor), median', (r) => r.result.timerLag.p99, 1, 'ms'),
      medianRow('max at 1,000/s, median of runs', (r) => r.result.latency.max, 1, 'ms'),
      medianRow('CPU µs per review at 1,000/s, median', (r) => r.cpuPerReview, 0),
      medianRow('server event-loop wake-ups per review at 1,000/s, median', (r) => r.wakesPerReview, 2),
    ];
  };
  printSummary({
    bench: 'webhook',
    peer: 'bare fastify HTTPS',
    note: `setup ${SETUP_LIST.map((s) => `${s} (${SETUPS[s].label})`).join(' / ')}; ${PACED_RUNS} paced runs each, alternating, open-loop from their own process, the webhook stopped while the bare route runs; compiled layover serve with the image's flags; shared machine (load ${loadavg().map((l) => l.toFixed(2)).join(' ')})`,
    rows: [
      { metric: `reviews/s, max throughput${many ? ` [${SETUP_LIST[0]}]` : ''}`, digits: 0, layover: max('webhook /mutate'), peer: max('bare fastify'), target: '≥ 5,000/s', met: max('webhook /mutate') >= 5000 },
      ...SETUP_LIST.flatMap(setupRows),
      { metric: 'webhook role RSS at rest, file TLS', unit: 'MiB', digits: 1, layover: restMiB, target: '≤ 70 MiB', met: restMiB <= 70 },
      { metric: 'webhook role RSS at rest after the runs', unit: 'MiB', digits: 1, layover: afterMiB },
    ],
  });
}

/** One paced run from its own process (_paced-load.ts), so the load shares neither server's event loop. */
async function pacedLoadChild(setup: Setup, options: PacedLoadOptions): Promise<PacedLoadResult> {
  // A larger young generation: fewer scavenges of the generator's own during a run. Its GC on its
  // main thread alone: under rt, helper threads in the normal class stretched a scavenge to 63 ms
  // at load 14 while the main thread, its clock, waited for them.
  const extra = ['--max-semi-space-size=32', '--single-threaded-gc', ...(process.env.BENCH_LOAD_NODE_ARGS?.split(' ').filter(Boolean) ?? [])];
  const child = spawn(...forLoad(setup, process.execPath, [...extra, '--import', 'tsx', fileURLToPath(new URL('./_paced-load.ts', import.meta.url)), JSON.stringify(options)]), { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  const line = out.trim().split('\n').pop() ?? '';
  if (code !== 0 || !line.startsWith('{')) throw new Error(`paced load exited ${code}: ${out}`);
  return JSON.parse(line) as PacedLoadResult;
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

if (args.peers) await peers();
else await measure();
