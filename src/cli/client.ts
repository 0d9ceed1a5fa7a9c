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

/**
 * One request and its whole answer as text, over node:http(s). Not fetch: its first use loads
 * undici and compiles its WebAssembly parser, which doubled the CPU of a short CLI run.
 */
function send(url: URL, method: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { method, headers }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    const timer = setTimeout(() => req.destroy(new Error(`no connection within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
    req.on('socket', (socket) => {
      if (!socket.connecting) clearTimeout(timer);
      else socket.once('connect', () => clearTimeout(timer));
    });
    req.on('close', () => clearTimeout(timer));
    req.on('error', reject);
    req.end();
  });
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
    const url = new URL(`/api/v1/${path}`, this.base);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    let res: { status: number; text: string };
    try {
      res = await send(url, method, this.authorization ? { authorization: this.authorization } : {});
    } catch (err) {
      throw new ClientError(`cannot reach layover at ${this.base.origin}: ${(err as Error).message}`);
    }
    const { text } = res;
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (res.status >= 200 && res.status < 300) {
      if (body === undefined) throw new ClientError(`${this.base.origin} did not answer with JSON: is it a layover?`);
      return body as T;
    }
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

export function humanBytes(n: number | undefined): string {
  if (n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return i === 0 ? `${value} B` : `${value.toFixed(1)} ${units[i]}`;
}

export function shortTime(iso: string | undefined): string {
  return iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-';
}

/** Left-aligned columns (right-aligned where `right` says), two spaces apart. */
export function table(header: string[], rows: string[][], right: number[] = []): string {
  // A loop, not Math.max(...rows): tens of thousands of arguments would overflow the stack.
  const widths = header.map((h, i) => rows.reduce((w, r) => Math.max(w, (r[i] ?? '').length), h.length));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right.includes(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
