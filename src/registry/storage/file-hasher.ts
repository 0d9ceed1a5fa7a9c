// The digest of a file that is still being written, computed on a worker thread that reads the
// file behind the writer. On a cache miss the event loop already receives the upstream body,
// writes it to disk and sends it to every waiting client; hashing 256 MiB there as well took
// ~0.16 s of its ~0.45 s per pull (measured with --cpu-prof), and nothing else could use the
// second core. The worker reads only bytes the writer reports as written, through one reused
// buffer, so it adds no garbage to the main heap. One worker serves every download of the process.
import { Worker } from 'node:worker_threads';
import type { Algorithm } from '../digest.js';

/** Main → worker. */
type Command =
  | { type: 'open'; id: number; path: string; algorithm: Algorithm }
  | { type: 'advance'; id: number; upTo: number }
  | { type: 'finish'; id: number; size: number }
  | { type: 'abort'; id: number };

/** Worker → main. */
type Answer = { type: 'digest'; id: number; hex: string } | { type: 'error'; id: number; message: string };

// Kept as source text (CommonJS, no imports of ours) so that it runs the same from src/ under tsx
// or vitest and from the compiled dist/, with no separate worker file to build or ship.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { openSync, readSync, closeSync } = require('node:fs');
const { createHash } = require('node:crypto');
const buffer = Buffer.allocUnsafeSlow(1024 * 1024);
const jobs = new Map();
function drop(id) {
  const job = jobs.get(id);
  if (!job) return;
  jobs.delete(id);
  try { closeSync(job.fd); } catch {}
}
function pump(id, job) {
  while (job.done < job.upTo) {
    const n = readSync(job.fd, buffer, 0, Math.min(buffer.length, job.upTo - job.done), job.done);
    if (n === 0) throw new Error('file is shorter than reported');
    job.hash.update(n === buffer.length ? buffer : buffer.subarray(0, n));
    job.done += n;
  }
  if (job.size !== undefined && job.done === job.size) {
    parentPort.postMessage({ type: 'digest', id, hex: job.hash.digest('hex') });
    drop(id);
  }
}
parentPort.on('message', (m) => {
  try {
    if (m.type === 'open') {
      jobs.set(m.id, { fd: openSync(m.path, 'r'), hash: createHash(m.algorithm), done: 0, upTo: 0, size: undefined });
      return;
    }
    if (m.type === 'abort') return drop(m.id);
    const job = jobs.get(m.id);
    if (!job) return;
    if (m.type === 'advance') job.upTo = Math.max(job.upTo, m.upTo);
    if (m.type === 'finish') { job.size = m.size; job.upTo = m.size; }
    pump(m.id, job);
  } catch (err) {
    drop(m.id);
    parentPort.postMessage({ type: 'error', id: m.id, message: String(err && err.message || err) });
  }
});
`;

interface Pending { resolve(hex: string): void; reject(err: Error): void }

/**
 * An idle worker is ended after this long: it costs ~10 MiB of RSS, and a node mirror is
 * mostly idle between image pulls. Starting one again takes some tens of milliseconds.
 */
let idleMs = 30_000;

/** How long an idle hash worker lives (for tests; the default suits a mirror). */
export function setHashWorkerIdleTime(ms: number): void {
  idleMs = ms;
}

class HashWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Hashes opened and not yet finished or aborted. */
  private active = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  dead = false;

  constructor() {
    // A small heap: the worker holds a Hash and a file descriptor per download, nothing more.
    this.worker = new Worker(WORKER_SOURCE, { eval: true, resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 } });
    this.worker.unref();
    this.worker.on('message', (answer: Answer) => {
      const job = this.pending.get(answer.id);
      if (!job) return;
      this.pending.delete(answer.id);
      if (answer.type === 'digest') job.resolve(answer.hex);
      else job.reject(new Error(`hashing failed: ${answer.message}`));
    });
    const fail = (err: Error) => {
      this.dead = true;
      for (const job of this.pending.values()) job.reject(err);
      this.pending.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`hash worker exited with code ${code}`)));
  }

  open(path: string, algorithm: Algorithm): number {
    const id = this.nextId++;
    this.active += 1;
    clearTimeout(this.idleTimer);
    this.send({ type: 'open', id, path, algorithm });
    return id;
  }

  /** A hash is over (its digest settled, or it was aborted). */
  done(): void {
    this.active -= 1;
    if (this.active > 0 || this.dead) return;
    this.idleTimer = setTimeout(() => {
      if (this.active > 0) return;
      this.dead = true;
      void this.worker.terminate();
    }, idleMs);
    this.idleTimer.unref();
  }

  send(command: Command): void {
    this.worker.postMessage(command);
  }

  /** The digest once the worker has read `size` bytes. */
  finish(id: number, size: number): Promise<string> {
    if (this.dead) return Promise.reject(new Error('hash worker is gone'));
    const result = new Promise<string>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.send({ type: 'finish', id, size });
    return result;
  }
}

let shared: HashWorker | undefined;

function worker(): HashWorker {
  if (!shared || shared.dead) shared = new HashWorker();
  return shared;
}

/** Whether a hash worker is running now (for tests). */
export function hashWorkerRunning(): boolean {
  return shared !== undefined && !shared.dead;
}

/**
 * Bytes the writer may get ahead of the worker before it is told: a message per write cost the
 * event loop ~30 ms per 256 MiB in postMessage alone.
 */
const ADVANCE_STEP = 4 * 1024 * 1024;

/** Hashes `path` as it grows: report each advance of the writer, then ask for the digest. */
export class FileHasher {
  private readonly worker: HashWorker;
  private readonly id: number;
  private closed = false;
  private told = 0;

  constructor(path: string, algorithm: Algorithm) {
    this.worker = worker();
    this.id = this.worker.open(path, algorithm);
  }

  /** The first `written` bytes of the file are on disk. */
  advance(written: number): void {
    if (this.closed || written - this.told < ADVANCE_STEP) return;
    this.told = written;
    this.worker.send({ type: 'advance', id: this.id, upTo: written });
  }

  /** Hex digest of the first `size` bytes (the whole file). */
  digest(size: number): Promise<string> {
    this.closed = true;
    const result = this.worker.finish(this.id, size);
    const done = () => this.worker.done();
    result.then(done, done);
    return result;
  }

  abort(): void {
    if (this.closed) return;
    this.closed = true;
    this.worker.send({ type: 'abort', id: this.id });
    this.worker.done();
  }
}
