// The Pod mutation as a pure function: (Pod, namespace, settings, registry health) → JSON Patch.
// The patch is the diff between the Pod and a mutated copy, so it only ever touches what changed.
import jsonpatch, { type Operation } from 'fast-json-patch';
import { CONTAINER_KINDS, type Container, type ContainerKind, type Pod, type PodSpec } from './types.js';
import { decideImage, type MirrorTarget } from './rewrite.js';

export interface MutationSettings {
  target: MirrorTarget;
  pullSecretName: string;
  originalImagesAnnotation: string;
  /** Label or annotation whose value "true" opts a Pod out. */
  optOutLabel: string;
  /** Namespaces never touched: layover's own and kube-system. */
  skipNamespaces: ReadonlySet<string>;
  /** Whether pulling from layover needs the pull secret (auth on, anonymous pulls off). */
  pullSecretRequired: boolean;
}

export interface MutationInput {
  operation: string;
  subResource?: string;
  namespace: string;
  pod: Pod;
  oldPod?: Pod;
  registryHealthy: boolean;
}

export type Outcome = 'mutated' | 'unchanged' | 'skipped';
export type Reason =
  | 'rewritten'
  | 'pull-secret-added'
  | 'already-mirrored'
  | 'no-mirrored-images'
  | 'opt-out'
  | 'system-namespace'
  | 'static-pod'
  | 'registry-unhealthy'
  | 'update-without-pull-secret'
  | 'unsupported-operation';

export interface MutationResult {
  patch: Operation[];
  warnings: string[];
  outcome: Outcome;
  reason: Reason;
}

export const MIRROR_POD_ANNOTATION = 'kubernetes.io/config.mirror';

/** The original images, per container kind and name, as recorded in the annotation. */
export type OriginalImages = Partial<Record<ContainerKind, Record<string, string>>>;

const WARNING_PREFIX = 'layover: ';
const MAX_WARNING = 240;

function warn(warnings: string[], text: string): void {
  const full = WARNING_PREFIX + text;
  warnings.push(full.length > MAX_WARNING ? `${full.slice(0, MAX_WARNING - 1)}…` : full);
}

function skipped(reason: Reason, warnings: string[] = []): MutationResult {
  return { patch: [], warnings, outcome: 'skipped', reason };
}

function optedOut(pod: Pod, key: string): boolean {
  return pod.metadata?.labels?.[key] === 'true' || pod.metadata?.annotations?.[key] === 'true';
}

/** Which containers this request may change: all on CREATE, only what the user is changing on UPDATE. */
function candidates(input: MutationInput, kind: ContainerKind, container: Container): boolean {
  if (input.operation === 'CREATE') return true;
  const old = input.oldPod?.spec?.[kind]?.find((c) => c.name === container.name);
  // An UPDATE that leaves an image alone must not change it: a new image restarts the container.
  return old === undefined || old.image !== container.image;
}

function readOriginals(value: string | undefined): OriginalImages | undefined {
  if (value === undefined) return {};
  try {
    const parsed: unknown = JSON.parse(value);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
    const result: OriginalImages = {};
    for (const kind of CONTAINER_KINDS) {
      const entry = (parsed as Record<string, unknown>)[kind];
      if (entry === undefined) continue;
      if (typeof entry !== 'object' || entry === null) return undefined;
      result[kind] = { ...(entry as Record<string, string>) };
    }
    return result;
  } catch {
    return undefined;
  }
}

export function mutatePod(input: MutationInput, settings: MutationSettings): MutationResult {
  const { pod, namespace } = input;
  if (settings.skipNamespaces.has(namespace)) return skipped('system-namespace');
  if (pod.metadata?.annotations?.[MIRROR_POD_ANNOTATION] !== undefined) return skipped('static-pod');
  if (optedOut(pod, settings.optOutLabel)) return skipped('opt-out');

  const isCreate = input.operation === 'CREATE' && !input.subResource;
  const isEphemeralUpdate = input.operation === 'UPDATE' && input.subResource === 'ephemeralcontainers';
  const isUpdate = input.operation === 'UPDATE' && !input.subResource;
  if (!isCreate && !isUpdate && !isEphemeralUpdate) return skipped('unsupported-operation');
  // The ephemeralcontainers subresource can change nothing but ephemeral containers; a Pod UPDATE can't change them.
  const kinds: readonly ContainerKind[] = isEphemeralUpdate ? ['ephemeralContainers'] : isUpdate ? ['initContainers', 'containers'] : CONTAINER_KINDS;

  const warnings: string[] = [];
  const rewrites: Array<{ kind: ContainerKind; index: number; name: string; from: string; to: string }> = [];
  let usesMirror = false;
  for (const kind of CONTAINER_KINDS) {
    for (const [index, container] of (pod.spec?.[kind] ?? []).entries()) {
      const image = container.image;
      if (image === undefined) continue;
      const decision = decideImage(image, settings.target);
      if (decision.kind === 'ours') {
        usesMirror = true;
        continue;
      }
      if (!kinds.includes(kind) || !candidates(input, kind, container)) continue;
      if (decision.kind === 'invalid') warn(warnings, `${container.name}: ${decision.message}; left unchanged`);
      else if (decision.kind === 'not-mirrored') warn(warnings, `${container.name}: ${decision.domain} is not mirrored; ${image} left unchanged`);
      else if (container.imagePullPolicy === 'Never') warn(warnings, `${container.name}: imagePullPolicy Never; ${image} left unchanged`);
      else rewrites.push({ kind, index, name: container.name, from: image, to: decision.image });
    }
  }

  if (rewrites.length && !input.registryHealthy) {
    warn(warnings, `registry ${settings.target.publicHost} is unreachable; images left unchanged`);
    return skipped('registry-unhealthy', warnings);
  }
  const hasSecret = (pod.spec?.imagePullSecrets ?? []).some((s) => s.name === settings.pullSecretName);
  if (rewrites.length && !isCreate && settings.pullSecretRequired && !hasSecret) {
    // imagePullSecrets cannot change after creation; without it the mirrored image would not pull.
    warn(warnings, `Pod has no ${settings.pullSecretName} pull secret (it can only be added at creation); images left unchanged`);
    return skipped('update-without-pull-secret', warnings);
  }

  // Copy on write: only the objects that change are copied, the rest is shared with the input
  // (which is never modified), so a review costs little more than the diff itself.
  const spec: PodSpec = { ...pod.spec };
  const mutated: Pod = pod.spec ? { ...pod, spec } : { ...pod };
  for (const kind of new Set(rewrites.map((r) => r.kind))) spec[kind] = (spec[kind] ?? []).map((c) => ({ ...c }));
  for (const r of rewrites) (spec[r.kind] as Container[])[r.index]!.image = r.to;

  if (isCreate && rewrites.length) {
    const annotations: Record<string, string> = { ...pod.metadata?.annotations };
    mutated.metadata = { ...pod.metadata, annotations };
    const originals = readOriginals(annotations[settings.originalImagesAnnotation]);
    if (originals === undefined) {
      warn(warnings, `annotation ${settings.originalImagesAnnotation} is not layover's; original images not recorded`);
    } else {
      for (const r of rewrites) {
        const recorded = (originals[r.kind] ??= {});
        // Recorded once: a reinvocation or a second webhook's change never replaces the first original.
        if (recorded[r.name] === undefined) recorded[r.name] = r.from;
      }
      annotations[settings.originalImagesAnnotation] = JSON.stringify(originals);
    }
  }
  if (isCreate && (usesMirror || rewrites.length) && !hasSecret) {
    // Appended, so the Pod's own secrets keep their order and precedence.
    spec.imagePullSecrets = [...(pod.spec?.imagePullSecrets ?? []), { name: settings.pullSecretName }];
  }

  const patch = jsonpatch.compare(pod, mutated);
  if (!patch.length) return { patch, warnings, outcome: 'unchanged', reason: usesMirror ? 'already-mirrored' : 'no-mirrored-images' };
  return { patch, warnings, outcome: 'mutated', reason: rewrites.length ? 'rewritten' : 'pull-secret-added' };
}
