// Forwards one request to the registry and its answer back, both bodies streamed as they come
// (a 10 GiB layer push or pull never sits in memory). The client side is node:http (it parses
// whatever clients send); the registry side is a raw socket per request, read into reused
// slabs (slabs.ts), whose response head is parsed here (response-head.ts). A 256 MiB pull
// through node:http's client took 3-7x the direct GET and peaked at 85-90 MiB RSS; through
// slabs, one write per read, it stays near the bare process.
// One connection per request (`Connection: close`): no pool whose idle sockets the registry
// may close under a new request, and inside the cluster a TCP handshake costs well under a
// millisecond next to any pull.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { cachedLookup } from './cached-lookup.js';
import { ChunkedDecoder } from './chunked-decoder.js';
import { requestHeaders, responseHeaders } from './headers.js';
import type { NodeLogger } from './line-logger.js';
import { bodyFraming, parseResponseHead, type BodyFraming } from './response-head.js';
import { releaseSlab, takeSlab } from './slabs.js';

const CRLF = Buffer.from('\r\n');

export interface ForwardOptions {
  /** The registry's origin (`http://layover-registry.layover.svc:5000`). */
  registryOrigin: string;
  /** This role's own `host:port`, for clients that send no Host. */
  nodeHost: string;
  logger: NodeLogger;
  /** Connecting to the registry; default 10 s. */
  connectTimeoutMs?: number;
  /** No byte either way for this long ends the exchange; default 5 min (a cold mirror pull may wait long for its first byte). */
  idleTimeoutMs?: number;
}

/** A body is there when the framing says so; GETs without one must not get `Transfer-Encoding: chunked`. */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** In the registry's error format, so clients show it like any other registry error. */
function answerError(res: ServerResponse, status: number, code: string, message: string): void {
  const body = JSON.stringify({ errors: [{ code, message }] });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** The request line and fields for the registry; node:http has already refused CR/LF in any of them. */
function requestHead(method: string, target: string, headers: Record<string, string | string[]>): string {
  let head = `${method} ${target} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    for (const one of [value].flat()) head += `${name}: ${one}\r\n`;
  }
  return `${head}connection: close\r\n\r\n`;
}

export function forwarder(options: ForwardOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { registryOrigin, logger, connectTimeoutMs = 10_000, idleTimeoutMs = 300_000 } = options;
  const url = new URL(registryOrigin);
  const registryHost = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const registryPort = Number(url.port || 80);
  const lookup = cachedLookup();

  return (req, res) => {
    const target = req.url ?? '/';
    const method = req.method ?? 'GET';
    // The absolute form (a client using us as a forward proxy) is not ours to follow.
    if (!target.startsWith('/')) return answerError(res, 400, 'UNSUPPORTED', 'request target must be a path');
    const host = req.headers.host ?? options.nodeHost;
    const nodeOrigin = `http://${host}`;
    const withBody = hasBody(req);
    const headers = requestHeaders(req.headers, { remoteAddress: req.socket.remoteAddress, host });
    // node:http has decoded the client's framing; the registry gets a length, or chunks of ours.
    const chunkedRequest = withBody && headers['content-length'] === undefined;
    if (!withBody) delete headers['content-length'];
    if (chunkedRequest) headers['transfer-encoding'] = 'chunked';

    let finished = false;
    let head = Buffer.alloc(0);
    let framing: BodyFraming | undefined;
    let remaining = 0;
    let decoder: ChunkedDecoder | undefined;

    const fail = (reason: string, code?: string) => {
      if (finished) return;
      finished = true;
      socket.destroy();
      // Only the method, path and a reason: headers may carry credentials.
      logger.warn({ method, path: target.split('?')[0], reason, code }, 'forwarding to the registry failed');
      if (!res.headersSent) answerError(res, 502, 'UNAVAILABLE', 'the registry cannot be reached from this node');
      // Mid-body: cut the connection, so the client sees a broken transfer, never a short one.
      else res.destroy();
    };
    const finish = () => {
      if (finished) return;
      finished = true;
      res.end();
      socket.destroy();
    };

    /** Hands body bytes to the client; false asks the socket to stop reading until the client drains. */
    const deliver = (bytes: Buffer, slab: Buffer | undefined): boolean => {
      let flowing = true;
      if (framing?.kind === 'chunked') {
        if (slab) releaseSlab(slab);
        const { data } = (decoder ??= new ChunkedDecoder()).push(bytes);
        for (const piece of data) flowing = res.write(piece) && flowing;
        if (decoder.done) finish();
      } else if (framing?.kind === 'length') {
        const piece = bytes.length > remaining ? bytes.subarray(0, remaining) : bytes;
        remaining -= piece.length;
        flowing = piece.length === 0 || res.write(piece, () => slab && releaseSlab(slab));
        if (piece.length === 0 && slab) releaseSlab(slab);
        if (remaining === 0) finish();
      } else {
        flowing = res.write(bytes, () => slab && releaseSlab(slab));
      }
      return flowing;
    };

    const startBody = (rest: Buffer): boolean => {
      if (framing?.kind === 'none') {
        finish();
        return true;
      }
      if (framing?.kind === 'length') {
        remaining = framing.length;
        if (remaining === 0) {
          finish();
          return true;
        }
      }
      return rest.length ? deliver(rest, undefined) : true;
    };

    const onHeadBytes = (bytes: Buffer): boolean => {
      head = head.length ? Buffer.concat([head, bytes]) : Buffer.from(bytes);
      for (;;) {
        const parsed = parseResponseHead(head);
        if (!parsed) return true;
        // An interim answer (we send no Expect, but a registry may still say 100) precedes the real one.
        if (parsed.status >= 100 && parsed.status < 200) {
          if (parsed.status === 101) throw new Error('the registry switched protocols');
          head = head.subarray(parsed.length);
          continue;
        }
        framing = bodyFraming(method, parsed);
        res.writeHead(parsed.status, responseHeaders(parsed.headers, registryOrigin, nodeOrigin));
        const rest = head.subarray(parsed.length);
        head = Buffer.alloc(0);
        return startBody(rest);
      }
    };

    const socket: Socket = connect({
      host: registryHost,
      port: registryPort,
      lookup,
      noDelay: true,
      onread: {
        buffer: takeSlab,
        callback: (nread: number, slab: Uint8Array): boolean => {
          if (finished) return false;
          const buf = slab as Buffer;
          let flowing: boolean;
          try {
            if (framing === undefined) {
              flowing = onHeadBytes(buf.subarray(0, nread));
              // The head was copied out; the slab is free again.
              releaseSlab(buf);
            } else {
              flowing = deliver(buf.subarray(0, nread), buf);
            }
          } catch (err) {
            fail((err as Error).message);
            return false;
          }
          if (!flowing && !finished) {
            res.once('drain', () => socket.resume());
            return false;
          }
          return true;
        },
      },
    });
    socket.setTimeout(connectTimeoutMs);
    socket.once('connect', () => socket.setTimeout(idleTimeoutMs));
    socket.on('timeout', () => fail('timed out', 'ETIMEDOUT'));
    socket.on('error', (err: NodeJS.ErrnoException) => fail(err.message, err.code));
    socket.on('end', () => {
      // Only a body delimited by the connection's end may end here; anything else is cut short.
      if (framing?.kind === 'close') finish();
      else fail(framing ? 'the registry closed mid-body' : 'the registry closed before answering', 'ECONNRESET');
    });
    // A client that hangs up stops the registry's side too, so an abandoned pull frees its connection.
    res.once('close', () => {
      if (!finished) {
        finished = true;
        socket.destroy();
      }
    });

    socket.write(requestHead(method, target, headers));
    if (!withBody) return;
    req.on('data', (chunk: Buffer) => {
      if (finished) return;
      let flowing: boolean;
      if (chunkedRequest) {
        // Every write of a chunk is queued whatever the ones before it returned; corked, they go out as one.
        socket.cork();
        socket.write(`${chunk.length.toString(16)}\r\n`);
        socket.write(chunk);
        flowing = socket.write(CRLF);
        socket.uncork();
      } else {
        flowing = socket.write(chunk);
      }
      if (!flowing) {
        req.pause();
        socket.once('drain', () => req.resume());
      }
    });
    req.once('end', () => {
      if (chunkedRequest && !finished) socket.write('0\r\n\r\n');
    });
    req.once('error', () => fail('the client\'s request body failed'));
  };
}
