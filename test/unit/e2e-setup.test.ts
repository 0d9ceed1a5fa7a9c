// The end-to-end suite's set-up, checked where no Docker runs: the tool version checks it does up
// front, and the kind cluster it makes for each kube-proxy mode.
import { describe, expect, it } from 'vitest';
import { MIN_KUBECTL, kindVersion, kubectlVersion } from '../e2e/cluster.js';
import { KUBE_PROXY_MODES, UPSTREAM, kindClusterFor, readKindCluster } from '../e2e/manifests.js';

describe('end-to-end set-up', () => {
  it('reads kubectl\'s and kind\'s versions, and refuses output it cannot read', () => {
    expect(kubectlVersion(JSON.stringify({ clientVersion: { major: '1', minor: '32', gitVersion: 'v1.32.4' } }))).toEqual({ major: 1, minor: 32 });
    expect(kubectlVersion(JSON.stringify({ clientVersion: { major: '1', minor: '30+' } }))).toEqual({ major: 1, minor: 30 });
    expect(() => kubectlVersion('{}')).toThrow(/cannot read kubectl's version/);
    expect(kindVersion('kind v0.27.0 go1.23.6 linux/amd64')).toEqual({ major: 0, minor: 27 });
    expect(() => kindVersion('kind: command output changed')).toThrow(/cannot read kind's version/);
    expect(MIN_KUBECTL.minor).toBeGreaterThanOrEqual(30);
  });

  it('one kind cluster per kube-proxy mode: iptables, ipvs, nftables, each with the upstream\'s host port mapped to loopback', async () => {
    expect([...KUBE_PROXY_MODES]).toEqual(['iptables', 'ipvs', 'nftables']);
    const base = await readKindCluster();
    for (const mode of KUBE_PROXY_MODES) {
      const cluster = kindClusterFor(base, mode, new Map([[30500, 41000], [UPSTREAM.hostPort, 41001]]));
      expect(cluster.networking?.kubeProxyMode).toBe(mode);
      expect(cluster.nodes[0]?.extraPortMappings).toContainEqual({ containerPort: UPSTREAM.hostPort, hostPort: 41001, listenAddress: '127.0.0.1', protocol: 'TCP' });
    }
    expect(base.networking?.kubeProxyMode).toBe('iptables');
  });
});
