// Readiness of the node role: ready only while the registry answers its own /readyz. The answer
// is cached for a moment, so that probes from the kubelet (and anyone else on the node) cost
// the registry at most one request per `ttlMs`, and concurrent probes share one request.
import { request, type Agent } from 'node:http';

export interface ProbeOptions {
  registryOrigin: string;
  agent: Agent;
  /** How long an answer is reused. */
  ttlMs?: number;
  /** A registry slower than this counts as down: the kubelet's probe times out after 1 s by default. */
  timeoutMs?: number;
}

function answersReady(registryOrigin: string, agent: Agent, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(new URL('/readyz', registryOrigin), { agent, signal: AbortSignal.timeout(timeoutMs) }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode === 200));
      res.once('error', () => resolve(false));
    });
    req.once('error', () => resolve(false));
    req.end();
  });
}

export function registryProbe(options: ProbeOptions): () => Promise<boolean> {
  const { registryOrigin, agent, ttlMs = 1_000, timeoutMs = 800 } = options;
  let checkedAt = -Infinity;
  let last = false;
  let pending: Promise<boolean> | undefined;
  return () => {
    if (performance.now() - checkedAt < ttlMs) return Promise.resolve(last);
    pending ??= answersReady(registryOrigin, agent, timeoutMs).then((ready) => {
      last = ready;
      checkedAt = performance.now();
      pending = undefined;
      return ready;
    });
    return pending;
  };
}
