// Errors of Kubernetes API calls, reduced to what is safe to log (kube-call.ts makes them). This
// module loads no Kubernetes client, so code that only recognises these errors (the webhook's
// self-signed certificate mode) does not pull @kubernetes/client-node into a process without one.

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
