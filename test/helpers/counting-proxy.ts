// A reverse proxy on 127.0.0.1 in front of a loopback upstream that counts what passes through,
// and can be told to misbehave: corrupt bodies, answer errors, or go down and come back.
// Pull-through cache tests put it between layover and its upstream.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface RelayedRequest {
  method: string;
  path: string;
  query: string;
  /** Status sent to the client; 0 when the connection was cut before an answer. */
  status: number;
  /** Date.now() when the whole response body had been handed to the client's socket. */
  finishedAt?: number;
}

export type RequestFilter = (req: { method: string; path: string }) => boolean;

export interface CountingProxy {
  url: string;
  host: string;
  port: number;
  requests(): RelayedRequest[];
  /** Requests with this method whose path equals `path` (string) or matches it (RegExp); all paths when omitted. */
  count(method: string, path?: string | RegExp): number;
  /** Counts keyed by `"METHOD /path"`. */
  counts(): Record<string, number>;
  reset(): void;
  /** Flips one byte in each matching response body (default: every GET), or stops when `false`. */
  corrupt(filter?: RequestFilter | boolean): void;
  /**
   * Answers matching requests with `status` (and an empty body) instead of forwarding; `null`
   * stops. `headers` go with it, e.g. `{ 'retry-after': '3600' }` for a rate limit.
   */
  fail(status: number | null, filter?: RequestFilter, headers?: Record<string, string>): void;
  /** Holds each response for `ms` before forwarding it (0 turns it off). */
  delay(ms: number): void;
  /** Paces matching response bodies (default: every GET) to about `bytesPerSecond`; `null` stops. */
  throttle(bytesPerSecond: number | null, filter?: RequestFilter): void;
  /**
   * Takes the upstream away: `refuse` closes the listening socket (connections are refused),
   * `reset` accepts and immediately destroys connections. Open connections are cut either way.
   */
  down(mode?: 'refuse' | 'reset'): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

class FlipOneByte extends Transform {
  private done = false;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.done && chunk.length > 0) {
      this.done = true;
      const copy = Buffer.from(chunk);
      const i = Math.floor(copy.length / 2);
      copy[i] = (copy[i] ?? 0) ^ 0xff;
      cb(null, copy);
      return;
    }
    cb(null, chunk);
  }
}

/** Paces a body to `bytesPerSecond`, in slices of a twentieth of a second's worth. */
class Throttle extends Transform {
  private readonly slice: number;
  private sent = 0;
  private startedAt = 0;
  constructor(private readonly bytesPerSecond: number) {
    super();
    this.slice = Math.max(1, Math.floor(bytesPerSecond / 20));
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.startedAt) this.startedAt = Date.now();
    let offset = 0;
    const step = () => {
      if (this.destroyed) return;
      const wait = this.startedAt + (this.sent / this.bytesPerSecond) * 1000 - Date.now();
      if (wait > 0) return void setTimeout(step, wait);
      const piece = chunk.subarray(offset, offset + this.slice);
      this.push(piece);
      this.sent += piece.length;
      offset += piece.length;
      if (offset >= chunk.length) cb();
      else step();
    };
    step();
  }
}

const allGets: RequestFilter = (r) => r.method === 'GET';

export async function startCountingProxy(targetUrl: string): Promise<CountingProxy> {
  const target = new URL(targetUrl);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(target.hostname)) throw new Error(`counting proxy only relays to loopback, not ${target.hostname}`);
  const agent = new http.Agent({ keepAlive: true });
  const log: RelayedRequest[] = [];
  const sockets = new Set<Socket>();
  let corruptFilter: RequestFilter | null = null;
  let failure: { status: number; filter: RequestFilter; headers: Record<string, string> } | null = null;
  let delayMs = 0;
  let throttling: { bytesPerSecond: number; filter: RequestFilter } | null = null;
  let resetting = false;

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const entry: RelayedRequest = { method: req.method ?? 'GET', path: q < 0 ? raw : raw.slice(0, q), query: q < 0 ? '' : raw.slice(q + 1), status: 0 };
    log.push(entry);
    if (failure && failure.filter(entry)) {
      entry.status = failure.status;
      req.resume();
      res.writeHead(failure.status, { ...failure.headers, 'content-length': '0' }).end();
      return;
    }
    const upstream = http.request({
      host: target.hostname.replace(/^\[|\]$/g, ''),
      port: target.port,
      method: req.method,
      path: raw,
      headers: req.headers,
      agent,
    }, (upRes) => {
      const forward = () => {
        entry.status = upRes.statusCode ?? 0;
        res.writeHead(upRes.statusCode ?? 502, upRes.rawHeaders);
        const flip = corruptFilter && corruptFilter(entry);
        const slow = throttling && throttling.filter(entry) ? new Throttle(throttling.bytesPerSecond) : null;
        const stages = [upRes, ...(flip ? [new FlipOneByte()] : []), ...(slow ? [slow] : []), res];
        pipeline(stages).then(() => (entry.finishedAt = Date.now()), () => res.destroy());
      };
      if (delayMs > 0) setTimeout(forward, delayMs);
      else forward();
    });
    upstream.on('error', () => {
      if (!res.headersSent) {
        entry.status = 502;
        res.writeHead(502, { 'content-length': '0' }).end();
      } else {
        res.destroy();
      }
    });
    pipeline(req, upstream).catch(() => upstream.destroy());
  };

  const server = http.createServer(handle);
  server.keepAliveTimeout = 5_000;
  server.on('connection', (socket: Socket) => {
    if (resetting) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  const cutAll = () => {
    for (const s of sockets) s.destroy();
    sockets.clear();
    agent.destroy();
  };

  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    requests: () => log.slice(),
    count(method, path) {
      return log.filter((r) => r.method === method && (path === undefined || (typeof path === 'string' ? r.path === path : path.test(r.path)))).length;
    },
    counts() {
      const out: Record<string, number> = {};
      for (const r of log) out[`${r.method} ${r.path}`] = (out[`${r.method} ${r.path}`] ?? 0) + 1;
      return out;
    },
    reset: () => void log.splice(0),
    corrupt(filter = true) {
      corruptFilter = filter === false ? null : filter === true ? allGets : filter;
    },
    fail(status, filter = () => true, headers = {}) {
      failure = status === null ? null : { status, filter, headers };
    },
    delay(ms) {
      delayMs = ms;
    },
    throttle(bytesPerSecond, filter = allGets) {
      throttling = bytesPerSecond === null ? null : { bytesPerSecond, filter };
    },
    async down(mode = 'refuse') {
      if (mode === 'reset') {
        resetting = true;
        cutAll();
        return;
      }
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        cutAll();
      });
    },
    async up() {
      resetting = false;
      if (server.listening) return;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: '127.0.0.1', port }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    },
    async close() {
      resetting = false;
      cutAll();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
