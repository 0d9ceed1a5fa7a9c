// An open-loop load generator for latency at a fixed rate, run as its own process so that its
// event loop and its garbage collections are not the server's (webhook.ts spawns it once per run).
// Why not autocannon's overallRate: it splits the rate per connection and lets each connection
// send back to back until that second's share is spent, then waits for the next second: 1,000/s
// over 10 connections is a burst at full speed for the first ~0.1 s of each second, and its
// coordinated-omission correction then adds made-up samples every 1 ms (it passes ceil(1/rate)).
// Here request i is due at start + i/rate; it goes out on an idle kept-alive TLS connection (or
// waits in a queue for one), and its latency is counted from when it was due, so a stalled server
// or a late timer shows in the figures instead of slowing the load down (no coordinated
// omission). A worker thread keeps the time (see below). Also reported, to tell where a tail comes from: the time from the actual write
// (the server and the network), how late the generator's own timer sent (its lag), and its own
// GC pauses during the run.
//
// `node --import tsx test/bench/_paced-load.ts '<json options>'` prints one JSON line of results.
import { connect, type TLSSocket } from 'node:tls';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { execFileSync } from 'node:child_process';

export interface PacedLoadOptions {
  url: string;
  body: string;
  /** Requests per second. */
  rate: number;
  durationMs: number;
  connections: number;
  servername?: string;
  /** Paced requests before the measured ones (JIT, TCP windows): not counted. */
  warmup?: number;
  /**
   * SCHED_RR priority for the two threads that keep time, the pacing thread and the main thread
   * (root only). Only those two: V8's compiler and GC threads stay in the normal class, so on one
   * CPU they cannot hold the clock off for a round-robin slice (100 ms) at the same priority.
   */
  rtPriority?: number;
}

export interface Percentiles { p50: number; p90: number; p99: number; p999: number; max: number }

export interface PacedLoadResult {
  /** Milliseconds from when each request was due to its whole response: the figure to judge. */
  latency: Percentiles;
  /** Milliseconds from the request's write to its whole response (server + loopback + TLS). */
  service: Percentiles;
  /** Milliseconds the write came after the request was due (timer lateness, queueing for a connection). */
  sendLag: Percentiles;
  /** Milliseconds the generator's timer woke after the request was due: its own lateness alone. */
  timerLag: Percentiles;
  requests: number;
  non2xx: number;
  errors: number;
  /** Achieved rate over the measured part. */
  rate: number;
  /** The generator's own GC during the measured part. */
  gc: { count: number; totalMs: number; maxMs: number };
}

function percentiles(samples: Float64Array, n: number): Percentiles {
  const s = samples.subarray(0, n).sort();
  const at = (q: number) => Math.round((s[Math.min(n - 1, Math.ceil(q * n) - 1)] ?? 0) * 1000) / 1000;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: at(1) };
}

const CRLF2 = Buffer.from('\r\n\r\n');

/** The pacing thread: posts request i's number when it comes due (absolute times, the clocks' origins differ). */
const PACER = `
const { parentPort, workerData: { start, interval, total, rtPriority } } = require('node:worker_threads');
const { performance } = require('node:perf_hooks');
if (rtPriority) {
  // This thread's own id: /proc/thread-self links to <pid>/task/<tid>.
  const tid = require('node:fs').readlinkSync('/proc/thread-self').split('/').pop();
  require('node:child_process').execFileSync('chrt', ['-r', '-p', String(rtPriority), tid]);
}
const sleeper = new Int32Array(new SharedArrayBuffer(4));
for (let i = 0; i < total; i++) {
  const wait = start + i * interval - (performance.timeOrigin + performance.now());
  if (wait > 0) Atomics.wait(sleeper, 0, 0, wait);
  parentPort.postMessage(i);
}`;

/** One kept-alive connection with at most one request in flight, reading Content-Length responses. */
class Connection {
  private pending: Buffer | undefined;
  private need = -1;
  busy = false;
  dueAt = 0;
  sentAt = 0;

  constructor(readonly socket: TLSSocket, private readonly done: (c: Connection, status: number) => void) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.read(chunk));
  }

  send(request: Buffer, dueAt: number): void {
    this.busy = true;
    this.dueAt = dueAt;
    this.sentAt = performance.now();
    this.socket.write(request);
  }

  private read(chunk: Buffer): void {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    for (;;) {
      if (this.need < 0) {
        const end = buf.indexOf(CRLF2);
        if (end < 0) break;
        const head = buf.toString('latin1', 0, end);
        const length = /\r\ncontent-length: *(\d+)/i.exec(head);
        if (!length) throw new Error(`response without content-length: ${head}`);
        this.need = end + 4 + Number(length[1]);
        this.status = Number(head.slice(9, 12));
      }
      if (buf.length < this.need) break;
      buf = buf.subarray(this.need);
      this.need = -1;
      this.busy = false;
      this.done(this, this.status);
    }
    this.pending = buf.length ? buf : undefined;
  }

  private status = 0;
}

export async function pacedLoad(options: PacedLoadOptions): Promise<PacedLoadResult> {
  const url = new URL(options.url);
  const body = Buffer.from(options.body);
  const request = Buffer.concat([
    Buffer.from(`POST ${url.pathname} HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: keep-alive\r\n\r\n`),
    body,
  ]);
  const interval = 1000 / options.rate;
  const warmup = options.warmup ?? options.rate;
  const measured = Math.round((options.rate * options.durationMs) / 1000);
  const total = warmup + measured;
  const latency = new Float64Array(measured);
  const service = new Float64Array(measured);
  const sendLag = new Float64Array(measured);
  const timerLag = new Float64Array(total);
  let answered = 0;
  let recorded = 0;
  let non2xx = 0;
  let errors = 0;

  // Due times of requests that found every connection busy, oldest first.
  const queue: number[] = [];
  const idle: Connection[] = [];
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => (finish = resolve));
  let measureFrom = Infinity;
  let measureUntil = 0;
  const onDone = (c: Connection, status: number) => {
    const now = performance.now();
    if (c.dueAt >= measureFrom) {
      latency[recorded] = now - c.dueAt;
      service[recorded] = now - c.sentAt;
      sendLag[recorded] = c.sentAt - c.dueAt;
      recorded += 1;
      measureUntil = now;
    }
    if (status < 200 || status > 299) non2xx += 1;
    answered += 1;
    if (answered === total) finish();
    const due = queue.shift();
    if (due !== undefined) c.send(request, due);
    else idle.push(c);
  };

  const connections = await Promise.all(Array.from({ length: options.connections }, async () => {
    const socket = connect({ host: url.hostname, port: Number(url.port), servername: options.servername, rejectUnauthorized: false });
    await once(socket, 'secureConnect');
    socket.on('error', () => (errors += 1));
    return new Connection(socket, onDone);
  }));
  idle.push(...connections);

  let gcCount = 0;
  let gcTotal = 0;
  let gcMax = 0;
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.startTime < measureFrom) continue;
      gcCount += 1;
      gcTotal += e.duration;
      gcMax = Math.max(gcMax, e.duration);
    }
  });
  observer.observe({ entryTypes: ['gc'] });

  // A worker thread keeps the time: Node's timers fire on whole milliseconds of a loop time cached
  // at the start of each turn (up to 2-3 ms late under load), while Atomics.wait sleeps to the
  // microsecond and its message wakes this thread at once. Spinning would take a core from the server.
  // Without -a, chrt changes the main thread alone (its id is the pid).
  if (options.rtPriority) execFileSync('chrt', ['-r', '-p', String(options.rtPriority), String(process.pid)]);
  // Far enough ahead for the pacing thread to start (and raise its priority) in time.
  const start = performance.now() + 300;
  measureFrom = start + warmup * interval - interval / 2;
  const clock = new Worker(PACER, { eval: true, workerData: { start: performance.timeOrigin + start, interval, total, rtPriority: options.rtPriority } });
  clock.on('message', (next: number) => {
    const due = start + next * interval;
    timerLag[next] = performance.now() - due;
    const c = idle.pop();
    if (c) c.send(request, due);
    else queue.push(due);
  });
  // A connection lost mid-run never answers: the run ends anyway, counting what went unanswered.
  const deadline = setTimeout(finish, total * interval + 30_000);
  await finished;
  clearTimeout(deadline);
  errors += total - answered;
  await clock.terminate();
  observer.disconnect();
  for (const c of connections) c.socket.end();
  return {
    latency: percentiles(latency, recorded),
    service: percentiles(service, recorded),
    sendLag: percentiles(sendLag, recorded),
    timerLag: percentiles(timerLag.subarray(warmup), measured),
    requests: recorded,
    non2xx,
    errors,
    rate: Math.round((recorded * 1000) / (measureUntil - measureFrom)),
    gc: { count: gcCount, totalMs: Math.round(gcTotal * 1000) / 1000, maxMs: Math.round(gcMax * 1000) / 1000 },
  };
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, '/'))) {
  const result = await pacedLoad(JSON.parse(process.argv[2] as string) as PacedLoadOptions);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
