// The request target: the absolute form served as its path, and the error a target gets when
// node's parser refuses a byte in it.
import type { IncomingMessage } from 'node:http';
import { assertDigest } from './digest.js';
import { RegistryError } from './errors.js';
import { assertRepositoryName } from './names.js';
import { parseEndpoint } from './routes/path.js';
import { parseReference } from './service.js';

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
export function targetAt(packet: Buffer, offset: number): string | undefined {
  const text = packet.toString('latin1');
  const start = text.lastIndexOf('\n', offset - 1) + 1;
  const end = text.indexOf('\n', offset);
  const line = text.slice(start, end === -1 ? undefined : end).replace(/\r$/, '');
  const first = line.indexOf(' ');
  const last = line.lastIndexOf(' ');
  return first !== -1 && last > first ? line.slice(first + 1, last) : undefined;
}
