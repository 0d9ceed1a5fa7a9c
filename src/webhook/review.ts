// AdmissionReview v1 in and out: checks the shape of what kube-apiserver sent and builds the
// answer. A body that is not a review is refused with a message saying what is wrong.
import type { Operation } from 'fast-json-patch';
import type { AdmissionRequest, AdmissionReviewResponse, Pod } from './types.js';

export class ReviewError extends Error {
  override name = 'ReviewError';
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks that `body` is an AdmissionReview v1 request and returns its request. Throws ReviewError. */
export function readReview(body: unknown): AdmissionRequest {
  if (!isObject(body)) throw new ReviewError('body must be a JSON AdmissionReview object');
  if (body.apiVersion !== 'admission.k8s.io/v1') throw new ReviewError(`apiVersion must be admission.k8s.io/v1, got ${JSON.stringify(body.apiVersion ?? null)}`);
  if (body.kind !== 'AdmissionReview') throw new ReviewError(`kind must be AdmissionReview, got ${JSON.stringify(body.kind ?? null)}`);
  const request = body.request;
  if (!isObject(request)) throw new ReviewError('request is missing');
  if (typeof request.uid !== 'string' || request.uid === '') throw new ReviewError('request.uid must be a non-empty string');
  if (typeof request.operation !== 'string') throw new ReviewError('request.operation must be a string');
  if (request.subResource !== undefined && typeof request.subResource !== 'string') throw new ReviewError('request.subResource must be a string');
  if (request.namespace !== undefined && typeof request.namespace !== 'string') throw new ReviewError('request.namespace must be a string');
  if (request.object !== undefined && request.object !== null && !isObject(request.object)) throw new ReviewError('request.object must be an object');
  if (request.oldObject !== undefined && request.oldObject !== null && !isObject(request.oldObject)) throw new ReviewError('request.oldObject must be an object');
  return request as AdmissionRequest;
}

/** The request's object when it is a Pod whose container lists are well formed, else a reason it is not. */
export function podOf(object: unknown): { pod: Pod } | { problem: string } {
  if (!isObject(object)) return { problem: 'no object in the request' };
  if (object.kind !== undefined && object.kind !== 'Pod') return { problem: `object is a ${String(object.kind)}, not a Pod` };
  if (object.metadata !== undefined && !isObject(object.metadata)) return { problem: 'metadata is not an object' };
  const spec = object.spec;
  if (spec === undefined) return { pod: object as Pod };
  if (!isObject(spec)) return { problem: 'spec is not an object' };
  for (const key of ['containers', 'initContainers', 'ephemeralContainers', 'imagePullSecrets']) {
    const list = spec[key];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list) || !list.every(isObject)) return { problem: `spec.${key} is not a list of objects` };
    if (key !== 'imagePullSecrets' && !list.every((c) => typeof c.name === 'string' && (c.image === undefined || typeof c.image === 'string'))) {
      return { problem: `spec.${key} has a container without a name or with a non-string image` };
    }
  }
  return { pod: object as Pod };
}

export function reviewResponse(uid: string, patch: Operation[], warnings: string[]): AdmissionReviewResponse {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: {
      uid,
      allowed: true,
      ...(patch.length > 0 && { patchType: 'JSONPatch' as const, patch: Buffer.from(JSON.stringify(patch)).toString('base64') }),
      ...(warnings.length > 0 && { warnings }),
    },
  };
}
