// What `layover ls | rm | gc | du` share: where the running layover is, whose credentials to
// use, one JSON call to its /api/v1, and turning every failure into one clear line.
import { readFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { dockerConfigFile, isLoopbackHost } from './login.js';
import { promptHidden } from './password-input.js';
import { UsageError } from './args.js';

export const CLIENT_OPTIONS = {
  url: { type: 'string' },
  user: { type: 'string', short: 'u' },
  json: { type: 'boolean' },
} as const;

export const CLIENT_HELP = `Connection:
      --url URL         the running layover, a URL or HOST:PORT (http:// for loopback hosts,
                        else https://); else $LAYOVER_URL, else http://127.0.0.1:5000
  -u, --user NAME[:PASSWORD]
                        credentials; NAME alone takes $LAYOVER_PASSWORD or asks on the
                        terminal (else $LAYOVER_USER and $LAYOVER_PASSWORD, else what
                        'layover login' stored for the URL's host)
      --json            print the API's JSON answer instead of a table`;

export const DEFAULT_URL = 'http://127.0.0.1:5000';

export class ClientError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
    this.name = 'ClientError';
  }
}

export interface ClientValues { url?: string; user?: string; json?: boolean }

/** The stored `auths` entry for a host, also under its loopback twin (localhost ↔ 127.0.0.1). */
async function storedCredentials(host: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  let doc: { auths?: Record<string, { auth?: string }> };
  try {
    doc = JSON.parse(await readFile(dockerConfigFile(env), 'utf8')) as typeof doc;
  } catch {
    return undefined;
  }
  const twins = [host, host.replace(/^localhost(?=:|$)/, '127.0.0.1'), host.replace(/^127\.0\.0\.1(?=:|$)/, 'localhost')];
  for (const key of twins.flatMap((h) => [h, `http://${h}`, `https://${h}`])) {
    const auth = doc.auths?.[key]?.auth;
    if (auth) return auth;
  }
  return undefined;
}

/**
 * The running layover's base URL. A bare `host:port` is accepted as `layover login` takes it:
 * plain HTTP for loopback hosts, HTTPS for every other.
 */
export function baseUrl(raw: string, source = '--url'): URL {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `${isLoopbackHost(raw.replace(/\/.*$/, '')) ? 'http' : 'https'}://${raw}`;
  let base: URL;
  try {
    base = new URL(withScheme);
  } catch {
    throw new UsageError(`${source}: "${raw.slice(0, 200)}" is not a URL nor a host:port`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new UsageError(`${source}: "${raw.slice(0, 200)}" must be http:// or https://`);
  return base;
}

async function askPassword(user: string): Promise<string> {
  if (!process.stdin.isTTY) throw new UsageError(`--user ${user}: no terminal to ask for the password; pass --user ${user}:PASSWORD or set LAYOVER_PASSWORD`);
  return promptHidden(`Password for ${user}: `);
}

/** How long a connection may take before the call gives up (what fetch waits, too). */
const CONNECT_TIMEOUT_MS = 10_000;

/** An answer as it came: its status, content type, Link header and body. */
export interface RawAnswer {
  status: number;
  type: string;
  link?: string;
  body: Buffer;
}

/**
 * One request and its whole answer, over node:http(s). Not fetch: its first use loads undici and
 * compiles its WebAssembly parser, which doubled the CPU of a short CLI run. `sent` resolves once
 * the request has left (its socket flushed), so a caller can work while the server answers.
 */
function send(url: URL, method: string, headers: Record<string, string>): { sent: Promise<void>; answer: Promise<RawAnswer> } {
  let flushed!: () => void;
  const sent = new Promise<void>((resolve) => (flushed = resolve));
  const answer = new Promise<RawAnswer>((resolve, reject) => {
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { method, headers }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let length = 0;
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        length += chunk.length;
      });
      res.on('error', reject);
      // One copy into one buffer of the total length (a 10,000-repository page is ~0.5 MB as TSV).
      res.on('end', () => {
        const link = res.headers.link;
        resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] ?? '', ...(typeof link === 'string' ? { link } : {}), body: Buffer.concat(chunks, length) });
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`no connection within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
    req.on('socket', (socket) => {
      if (!socket.connecting) clearTimeout(timer);
      else socket.once('connect', () => clearTimeout(timer));
    });
    req.on('finish', flushed);
    req.on('close', () => {
      clearTimeout(timer);
      flushed();
    });
    req.on('error', reject);
    req.end();
  });
  return { sent, answer };
}

/** The `after` cursor of a Link header's rel="next" URL (as the API's TSV pages carry it). */
export function nextAfter(link: string | undefined): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(',')) {
    const m = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (!m || !/(^|;)\s*rel="?next"?\s*(;|$)/.test(m[2]!)) continue;
    return new URL(m[1]!, 'http://x').searchParams.get('after') ?? undefined;
  }
  return undefined;
}

export class LayoverClient {
  private constructor(
    readonly base: URL,
    private readonly authorization: string | undefined,
  ) {}

  static async from(values: ClientValues, env: NodeJS.ProcessEnv = process.env): Promise<LayoverClient> {
    const base = baseUrl(values.url ?? env.LAYOVER_URL ?? DEFAULT_URL, values.url !== undefined ? '--url' : 'LAYOVER_URL');
    let basic: string | undefined;
    if (values.user !== undefined) {
      const colon = values.user.indexOf(':');
      if (colon === 0 || values.user === '') throw new UsageError('--user needs a user name: NAME or NAME:PASSWORD');
      // NAME alone: the password from $LAYOVER_PASSWORD, else asked on the terminal (never echoed).
      const credentials = colon !== -1 ? values.user : `${values.user}:${env.LAYOVER_PASSWORD ?? (await askPassword(values.user))}`;
      basic = Buffer.from(credentials).toString('base64');
    } else if (env.LAYOVER_USER) {
      basic = Buffer.from(`${env.LAYOVER_USER}:${env.LAYOVER_PASSWORD ?? ''}`).toString('base64');
    } else {
      basic = await storedCredentials(base.host, env);
    }
    return new LayoverClient(base, basic && `Basic ${basic}`);
  }

  async call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, params: Record<string, string> = {}): Promise<T> {
    return this.start<T>(method, path, params).answer;
  }

  /**
   * A call whose answer may be awaited later: `sent` resolves once the request is on its way, so
   * the caller can format one page while the server works out the next.
   */
  start<T>(method: 'GET' | 'POST' | 'DELETE', path: string, params: Record<string, string> = {}): { sent: Promise<void>; answer: Promise<T> } {
    const request = this.startRaw(method, path, params);
    return { sent: request.sent, answer: request.answer.then((res) => this.json<T>(res)) };
  }

  /**
   * As start, but the successful answer as it came (its content type says what the body is:
   * `accept` may ask for another form than JSON). Failures are the same ClientErrors.
   */
  startRaw(method: 'GET' | 'POST' | 'DELETE', path: string, params: Record<string, string> = {}, accept?: string): { sent: Promise<void>; answer: Promise<RawAnswer> } {
    const url = new URL(`/api/v1/${path}`, this.base);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    const headers: Record<string, string> = {};
    if (this.authorization) headers.authorization = this.authorization;
    if (accept) headers.accept = accept;
    const request = send(url, method, headers);
    return {
      sent: request.sent,
      answer: request.answer.then(
        (res) => this.checked(res),
        (err: unknown) => {
          throw new ClientError(`cannot reach layover at ${this.base.origin}: ${(err as Error).message}`);
        },
      ),
    };
  }

  /** A successful answer's JSON body (an answer that is not JSON: not a layover). */
  json<T>(res: RawAnswer): T {
    const body = parseJson(res.body);
    if (body === undefined) throw new ClientError(`${this.base.origin} did not answer with JSON: is it a layover?`);
    return body as T;
  }

  /** The answer when it is a success; else the ClientError its status and error JSON say. */
  private checked(res: RawAnswer): RawAnswer {
    if (res.status >= 200 && res.status < 300) return res;
    const body = parseJson(res.body);
    const message = (body as { error?: { message?: string } } | undefined)?.error?.message ?? `HTTP ${res.status}`;
    if (res.status === 401) {
      throw new ClientError(this.authorization ? 'authentication failed: bad user name or password' : 'authentication required: pass --user NAME:PASSWORD, set LAYOVER_USER/LAYOVER_PASSWORD, or run layover login', 401);
    }
    if (res.status === 403) throw new ClientError(`permission denied: ${message}`, 403);
    if (res.status === 404 && (body as { error?: unknown } | undefined)?.error === undefined) {
      throw new ClientError(`${this.base.origin} has no /api/v1: is it a layover?`, 404);
    }
    throw new ClientError(message, res.status);
  }
}

function parseJson(body: Buffer): unknown {
  try {
    return body.length ? JSON.parse(body.toString('utf8')) : undefined;
  } catch {
    return undefined;
  }
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function humanBytes(n: number | undefined): string {
  if (n === undefined) return '-';
  let value = n;
  let i = 0;
  while (value >= 1024 && i < UNITS.length - 1) {
    value /= 1024;
    i++;
  }
  return i === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[i]}`;
}

export function shortTime(iso: string | undefined): string {
  if (!iso) return '-';
  // What toISOString writes (YYYY-MM-DDTHH:MM:SS.sssZ), cut without a regex: ls prints 50,000 of them.
  if (iso.length === 24 && iso.charCodeAt(10) === 84 /* T */ && iso.charCodeAt(19) === 46 /* . */ && iso.charCodeAt(23) === 90 /* Z */) return `${iso.slice(0, 10)} ${iso.slice(11, 19)}Z`;
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/**
 * Columns of a table added to page by page (ls: while the next page is on its way), kept as one
 * array of strings per column; widths grow as rows come, and the text is built once at the end.
 */
export class TableBuilder {
  private readonly columns: string[][];
  private readonly widths: number[];
  private readonly right: boolean[];

  constructor(private readonly header: string[], right: number[] = []) {
    this.columns = header.map(() => []);
    this.widths = header.map((h) => h.length);
    this.right = header.map((_, i) => right.includes(i));
  }

  get rows(): number {
    return this.columns[0]?.length ?? 0;
  }

  add(cells: string[]): void {
    for (let i = 0; i < this.columns.length; i++) {
      const c = cells[i] ?? '';
      this.columns[i]!.push(c);
      if (c.length > this.widths[i]!) this.widths[i] = c.length;
    }
  }

  /** Left-aligned columns (right-aligned where `right` says), two spaces apart, no trailing blanks. */
  toString(): string {
    const n = this.columns.length;
    const blanks = ' '.repeat(Math.max(0, ...this.widths));
    const lines = new Array<string>(this.rows + 1);
    for (let r = -1; r < this.rows; r++) {
      let out = '';
      for (let i = 0; i < n; i++) {
        const c = r < 0 ? this.header[i]! : this.columns[i]![r]!;
        const gap = blanks.slice(0, this.widths[i]! - c.length);
        if (i) out += '  ';
        if (this.right[i]) out += gap + c;
        else out += i === n - 1 ? c : c + gap;
      }
      lines[r + 1] = out.trimEnd();
    }
    return lines.join('\n');
  }
}

/** Left-aligned columns (right-aligned where `right` says), two spaces apart. */
export function table(header: string[], rows: string[][], right: number[] = []): string {
  const builder = new TableBuilder(header, right);
  for (const r of rows) builder.add(r);
  return builder.toString();
}

export function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** Text already in bytes (a large table), with the closing line break, in one write. */
export function printBytes(text: Buffer): void {
  process.stdout.write(Buffer.concat([text, NEWLINE]));
}

const NEWLINE = Buffer.from('\n');

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
