// An error answered before the request's body was read closes the connection. Go's net/http
// (which Docker Distribution runs on) does so when more than 256 KiB would be left to read; here
// any unread rest closes, as a chunked body's size is unknown until it ends. Otherwise Node keeps
// the connection alive and reads the rest of the body only to discard it: a client streaming a
// large or endless body (a chunked manifest over the size limit, a refused upload chunk) keeps
// sending into a request that has already been answered, and the connection stays open until the
// keep-alive timeout.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

/**
 * How long a closing connection keeps reading (and discarding) after its answer has been sent and
 * its write side shut: a socket closed with unread bytes, or bytes still arriving, sends a TCP
 * reset, and a reset can reach the client before it has read the answer (Go waits 500 ms too).
 */
export const LINGER_MS = 500;

/** True when the request announced a body that has not been received in full. */
export function hasUnreadBody(req: IncomingMessage): boolean {
  if (req.complete) return false;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Node ends a `Connection: close` answer with `socket.destroySoon()`, which destroys the socket
 * as soon as the answer is written. Here the write side is shut instead (the client sees the end
 * of the answer) and the socket destroyed after LINGER_MS, still discarding what arrives.
 */
function lingerOnClose(socket: Socket): void {
  socket.destroySoon = () => {
    socket.end();
    socket.resume();
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  };
}

export function closeOnUnreadBody(app: FastifyInstance): void {
  app.addHook('onSend', (req, reply, payload, done) => {
    // The response's socket: the request's is unset once its body stream was destroyed.
    const socket = reply.raw.socket;
    if (socket && reply.statusCode >= 400 && hasUnreadBody(req.raw)) {
      reply.header('Connection', 'close');
      lingerOnClose(socket);
    }
    done(null, payload);
  });
}
