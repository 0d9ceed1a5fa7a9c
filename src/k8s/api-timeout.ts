// Every Kubernetes API call gets a deadline: an apiserver (or a proxy in front of it) that
// accepts a request and never answers must not stall the controller's queue forever.
// client-node 1.x passes a RequestContext's AbortSignal to fetch, so a middleware sets one per
// request; the aborted fetch rejects with an AbortError, which kube.ts reports as a timeout.
import * as k8s from '@kubernetes/client-node';

export const API_TIMEOUT_MS = 10_000;

/** Like KubeConfig.makeApiClient, with a per-request timeout. */
export function makeTimedApiClient<T>(kc: k8s.KubeConfig, api: new (config: k8s.Configuration) => T, timeoutMs: number): T {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('No active cluster!');
  const deadline: k8s.Middleware = {
    async pre(context) {
      context.setSignal(AbortSignal.timeout(timeoutMs));
      return context;
    },
    async post(context) {
      return context;
    },
  };
  return new api(k8s.createConfiguration({
    baseServer: new k8s.ServerConfiguration(cluster.server, {}),
    authMethods: { default: kc },
    promiseMiddleware: [deadline],
  }));
}
