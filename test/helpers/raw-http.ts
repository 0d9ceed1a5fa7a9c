// One HTTP exchange sent exactly as written (undici's dispatcher: no client-side normalisation of
// `..` or `%2e`), answered with status, headers and the whole body: what the API tests inspect.
import type { Readable } from 'node:stream';
import { getGlobalDispatcher } from 'undici';

export interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }

export async function rawRequest(origin: string, method: string, target: string, headers: Record<string, string> = {}, body?: Buffer | Readable): Promise<Answer> {
  const res = await getGlobalDispatcher().request({ origin, path: target, method: method as 'GET', headers, body });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
}
