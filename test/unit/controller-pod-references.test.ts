import { describe, expect, it } from 'vitest';
import { podsUsingMirror } from '../../src/controller/pod-references.js';
import type { PodSummary } from '../../src/k8s/kube.js';

const HOSTS = ['localhost:30500', '127.0.0.1:30500'];
const ANNOTATION = 'layover.dev/original-images';
const pod = (name: string, images: string[], extra: Partial<PodSummary> = {}): PodSummary => ({ name, images, annotations: {}, phase: 'Running', ...extra });

describe('Pods that still use the mirror', () => {
  it('are those with an image under a mirror host, or rewritten by the webhook (annotation)', () => {
    const pods = [
      pod('rewritten', ['docker.io/library/busybox:1', '127.0.0.1:30500/docker.io/library/nginx:1']),
      pod('upper-case-host', ['LOCALHOST:30500/ghcr.io/a/b:1']),
      pod('annotated', ['nginx:1'], { annotations: { [ANNOTATION]: '{}' } }),
      pod('other-port', ['localhost:30501/docker.io/library/nginx:1']),
      pod('host-as-prefix-of-name', ['localhost:30500x/nginx:1']),
      pod('plain', ['nginx:1']),
    ];
    expect(podsUsingMirror(pods, HOSTS, ANNOTATION)).toEqual(['rewritten', 'upper-case-host', 'annotated']);
  });

  it('leave out Pods that have finished: they never pull again', () => {
    const pods = [
      pod('done', ['localhost:30500/a:1'], { phase: 'Succeeded' }),
      pod('failed', ['localhost:30500/a:1'], { phase: 'Failed' }),
      pod('pending', ['localhost:30500/a:1'], { phase: 'Pending' }),
      pod('no-status', ['localhost:30500/a:1'], { phase: undefined }),
    ];
    expect(podsUsingMirror(pods, HOSTS, ANNOTATION)).toEqual(['pending', 'no-status']);
  });
});
