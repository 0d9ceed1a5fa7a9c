// Readiness of the node role: ready only while the registry answers its own /readyz. The answer
// is cached for a moment, so that probes from the kubelet (and anyone else on the node) cost
// the registry at most one request per `ttlMs`, and concurrent probes share one request.
import type { Dispatcher } from 'undici';

export interface ProbeOptions {
  registryOrigin: string;
  dispatcher: Dispatcher;
  /** How long an answer is reused. */
  ttlMs?: number;
  /** A registry slower than this counts as down: the kubelet's probe times out after 1 s by default. */
  timeoutMs?: number;
}

export function registryProbe(options: ProbeOptions): () => Promise<boolean> {
  const { registryOrigin, dispatcher, ttlMs = 1_000, timeoutMs = 800 } = options;
  let checkedAt = -Infinity;
  let last = false;
  let pending: Promise<boolean> | undefined;

  async function check(): Promise<boolean> {
    try {
      const { statusCode, body } = await dispatcher.request({
        origin: registryOrigin,
        path: '/readyz',
        method: 'GET',
        signal: AbortSignal.timeout(timeoutMs),
      });
      await body.dump();
      return statusCode === 200;
    } catch {
      return false;
    }
  }

  return () => {
    if (performance.now() - checkedAt < ttlMs) return Promise.resolve(last);
    pending ??= check().then((ready) => {
      last = ready;
      checkedAt = performance.now();
      pending = undefined;
      return ready;
    });
    return pending;
  };
}
