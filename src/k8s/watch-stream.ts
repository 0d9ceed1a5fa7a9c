// One watch request: GET <path>?watch=true&resourceVersion=… streamed as JSON lines, with the
// kubeconfig's credentials and TLS settings. Written on node:http rather than client-node's
// Watch because that one cannot be aborted before the response headers arrive (it hands out its
// AbortController only then) and sets no deadline, so a silent apiserver would hang it forever.
import http from 'node:http';
import https from 'node:https';
import { createInterface } from 'node:readline';
import type * as k8s from '@kubernetes/client-node';
import { KubeError } from './kube-error.js';

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export interface WatchRequest {
  path: string;
  resourceVersion: string;
  /** Asked of the server, which then ends the stream cleanly; the client gives up a little later. */
  timeoutSeconds: number;
  /** How long to wait for the response headers. */
  connectTimeoutMs: number;
  signal: AbortSignal;
}

/** Resolves when the server ends the stream; rejects with a KubeError (e.g. 410) or on abort/timeout. */
export async function watchStream<T>(kc: k8s.KubeConfig, req: WatchRequest, onEvent: (event: WatchEvent<T>) => void): Promise<void> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('No active cluster!');
  const url = new URL(cluster.server + req.path);
  url.searchParams.set('watch', 'true');
  url.searchParams.set('allowWatchBookmarks', 'true');
  url.searchParams.set('timeoutSeconds', String(req.timeoutSeconds));
  if (req.resourceVersion) url.searchParams.set('resourceVersion', req.resourceVersion);
  const init = await kc.applyToFetchOptions({});
  const headers: Record<string, string> = {};
  new Headers(init.headers as ConstructorParameters<typeof Headers>[0]).forEach((value, name) => { headers[name] = value; });
  const agent = typeof init.agent === 'function' ? init.agent(url) : init.agent;

  const deadline = AbortSignal.timeout(req.timeoutSeconds * 1000 + req.connectTimeoutMs);
  const signal = AbortSignal.any([req.signal, deadline]);
  return new Promise<void>((resolve, reject) => {
    const client = url.protocol === 'https:' ? https : http;
    const request = client.request(url, { method: 'GET', headers, agent, signal }, (res) => {
      clearTimeout(connectTimer);
      if (res.statusCode !== 200) {
        res.resume();
        reject(new KubeError(res.statusCode ?? 0, 'watch'));
        return;
      }
      const lines = createInterface({ input: res, crlfDelay: Infinity });
      // readline re-emits the response's errors (a reset, an abort); unhandled, they would throw.
      lines.on('error', reject);
      // Settle first, then hang up: the stream's own 'end' must not turn a failure into success.
      const fail = (err: Error) => {
        reject(err);
        request.destroy();
      };
      lines.on('line', (line) => {
        if (!line.trim()) return;
        let event: WatchEvent<T>;
        try {
          event = JSON.parse(line) as WatchEvent<T>;
        } catch {
          fail(new KubeError(0, 'watch (malformed event)'));
          return;
        }
        try {
          onEvent(event);
        } catch (err) {
          fail(err as Error);
        }
      });
      res.on('end', () => resolve());
      res.on('error', reject);
      res.on('close', () => (res.complete ? resolve() : reject(new KubeError(0, 'watch (connection closed)'))));
    });
    const connectTimer = setTimeout(() => request.destroy(new KubeError(0, `watch (no answer within ${req.connectTimeoutMs} ms)`)), req.connectTimeoutMs);
    request.on('error', (err) => {
      clearTimeout(connectTimer);
      reject(err);
    });
    request.end();
  });
}
