// One HTTP exchange sent exactly as written (undici's dispatcher: no client-side normalisation of
// `..` or `%2e`), answered with status, headers and the whole body: what the API tests inspect.
import { connect } from 'node:net';
import type { Readable } from 'node:stream';
import { getGlobalDispatcher } from 'undici';

export interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }

export async function rawRequest(origin: string, method: string, target: string, headers: Record<string, string> = {}, body?: Buffer | Readable): Promise<Answer> {
  const res = await getGlobalDispatcher().request({ origin, path: target, method: method as 'GET', headers, body });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
}

/**
 * Sends a GET on a bare socket and hangs up once `afterBytes` of the answer (headers included)
 * have arrived; resolves with how many had. For "a client that goes away mid-body".
 */
export function getAndHangUp(origin: string, target: string, afterBytes: number): Promise<number> {
  const { hostname, port } = new URL(origin);
  return new Promise((resolve) => {
    let seen = 0;
    const socket = connect(Number(port), hostname, () => socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`));
    socket.on('data', (chunk: Buffer) => {
      seen += chunk.length;
      if (seen >= afterBytes) socket.destroy();
    });
    socket.on('close', () => resolve(seen));
    socket.on('error', () => undefined);
  });
}

/** A GET on a bare socket whose reader stalls for `stallMs` first, so the server's writes queue up; resolves with the body. */
export function getSlowly(origin: string, target: string, stallMs: number): Promise<Buffer> {
  const { hostname, port } = new URL(origin);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(Number(port), hostname, () => {
      socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      socket.pause();
      setTimeout(() => socket.resume(), stallMs);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => {
      const all = Buffer.concat(chunks);
      resolve(all.subarray(all.indexOf('\r\n\r\n') + 4));
    });
    socket.on('error', reject);
  });
}
