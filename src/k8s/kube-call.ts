// One Kubernetes API call, its failure reduced to a KubeError: client-node's ApiException carries
// the request's headers (the ServiceAccount token) in its message, so only the status code and
// the operation survive.
import * as k8s from '@kubernetes/client-node';
import { KubeError } from './kube-error.js';

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
