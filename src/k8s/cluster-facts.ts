// What the webhook reads about the cluster besides Pods: whether the node role's DaemonSet has
// ready Pods (the node path works), and the platforms of the nodes (which images to prefetch).
// A separate small client beside kube.ts, which belongs to the controller's informers.
import * as k8s from '@kubernetes/client-node';
import { call } from './kube-call.js';

export interface Platform { os: string; architecture: string }

export interface ClusterFacts {
  /** status.numberReady of a DaemonSet; throws KubeError (404 when it does not exist). */
  daemonSetReadyPods(namespace: string, name: string): Promise<number>;
  /** The distinct os/architecture pairs the nodes report. */
  nodePlatforms(): Promise<Platform[]>;
}

export function createClusterFacts(kubeConfig?: k8s.KubeConfig): ClusterFacts {
  const kc = kubeConfig ?? new k8s.KubeConfig();
  if (!kubeConfig) kc.loadFromDefault();
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  return {
    async daemonSetReadyPods(namespace, name) {
      const ds = await call('read daemonset', () => apps.readNamespacedDaemonSet({ namespace, name }));
      return ds.status?.numberReady ?? 0;
    },
    async nodePlatforms() {
      const nodes = await call('list nodes', () => core.listNode());
      const seen = new Map<string, Platform>();
      for (const node of nodes.items) {
        const info = node.status?.nodeInfo;
        if (!info?.operatingSystem || !info.architecture) continue;
        seen.set(`${info.operatingSystem}/${info.architecture}`, { os: info.operatingSystem, architecture: info.architecture });
      }
      return [...seen.values()];
    },
  };
}
