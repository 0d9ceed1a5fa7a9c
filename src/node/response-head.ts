// The head of an HTTP/1.1 response from the registry: the status line and header fields, read
// from raw socket bytes because the node role forwards bodies from its own reused read buffers
// (slabs.ts), which node:http's client cannot read into. Strict (RFC 9112): anything it does not
// understand (obs-fold, bad names, conflicting framing) is an error, answered 502, never guessed.

export type HeaderMap = Record<string, string | string[]>;

export interface ResponseHead {
  status: number;
  headers: HeaderMap;
  /** Bytes the head took, including the blank line. */
  length: number;
}

export class ResponseHeadError extends Error {}

/** A registry's head is a few hundred bytes; anything near this is not one. */
export const MAX_HEAD_BYTES = 64 * 1024;

const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: [^\r\n]*)?$/;
const FIELD_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible characters, spaces and tabs, and obs-text; no CR, LF or NUL.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** The end of the head in `bytes` (the index after CRLFCRLF), or -1 while it is incomplete. */
export function headEnd(bytes: Buffer): number {
  const at = bytes.indexOf('\r\n\r\n', 0, 'latin1');
  return at < 0 ? -1 : at + 4;
}

export function parseResponseHead(bytes: Buffer): ResponseHead | undefined {
  const end = headEnd(bytes);
  if (end < 0) {
    if (bytes.length > MAX_HEAD_BYTES) throw new ResponseHeadError('response head too large');
    return undefined;
  }
  if (end > MAX_HEAD_BYTES) throw new ResponseHeadError('response head too large');
  const lines = bytes.toString('latin1', 0, end - 4).split('\r\n');
  const match = STATUS_LINE.exec(lines[0] ?? '');
  if (!match) throw new ResponseHeadError('malformed status line');
  const headers: HeaderMap = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new ResponseHeadError('malformed header line');
    const name = line.slice(0, colon);
    // A name followed by whitespace, or a line starting with it (obs-fold), is refused.
    if (!FIELD_NAME.test(name)) throw new ResponseHeadError('malformed header name');
    const value = line.slice(colon + 1).trim();
    if (!FIELD_VALUE.test(value)) throw new ResponseHeadError('malformed header value');
    const key = name.toLowerCase();
    const seen = headers[key];
    headers[key] = seen === undefined ? value : [...[seen].flat(), value];
  }
  return { status: Number(match[1]), headers, length: end };
}

export type BodyFraming = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' };

/** How the body of a response to `method` is delimited (RFC 9112 §6.3). */
export function bodyFraming(method: string, head: ResponseHead): BodyFraming {
  if (method === 'HEAD' || head.status < 200 || head.status === 204 || head.status === 304) return { kind: 'none' };
  const encoding = head.headers['transfer-encoding'];
  const length = head.headers['content-length'];
  if (encoding !== undefined) {
    // A length beside a transfer coding is how responses get smuggled: refuse it.
    if (length !== undefined) throw new ResponseHeadError('both Content-Length and Transfer-Encoding');
    const codings = [encoding].flat().join(',').split(',').map((c) => c.trim().toLowerCase());
    if (codings.at(-1) !== 'chunked') return { kind: 'close' };
    if (codings.length !== 1) throw new ResponseHeadError('unsupported transfer coding');
    return { kind: 'chunked' };
  }
  if (length !== undefined) {
    const values = new Set([length].flat().join(',').split(',').map((v) => v.trim()));
    const [only] = values;
    if (values.size !== 1 || only === undefined || !/^\d{1,15}$/.test(only)) throw new ResponseHeadError('invalid Content-Length');
    return { kind: 'length', length: Number(only) };
  }
  return { kind: 'close' };
}
