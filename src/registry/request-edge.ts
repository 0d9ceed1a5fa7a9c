// What happens to a request before fastify routes it: the absolute form of the request target is
// served as its path, and whatever node's HTTP parser or fastify's router refuses (control bytes,
// a malformed line or %-escape, over-long headers) is answered in the Distribution error format,
// never fastify's own.
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { closeGently, lingerOnClose } from './close-gently.js';
import { assertDigest } from './digest.js';
import { RegistryError } from './errors.js';
import { assertRepositoryName } from './names.js';
import { parseEndpoint } from './routes/path.js';
import { parseReference } from './service.js';
import { hasUnreadBody } from './unread-body.js';

/** `http://authority/path?query`: the absolute form (RFC 9112 §3.2.2); the scheme is case-insensitive. */
const ABSOLUTE_FORM = /^https?:\/\/([^/?#]*)(.*)$/is;

/**
 * fastify's rewriteUrl. RFC 9112 §3.2.2: a server MUST accept the absolute form, and an origin
 * server then ignores the Host header and uses the target's authority. Go's net/http does exactly
 * that (the URL's path is routed, its host becomes the request's Host), so Docker Distribution
 * serves `GET http://host/v2/ HTTP/1.1` as `GET /v2/`; so does layover, rather than refusing what
 * a client sending through a proxy-minded stack may well send. The path is kept as written (no
 * `..` resolution or re-encoding), so the route's grammars judge it as they judge any other.
 */
export function originForm(req: IncomingMessage): string {
  const url = req.url ?? '/';
  if (url.startsWith('/')) return url;
  const m = ABSOLUTE_FORM.exec(url);
  if (!m) return url;
  const [, authority = '', rest = ''] = m;
  // Userinfo has no place in an http(s) URI's Host (RFC 9110 §4.2.4): drop it.
  const host = authority.slice(authority.lastIndexOf('@') + 1);
  if (host) req.headers.host = host;
  return rest.startsWith('/') ? rest : `/${rest}`;
}

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

/**
 * The error a request target with a byte the parser refuses gets: the code the route gives the
 * part that holds it (NAME_INVALID in a repository name, TAG_INVALID or DIGEST_INVALID in a
 * reference, DIGEST_INVALID in a blob digest), else 400 UNSUPPORTED.
 */
export function targetRefusal(target: string): RegistryError {
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  const endpoint = path.startsWith('/v2/') ? parseEndpoint(path.slice('/v2/'.length)) : undefined;
  try {
    if (endpoint && 'name' in endpoint) {
      assertRepositoryName(endpoint.name);
      if (endpoint.kind === 'manifest') parseReference(endpoint.reference);
      if (endpoint.kind === 'blob' || endpoint.kind === 'referrers') assertDigest(endpoint.digest);
    }
  } catch (err) {
    if (err instanceof RegistryError) return err;
    throw err;
  }
  return new RegistryError('UNSUPPORTED', 'invalid character in request URL', undefined, { status: 400 });
}

/** The request target on the line where the parser stopped: `METHOD SP target SP version`. */
function targetAt(packet: Buffer, offset: number): string | undefined {
  const text = packet.toString('latin1');
  const start = text.lastIndexOf('\n', offset - 1) + 1;
  const end = text.indexOf('\n', offset);
  const line = text.slice(start, end === -1 ? undefined : end).replace(/\r$/, '');
  const first = line.indexOf(' ');
  const last = line.lastIndexOf(' ');
  return first !== -1 && last > first ? line.slice(first + 1, last) : undefined;
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
  lingerOnClose(res.socket as Socket);
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
