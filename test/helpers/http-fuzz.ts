// Random, replayable HTTP requests against the Distribution API: a seeded PRNG and generators of
// hostile names, digests, references, methods, headers and bodies, written as raw bytes so that
// nothing a client library would normalise or refuse is lost.

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
  hex(n: number): string {
    let out = '';
    for (let i = 0; i < n; i++) out += '0123456789abcdef'[this.int(16)];
    return out;
  }
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

export interface FuzzRequest {
  method: string;
  /** The request target exactly as sent (origin or absolute form, maybe with raw control bytes). */
  target: string;
  headers: [string, string][];
  body: Buffer;
  /** The repository name aimed at, as written in the path (undefined: none). */
  name?: string;
  /** The body's framing is broken or promises more than is sent: the server may close without an answer. */
  framingBroken: boolean;
}

/** What the generator draws on: the server, credentials, and what earlier answers revealed. */
export interface FuzzWorld {
  host: string;
  /** A unique marker in the names this run writes, to find anything created outside the root. */
  marker: string;
  /** Namespaces the configured upstreams mirror. */
  mirrorPrefixes: string[];
  authorizations: string[];
  digests: string[];
  uploads: string[];
  manifests: Buffer[];
}

function names(w: FuzzWorld): string[] {
  const m = w.marker;
  return [
    `fuzz/${m}`, `fuzz/base`, `alice/${m}`, `alice/app`, `bob/${m}`, m, ...w.mirrorPrefixes.flatMap((p) => [`${p}/library/${m}`, `${p}/library/nginx`]),
    '..', '%2e%2e', `a/../${m}`, `a/%2e%2e/${m}`, `%2e%2e/%2e%2e/%2e%2e/tmp/${m}`, `../../../../../tmp/${m}`, `..%2f..%2ftmp%2f${m}`,
    '/', `a//${m}`, `/${m}`, `${m}/`, '%2f', `${m}%2f..`, `${m}%5c..%5c..`, `.${m}`, `${m}.`, `~${m}`, `${m.toUpperCase()}/x`,
    `caf\u00e9/${m}`, `caf%c3%a9/${m}`, `\u0430/${m}`, `%ef%bd%8c${m}`, `${m}\u2028x`, `${m}%00`, `${m}\x00x`, `${m}\x01`, `${m}%0a`, `${m}%0d%0ax:y`,
    `${m}\x7f`, `${m}\t`, `${m} x`, `${'a'.repeat(256)}`, `${'a/'.repeat(100)}${m}`, `${m}/${'b'.repeat(3000)}`, '_catalog', `${m}/blobs/uploads`,
    `${m}/manifests/x`, `${m}/tags/list`, `${m}?x=1`, `${m}#frag`, `${m}%23`, `${m}%`, `${m}%zz`, `${m}%c0%ae%c0%ae`,
  ];
}

function digests(w: FuzzWorld, r: Rng): string[] {
  return [
    ...w.digests, `sha256:${r.hex(64)}`, `sha512:${r.hex(128)}`, `sha256:${r.hex(63)}`, `sha256:${r.hex(64).toUpperCase()}`,
    `md5:${r.hex(32)}`, `sha1:${r.hex(40)}`, `sha384:${r.hex(96)}`, `blake3:${r.hex(64)}`, 'sha256:', ':', 'sha256', `sha256:${r.hex(64)}%00`,
    `sha256:${r.hex(64)}\x00`, `sha256:%2e%2e%2f${r.hex(58)}`, `sha256:${'a'.repeat(r.pick([200, 5000, 20_000]))}`, `sha256%3a${r.hex(64)}`,
    `SHA256:${r.hex(64)}`, `sha256+b64:${r.hex(64)}`, `sha256:${r.hex(32)}/${r.hex(31)}`, `sha256:..${r.hex(62)}`,
  ];
}

function references(w: FuzzWorld, r: Rng): string[] {
  return [
    'v1', 'latest', w.marker, '..', '%2e%2e', '.hidden', '-dash', 'x'.repeat(128), 'x'.repeat(129), 'a%2fb', 'a%00', 'a\x01', 'tag%20x',
    '%0a', 'caf\u00e9', ...digests(w, r),
  ];
}

function uploadIds(w: FuzzWorld, r: Rng): string[] {
  const uuid = `${r.hex(8)}-${r.hex(4)}-4${r.hex(3)}-a${r.hex(3)}-${r.hex(12)}`;
  return [...w.uploads, uuid, '..', '%2e%2e', `..%2f..%2f${w.marker}`, 'x'.repeat(5000), `${uuid}\x00`, `${uuid}%00`, ''];
}

function query(w: FuzzWorld, r: Rng): string {
  const params = [
    () => `digest=${r.pick(digests(w, r))}`, () => `mount=${r.pick(digests(w, r))}`, () => `from=${r.pick(names(w))}`, () => `n=${r.pick(['0', '1', '-1', '1e9', 'abc', '99999999999', '5'])}`,
    () => `last=${r.pick(names(w))}`, () => `tag=${r.pick(references(w, r))}`, () => `ns=${r.pick([...w.mirrorPrefixes, 'quay.io', '..', '%00', ''])}`,
    () => `artifactType=${r.pick(['application/x', '%00', 'a'.repeat(300)])}`, () => r.pick(['', '&', '=', '%', '%zz=1', 'digest', 'x=\x01']),
  ];
  const n = r.int(3);
  if (n === 0) return '';
  return `?${Array.from({ length: n }, () => r.pick(params)()).join('&')}`;
}

const MANIFEST_TYPES = [
  'application/vnd.oci.image.manifest.v1+json', 'application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json', 'application/vnd.docker.distribution.manifest.v1+prettyjws', 'application/json',
  'application/octet-stream', 'text/plain', 'application/x-www-form-urlencoded', '', 'a'.repeat(500), 'application/vnd.oci.image.manifest.v1+json; charset=\x01',
];

function path(w: FuzzWorld, r: Rng): { target: string; name?: string } {
  const name = r.pick(names(w));
  const kind = r.int(16);
  switch (kind) {
    case 0: return { target: `/v2/${name}/manifests/${r.pick(references(w, r))}`, name };
    case 1: return { target: `/v2/${name}/blobs/${r.pick(digests(w, r))}`, name };
    case 2: return { target: `/v2/${name}/blobs/uploads/`, name };
    case 3: return { target: `/v2/${name}/blobs/uploads/${r.pick(uploadIds(w, r))}`, name };
    case 4: return { target: `/v2/${name}/tags/list`, name };
    case 5: return { target: `/v2/${name}/referrers/${r.pick(digests(w, r))}`, name };
    case 6: return { target: r.pick(['/v2/_catalog', '/v2/', '/v2', '/v2/_catalog/x', '//v2/', '/v2/.', '/v2/..', '/v2/%2e%2e/', '/v3/', '/']) };
    case 7: return { target: r.pick(['/token', '/token/', '/api/v1/repositories', '/api/v1/gc', '/healthz', '/metrics', '/ui/', '/../../etc/passwd', '*']) };
    case 8: return { target: r.pick(w.uploads.length ? w.uploads : ['/v2/fuzz/base/blobs/uploads/x']), name: undefined };
    case 9: {
      const inner = path(w, r);
      return { target: `${r.pick(['http', 'HTTP', 'https', 'ftp'])}://${r.pick([w.host, 'evil.example', '', `user:pw@${w.host}`])}${inner.target}`, name: inner.name };
    }
    case 10: return { target: `/v2/${name}/${r.pick(['manifests', 'blobs', 'tags', 'referrers', 'blobs/uploads'])}/${r.pick(['', '/', '%2f', 'x/y', '..'])}`, name };
    default: {
      // A well-formed read of a mirror repository: what reaches an upstream.
      const mirrored = `${r.pick(w.mirrorPrefixes)}/library/${r.pick(['nginx', w.marker, 'a/b'])}`;
      const tail = r.chance(0.5) ? `manifests/${r.pick(['latest', 'v1', `sha256:${r.hex(64)}`])}` : r.pick([`blobs/sha256:${r.hex(64)}`, 'tags/list', `referrers/sha256:${r.hex(64)}`]);
      return { target: `/v2/${mirrored}/${tail}`, name: mirrored };
    }
  }
}

function authorization(w: FuzzWorld, r: Rng): string | undefined {
  const garbage = [
    'Basic', 'Basic ', 'Basic !!!', `Basic ${Buffer.from('admin').toString('base64')}`, `Basic ${Buffer.from('admin:wrong').toString('base64')}`,
    `Basic ${Buffer.from(':').toString('base64')}`, `Basic ${Buffer.from(`${'u'.repeat(5000)}:p`).toString('base64')}`, 'Bearer', 'Bearer x.y.z',
    `Bearer ${r.hex(40)}.${r.hex(40)}.${r.hex(40)}`, `Bearer ${'a'.repeat(8000)}`, 'Digest username="a"', 'basic YWRtaW46', '\x01', 'Bearer e30.e30.',
  ];
  if (r.chance(0.25)) return undefined;
  return r.chance(0.6) ? r.pick(w.authorizations) : r.pick(garbage);
}

function body(w: FuzzWorld, r: Rng): Buffer {
  switch (r.int(7)) {
    case 0: return Buffer.alloc(0);
    case 1: return r.bytes(r.int(2048));
    case 2: return r.pick(w.manifests);
    case 3: return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: r.pick(MANIFEST_TYPES), config: { mediaType: 'x', digest: r.pick(digests(w, r)), size: r.pick([0, -1, 1e20, 2]) }, layers: r.chance(0.5) ? [] : null, subject: r.chance(0.3) ? { digest: r.pick(digests(w, r)), size: 1, mediaType: 'x' } : undefined }));
    case 4: return Buffer.from(r.pick(['{}', '[]', 'null', '{"schemaVersion":1}', '{"manifests":[{}]}', '{', '\u0000', '{"schemaVersion":2,"layers":"x"}']));
    case 5: return Buffer.alloc(r.pick([5000, 70_000, 5 * 1024 * 1024]), 0x61);
    default: return Buffer.from('x');
  }
}

function chunked(data: Buffer, r: Rng): { bytes: Buffer; broken: boolean } {
  if (r.chance(0.8)) return { bytes: Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from('\r\n0\r\n\r\n')]), broken: false };
  // Broken framing: a size larger than the data, no last chunk, or a size that is not hex.
  return { bytes: Buffer.concat([Buffer.from(r.pick([`${(data.length + 10).toString(16)}\r\n`, 'zz\r\n', `${data.length.toString(16)};ext=\x01\r\n`, '-1\r\n'])), data]), broken: true };
}

export function fuzzRequest(w: FuzzWorld, r: Rng): FuzzRequest {
  const method = r.chance(0.93) ? r.pick(['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE']) : r.pick(['OPTIONS', 'TRACE', 'FOO', 'get', 'M-SEARCH', 'PROPFIND', 'CONNECT']);
  const { target: p, name } = path(w, r);
  const target = p.startsWith('/') || p.includes('://') ? `${p}${query(w, r)}` : p;
  const headers: [string, string][] = [];
  if (r.chance(0.97)) headers.push(['Host', r.pick([w.host, w.host, 'evil.example', '', 'a\x01b', 'x'.repeat(300)])]);
  const auth = authorization(w, r);
  if (auth !== undefined) headers.push(['Authorization', auth]);
  if (r.chance(0.5)) headers.push(['Content-Type', r.pick(MANIFEST_TYPES)]);
  if (r.chance(0.2)) headers.push(['Content-Range', r.pick(['0-0', '0-9', '10-19', '5-4', 'bytes 0-9/10', '0-', '-1-5', 'a-b', `0-${2 ** 60}`, '99999999999999999999-1'])]);
  if (r.chance(0.2)) headers.push(['Range', r.pick(['bytes=0-0', 'bytes=0-', 'bytes=-5', 'bytes=5-1', 'bytes=0-1,3-4', 'bytes=99999999-', 'items=0-1', 'bytes=x'])]);
  if (r.chance(0.1)) headers.push(['Accept', r.pick(MANIFEST_TYPES)]);
  if (r.chance(0.05)) headers.push(['Expect', r.pick(['100-continue', '100-continue', 'x'])]);
  if (r.chance(0.03)) headers.push(['Connection', 'Upgrade'], ['Upgrade', r.pick(['websocket', 'h2c', 'HTTP/2.0'])]);
  let data = method === 'GET' || method === 'HEAD' ? (r.chance(0.1) ? body(w, r) : Buffer.alloc(0)) : body(w, r);
  let framingBroken = false;
  const framing = r.int(10);
  if (framing === 0) {
    const encoded = chunked(data, r);
    headers.push(['Transfer-Encoding', 'chunked']);
    data = encoded.bytes;
    framingBroken = encoded.broken;
  } else if (framing === 1) {
    // A Content-Length that does not match the body: longer leaves the server waiting, shorter
    // leaves bytes that read as a second request.
    const declared = r.chance(0.5) ? data.length + 1 + r.int(1000) : Math.max(0, data.length - 1 - r.int(10));
    headers.push(['Content-Length', String(declared)]);
    framingBroken = declared > data.length;
  } else if (framing === 2) {
    headers.push(['Content-Length', r.pick(['abc', '-1', '1e3', '18446744073709551616', ' 1', '1, 2'])]);
  } else if (framing === 3 && data.length) {
    // Both, the body not chunk-encoded: request smuggling's shape.
    headers.push(['Content-Length', String(data.length)], ['Transfer-Encoding', 'chunked']);
    framingBroken = true;
  } else if (data.length || method !== 'GET') {
    headers.push(['Content-Length', String(data.length)]);
  }
  return { method, target, headers, body: data, name, framingBroken };
}

export function requestBytes(req: FuzzRequest): Buffer {
  const head = `${req.method} ${req.target} HTTP/1.1\r\n${req.headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'utf8'), req.body]);
}

/** One line a human can read, to report a failing request (control bytes escaped, long runs cut). */
export function describeRequest(req: FuzzRequest): string {
  const cut = (s: string): string => JSON.stringify(s.length > 300 ? `${s.slice(0, 300)}…(${s.length})` : s);
  return `${req.method} ${cut(req.target)} ${req.headers.map(([k, v]) => `${k}: ${cut(v)}`).join('; ')} body=${req.body.length}B`;
}
