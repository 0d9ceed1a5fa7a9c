// An error answered before the request's body was read closes the connection. Go's net/http
// (which Docker Distribution runs on) does so when more than 256 KiB would be left to read; here
// any unread rest closes, as a chunked body's size is unknown until it ends. Otherwise Node keeps
// the connection alive and reads the rest of the body only to discard it: a client streaming a
// large or endless body (a chunked manifest over the size limit, a refused upload chunk) keeps
// sending into a request that has already been answered, and the connection stays open until the
// keep-alive timeout.
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { lingerOnClose } from './close-gently.js';

/** True when the request announced a body that has not been received in full. */
export function hasUnreadBody(req: IncomingMessage): boolean {
  if (req.complete) return false;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
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
