// Which Pods of a namespace may still pull from the mirror: while any does, removing the
// namespace's pull secret would break its next pull (a restart, a node losing its image cache),
// so the controller keeps the secret until they are gone.
import type { PodSummary } from '../k8s/kube.js';

/** Phases after which a Pod never starts a container again. */
const FINISHED_PHASES = new Set(['Succeeded', 'Failed']);

/**
 * Names of the Pods that reference the mirror: an image under one of `hosts`, or the webhook's
 * original-images annotation (it rewrote the Pod, whatever host it rewrote to).
 */
export function podsUsingMirror(pods: readonly PodSummary[], hosts: readonly string[], originalImagesAnnotation: string): string[] {
  const prefixes = hosts.map((h) => `${h.toLowerCase()}/`);
  return pods
    .filter((pod) => !FINISHED_PHASES.has(pod.phase ?? ''))
    .filter((pod) => pod.annotations[originalImagesAnnotation] !== undefined
      || pod.images.some((image) => prefixes.some((prefix) => image.toLowerCase().startsWith(prefix))))
    .map((pod) => pod.name);
}
