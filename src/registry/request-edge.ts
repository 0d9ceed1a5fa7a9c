// The answers given before fastify routes a request: whatever node's HTTP parser or server, or
// fastify's router, refuses (control bytes, a malformed line or %-escape, over-long headers, no
// Host, CONNECT, an unknown Expect) is answered in the Distribution error format, never in
// fastify's own or node's bare one.
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { closeGently, lingerOnClose } from './close-gently.js';
import { RegistryError } from './errors.js';
import { targetAt, targetRefusal } from './request-target.js';
import { hasUnreadBody } from './unread-body.js';

/** An error answer's body and headers, for the answers written below fastify's reply. */
function errorAnswer(error: RegistryError): { body: string; headers: Record<string, string> } {
  const body = JSON.stringify(error.body());
  const headers = { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(Buffer.byteLength(body)), 'Docker-Distribution-API-Version': 'registry/2.0' };
  return { body, headers };
}

/** The raw bytes of an error answer that closes the connection. */
function closingAnswer(error: RegistryError): string {
  const { body, headers } = errorAnswer(error);
  const lines = Object.entries({ ...headers, Connection: 'close' }).map(([name, value]) => `${name}: ${value}\r\n`);
  return `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? 'Error'}\r\n${lines.join('')}\r\n${body}`;
}

/** node's clientError and its parser's error fields. */
interface ClientError extends Error {
  code?: string;
  bytesParsed?: number;
  rawPacket?: unknown;
}

function clientRefusal(err: ClientError): RegistryError {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return new RegistryError('UNSUPPORTED', 'request timed out', undefined, { status: 408 });
  if (err.code === 'HPE_HEADER_OVERFLOW') return new RegistryError('UNSUPPORTED', 'request header fields too large', undefined, { status: 431 });
  if (err.code === 'HPE_INVALID_URL' && Buffer.isBuffer(err.rawPacket) && typeof err.bytesParsed === 'number') {
    const target = targetAt(err.rawPacket, err.bytesParsed);
    if (target !== undefined) return targetRefusal(target);
  }
  return new RegistryError('UNSUPPORTED', 'malformed HTTP request', undefined, { status: 400 });
}

/** node's response under way on the socket, if any. */
function inFlight(socket: Socket): ServerResponse | undefined {
  return (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage ?? undefined;
}

/**
 * fastify's clientErrorHandler: a request node's parser refused. The parser has lost its place, so
 * the connection ends after the answer. When the bad bytes follow a request still being answered
 * (pipelined, or trailing a body), that answer is let finish first, then the connection closes;
 * when they are inside that request's own body, nothing more can be answered and it is dropped.
 */
export function answerClientError(err: ClientError, socket: Socket): void {
  // The parser, once failed, fails again on every later read of the same connection: answered once, the
  // connection is already closing gently (destroying it now would reset it and could lose the answer).
  if (err.code === 'ECONNRESET' || socket.destroyed || socket.writableEnded) return;
  const response = inFlight(socket);
  if (response) {
    if (!response.req.complete) {
      socket.destroy();
      return;
    }
    if (!response.headersSent) response.shouldKeepAlive = false;
    response.once('finish', () => closeGently(socket));
    return;
  }
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.write(closingAnswer(clientRefusal(err)));
  closeGently(socket);
}

/**
 * The server's 'connect' listener: node drops a CONNECT without a word when nothing listens. A
 * registry is no proxy: 405 in the error format, and the connection closes.
 */
export function answerConnect(_req: IncomingMessage, socket: Duplex): void {
  socket.write(closingAnswer(new RegistryError('UNSUPPORTED', 'CONNECT is not supported', undefined, { status: 405 })));
  closeGently(socket);
}

/**
 * The server's 'checkExpectation' listener: an Expect other than 100-continue. node answers 417
 * with an empty body; Go's net/http (Docker Distribution) answers 417 too. Here it is the error
 * format, and the connection closes, as the body the client may send was not wanted.
 */
export function answerExpectation(_req: IncomingMessage, res: ServerResponse): void {
  const { body, headers } = errorAnswer(new RegistryError('UNSUPPORTED', 'only the 100-continue expectation is supported', undefined, { status: 417 }));
  if (res.socket) lingerOnClose(res.socket as Socket);
  res.writeHead(417, { ...headers, Connection: 'close' });
  res.end(body);
}

/**
 * onRequest: RFC 9112 §3.2, an HTTP/1.1 request without a Host header is answered 400. node's own
 * check (turned off in app.ts) answers it with an empty body; here it is the error format.
 */
export function requireHost(req: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  if (req.raw.httpVersion !== '1.1' || req.headers.host !== undefined) return done();
  const { body, headers } = errorAnswer(new RegistryError('UNSUPPORTED', 'an HTTP/1.1 request needs a Host header', undefined, { status: 400 }));
  reply.code(400).headers({ ...headers, Connection: 'close' }).send(body);
}

/**
 * fastify's frameworkErrors: a URL the router cannot take (a malformed %-escape, an over-long
 * path) is answered in the Distribution error format too, not fastify's own JSON (which also
 * echoed the path).
 */
export function answerFrameworkError(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 400;
  const { body, headers } = errorAnswer(new RegistryError('UNSUPPORTED', 'malformed request URL', undefined, { status }));
  // This answer bypasses fastify's hooks: a body still arriving closes the connection here (unread-body.ts says why).
  const close = hasUnreadBody(req.raw) && reply.raw.socket !== null;
  if (close) lingerOnClose(reply.raw.socket as Socket);
  reply.raw.writeHead(status, close ? { ...headers, Connection: 'close' } : headers);
  reply.raw.end(body);
}
