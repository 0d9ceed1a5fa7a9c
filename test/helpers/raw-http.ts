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

export interface SocketAnswer extends Answer {
  /** Milliseconds from the answer's head arriving to the server ending the connection; undefined if it stayed open for `waitMs`. */
  closedAfterMs: number | undefined;
}

/**
 * Writes `head` (request line, headers, maybe a body start) on a bare socket exactly as given, then
 * writes `pump` over and over until the connection ends: a client still sending a large or endless
 * body, as a client does that reads the answer only once its body is out. Resolves with the first answer and when the server closed, waiting up to
 * `waitMs` after the answer. For what node's HTTP client refuses to send (control bytes, the
 * absolute form) and for "is the connection closed after the answer".
 */
export function socketExchange(origin: string, head: string | Buffer, opts: { pump?: Buffer; waitMs?: number } = {}): Promise<SocketAnswer> {
  const { hostname, port } = new URL(origin);
  const waitMs = opts.waitMs ?? 3000;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let answeredAt: number | undefined;
    let timer: NodeJS.Timeout | undefined;
    const socket = connect(Number(port), hostname, () => {
      socket.write(typeof head === 'string' ? Buffer.from(head, 'latin1') : head);
      if (opts.pump) pump(opts.pump);
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
    const finish = (closed: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const all = Buffer.concat(chunks);
      const split = all.indexOf('\r\n\r\n');
      if (split === -1) return reject(new Error(`no answer: ${JSON.stringify(all.toString('latin1').slice(0, 200))}`));
      const lines = all.subarray(0, split).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const length = Number(headers['content-length'] ?? 0);
      const status = Number(lines[0]?.split(' ')[1]);
      const closedAfterMs = closed && answeredAt !== undefined ? Date.now() - answeredAt : undefined;
      resolve({ status, headers, body: all.subarray(split + 4, split + 4 + length), closedAfterMs });
    };
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (answeredAt === undefined && Buffer.concat(chunks).includes('\r\n\r\n')) {
        answeredAt = Date.now();
        timer = setTimeout(() => finish(false), waitMs);
      }
    });
    // The server may reset a connection it closes while this side still sends: the answer read so far counts.
    socket.on('error', () => undefined);
    socket.on('close', () => finish(true));
    socket.on('end', () => finish(true));
  });
}
