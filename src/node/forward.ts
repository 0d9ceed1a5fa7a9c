// Forwards one request to the registry and its answer back, both bodies streamed as they come
// (a 10 GiB layer push or pull never sits in memory), over a pool of keep-alive connections.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Logger } from '../log.js';
// A leaf module (it imports only undici): the registry's read slabs, reused once a chunk's bytes
// are in the client's socket (see slabConnector in server.ts).
import { releaseChunk } from '../registry/proxy/slab-connector.js';
import { requestHeaders, responseHeaders } from './headers.js';

export interface ForwardOptions {
  /** The registry's origin (`http://layover-registry.layover.svc:5000`). */
  registryOrigin: string;
  /** This role's own `host:port`, for clients that send no Host. */
  nodeHost: string;
  dispatcher: Dispatcher;
  logger: Logger;
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

/**
 * The registry's response body into the client's response. Each chunk is a view of a socket read
 * slab; once the client's socket has taken its bytes (the write's callback) the slab may be read
 * into again, so a 256 MiB pull cycles through a few slabs instead of 4,096 fresh buffers that
 * wait for the garbage collector. Backpressure: the next chunk is taken when `res` drains.
 */
class ToClient extends Writable {
  constructor(private readonly res: ServerResponse) {
    super({ highWaterMark: 0 });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    const flowing = this.res.write(chunk, (err) => {
      if (!err) releaseChunk(chunk);
    });
    if (flowing) done();
    else this.res.once('drain', () => done());
  }

  override _final(done: (err?: Error | null) => void): void {
    this.res.end(() => done());
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    if (err) this.res.destroy();
    done(err);
  }
}

export function forwarder(options: ForwardOptions): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const { registryOrigin, dispatcher, logger } = options;
  return async (req, res) => {
    const target = req.url ?? '/';
    // The absolute form (a client using us as a forward proxy) is not ours to follow.
    if (!target.startsWith('/')) return answerError(res, 400, 'UNSUPPORTED', 'request target must be a path');
    const host = req.headers.host ?? options.nodeHost;
    const nodeOrigin = `http://${host}`;
    // A client that hangs up stops the registry's side too, so an abandoned pull frees its connection.
    const abort = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    try {
      await dispatcher.stream(
        {
          origin: registryOrigin,
          path: target,
          method: req.method as Dispatcher.HttpMethod,
          headers: requestHeaders(req.headers, { remoteAddress: req.socket.remoteAddress, host }),
          body: hasBody(req) ? req : null,
          signal: abort.signal,
        },
        ({ statusCode, headers }) => {
          res.writeHead(statusCode, responseHeaders(headers, registryOrigin, nodeOrigin));
          return new ToClient(res);
        },
      );
    } catch (err) {
      if (abort.signal.aborted) return;
      const code = (err as NodeJS.ErrnoException).code;
      // Only the method, path and error code: headers may carry credentials.
      logger.warn({ method: req.method, path: target.split('?')[0], code }, 'forwarding to the registry failed');
      if (!res.headersSent) answerError(res, 502, 'UNAVAILABLE', 'the registry cannot be reached from this node');
      // Mid-body: cut the connection, so the client sees a broken transfer, never a short one.
      else res.destroy();
    }
  };
}
