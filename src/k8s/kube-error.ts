// Errors of Kubernetes API calls, reduced to what is safe to log: client-node's ApiException
// carries the request's headers (the ServiceAccount token) in its message, so only the status
// code and the operation survive.
import * as k8s from '@kubernetes/client-node';

/** A failed API call: the HTTP status (0 when there was no answer) and a message safe to log. */
export class KubeError extends Error {
  constructor(readonly status: number, operation: string) {
    super(status ? `kubernetes API ${operation}: HTTP ${status}` : `kubernetes API ${operation}`);
    this.name = 'KubeError';
  }
}

export const isNotFound = (err: unknown) => err instanceof KubeError && err.status === 404;
export const isConflict = (err: unknown) => err instanceof KubeError && err.status === 409;
/** The resourceVersion a watch asked for is no longer in the server's history: list again. */
export const isGone = (err: unknown) => err instanceof KubeError && err.status === 410;

/** Runs one API call and turns any failure into a KubeError. */
export async function call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof k8s.ApiException) throw new KubeError(err.code, operation);
    // An AbortError here is the per-request deadline of api-timeout.ts.
    const name = (err as Error).name === 'AbortError' ? 'timed out' : (err as NodeJS.ErrnoException).code ?? (err as Error).name;
    throw new KubeError(0, `${operation} (${name})`);
  }
}
