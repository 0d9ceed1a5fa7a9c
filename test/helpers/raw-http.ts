// One HTTP exchange sent exactly as written (undici's dispatcher: no client-side normalisation of
// `..` or `%2e`), answered with status, headers and the whole body: what the API tests inspect.
import { connect } from 'node:net';
import type { Readable } from 'node:stream';
import { getGlobalDispatcher } from 'undici';

export interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }

export async function rawRequest(origin: string, method: string, target: string, headers: Record<string, string> = {}, body?: Buffer | Readable): Promise<Answer> {
  const res = await getGlobalDispatcher().request({ origin, path: target, method: method as 'GET', headers, body });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
}

/**
 * Sends a GET on a bare socket and hangs up once `afterBytes` of the answer (headers included)
 * have arrived; resolves with how many had. For "a client that goes away mid-body".
 */
export function getAndHangUp(origin: string, target: string, afterBytes: number): Promise<number> {
  const { hostname, port } = new URL(origin);
  return new Promise((resolve) => {
    let seen = 0;
    const socket = connect(Number(port), hostname, () => socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`));
    socket.on('data', (chunk: Buffer) => {
      seen += chunk.length;
      if (seen >= afterBytes) socket.destroy();
    });
    socket.on('close', () => resolve(seen));
    socket.on('error', () => undefined);
  });
}

/** A GET on a bare socket whose reader stalls for `stallMs` first, so the server's writes queue up; resolves with the body. */
export function getSlowly(origin: string, target: string, stallMs: number): Promise<Buffer> {
  const { hostname, port } = new URL(origin);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(Number(port), hostname, () => {
      socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      socket.pause();
      setTimeout(() => socket.resume(), stallMs);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => {
      const all = Buffer.concat(chunks);
      resolve(all.subarray(all.indexOf('\r\n\r\n') + 4));
    });
    socket.on('error', reject);
  });
}

export interface SocketAnswer extends Omit<Answer, 'headers'> {
  /** Lower-case names; a repeated header keeps its last value. */
  headers: Record<string, string | undefined>;
  /** Milliseconds from the answer's head arriving to the server ending the connection; undefined if it stayed open for `waitMs`. */
  closedAfterMs: number | undefined;
  /** The statuses of interim (1xx) answers before the final one, e.g. [100] for a 100 Continue. */
  interim: number[];
}

export interface SocketExchangeOptions {
  /** Written over and over after `head` until the connection ends: an endless body. */
  pump?: Buffer;
  /** Shut this side's writing after `head` (a body shorter than announced then ends there). */
  end?: boolean;
  /** How long to wait, after the answer's head, for the server to close (default 3000). */
  waitMs?: number;
  /** Reject when no answer's head has arrived by then (default 10000). */
  timeoutMs?: number;
}

/** The first final answer in `all` (1xx interim answers skipped); undefined until its head is complete. A HEAD answer has no body. */
function parseAnswer(all: Buffer, toHead: boolean): Omit<SocketAnswer, 'closedAfterMs'> | undefined {
  let at = 0;
  const interim: number[] = [];
  for (;;) {
    const split = all.indexOf('\r\n\r\n', at);
    if (split === -1) return undefined;
    const lines = all.subarray(at, split).toString('latin1').split('\r\n');
    const status = Number(lines[0]?.split(' ')[1]);
    at = split + 4;
    if (status >= 100 && status < 200) {
      interim.push(status);
      continue;
    }
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const rest = all.subarray(at);
    if (toHead) return { status, headers, body: Buffer.alloc(0), interim };
    const body = headers['transfer-encoding'] === 'chunked' ? unchunk(rest) : rest.subarray(0, Number(headers['content-length'] ?? rest.length));
    return { status, headers, body, interim };
  }
}

/** A chunked body's data, as far as it has arrived. */
function unchunk(bytes: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = bytes.indexOf('\r\n', at);
    const size = eol === -1 ? NaN : parseInt(bytes.subarray(at, eol).toString('latin1'), 16);
    if (!(size > 0)) return Buffer.concat(parts);
    parts.push(bytes.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

/**
 * Writes `head` (request line, headers, maybe a body) on a bare socket exactly as given, and
 * resolves with the first answer and when the server closed, waiting up to `waitMs` after the
 * answer. With `pump`, keeps writing it until the connection ends: a client still sending a large
 * or endless body, as a client does that reads the answer only once its body is out. For what
 * node's HTTP client refuses to send (control bytes, the absolute form, a wrong Content-Length)
 * and for "is the connection closed after the answer".
 */
export function socketExchange(origin: string, head: string | Buffer, opts: SocketExchangeOptions = {}): Promise<SocketAnswer> {
  const { hostname, port } = new URL(origin);
  const waitMs = opts.waitMs ?? 3000;
  const toHead = Buffer.from(head.slice(0, 5)).toString('latin1') === 'HEAD ';
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let answeredAt: number | undefined;
    const socket = connect(Number(port), hostname, () => {
      socket.write(typeof head === 'string' ? Buffer.from(head, 'latin1') : head);
      if (opts.pump) pump(opts.pump);
      else if (opts.end) socket.end();
    });
    const pump = (bytes: Buffer): void => {
      while (!socket.destroyed && socket.writable) {
        if (!socket.write(bytes)) {
          socket.once('drain', () => pump(bytes));
          return;
        }
      }
    };
    let settled = false;
    let timer = setTimeout(() => finish(false), opts.timeoutMs ?? 10_000);
    const finish = (closed: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const answer = parseAnswer(Buffer.concat(chunks), toHead);
      if (!answer) return reject(new Error(`no answer${closed ? '' : ' in time'}: ${JSON.stringify(Buffer.concat(chunks).toString('latin1').slice(0, 200))}`));
      const closedAfterMs = closed && answeredAt !== undefined ? Date.now() - answeredAt : undefined;
      resolve({ ...answer, closedAfterMs });
    };
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (answeredAt === undefined && parseAnswer(Buffer.concat(chunks), toHead)) {
        answeredAt = Date.now();
        clearTimeout(timer);
        timer = setTimeout(() => finish(false), waitMs);
      }
    });
    // The server may reset a connection it closes while this side still sends: the answer read so far counts.
    socket.on('error', () => undefined);
    socket.on('close', () => finish(true));
    socket.on('end', () => finish(true));
  });
}
