// Offline schema checks for rendered Kubernetes objects, from two generated sources:
// - @kubernetes/client-node's models (attributeTypeMap), walked recursively: an unknown field or
//   a value of the wrong type anywhere is a problem (kubectl apply would reject or drop it);
// - kubernetes-models (and @kubernetes-models/cert-manager): the OpenAPI schema's required
//   fields, enums and formats, which the first source does not carry.
import * as k8s from '@kubernetes/client-node';
import type { K8sObject } from '../e2e/manifests.js';

interface Attribute { name: string; baseName: string; type: string; format: string }
type ModelClass = { getAttributeTypeMap(): Attribute[] };

const models = k8s as unknown as Record<string, unknown>;

function modelNamed(name: string): ModelClass | undefined {
  const candidate = models[name] as Partial<ModelClass> | undefined;
  return typeof candidate?.getAttributeTypeMap === 'function' ? (candidate as ModelClass) : undefined;
}

/** `apps/v1` + `StatefulSet` → `V1StatefulSet`; undefined for API groups client-node does not model. */
export function modelNameOf(apiVersion: string, kind: string): string | undefined {
  const version = apiVersion.split('/').pop() ?? '';
  const name = `${version.charAt(0).toUpperCase()}${version.slice(1)}${kind}`;
  return modelNamed(name) ? name : undefined;
}

const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function walk(value: unknown, type: string, format: string, where: string, problems: string[]): void {
  const array = /^Array<(.+)>$/.exec(type);
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) problems.push(`${where}: expected a list`);
    else value.forEach((item, i) => walk(item, array[1] as string, '', `${where}[${i}]`, problems));
  } else if (map) {
    if (!isMapping(value)) problems.push(`${where}: expected a mapping`);
    else for (const [key, item] of Object.entries(value)) walk(item, map[1] as string, '', `${where}.${key}`, problems);
  } else if (type === 'string') {
    if (typeof value !== 'string') problems.push(`${where}: expected a string, got ${JSON.stringify(value)}`);
  } else if (type === 'number') {
    if (typeof value !== 'number' || (/^int/.test(format) && !Number.isInteger(value))) problems.push(`${where}: expected a number${format ? ` (${format})` : ''}, got ${JSON.stringify(value)}`);
  } else if (type === 'boolean') {
    if (typeof value !== 'boolean') problems.push(`${where}: expected true or false, got ${JSON.stringify(value)}`);
  } else if (type === 'Date') {
    if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) problems.push(`${where}: expected a timestamp`);
  } else if (type === 'IntOrString') {
    if (typeof value !== 'string' && !Number.isInteger(value)) problems.push(`${where}: expected an integer or a string`);
  } else if (type === 'any' || type === 'object') {
    // free-form by definition
  } else {
    const model = modelNamed(type);
    if (!model) throw new Error(`${where}: no client-node model named ${type}`);
    if (!isMapping(value)) {
      problems.push(`${where}: expected a mapping (${type})`);
      return;
    }
    const attributes = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a]));
    for (const [key, item] of Object.entries(value)) {
      const attribute = attributes.get(key);
      if (!attribute) problems.push(`${where}.${key}: unknown field of ${type}`);
      else if (item !== null) walk(item, attribute.type, attribute.format, `${where}.${key}`, problems);
    }
  }
}

/** Unknown fields and wrong types, by client-node's model of the object's kind. */
export function structuralProblems(obj: K8sObject): string[] {
  const name = modelNameOf(obj.apiVersion, obj.kind);
  if (!name) throw new Error(`${obj.apiVersion} ${obj.kind}: no client-node model`);
  const problems: string[] = [];
  walk(obj, name, '', `${obj.kind}/${obj.metadata.name}`, problems);
  return problems;
}

type Validating = new (data: unknown) => { validate(): void };

/** The kubernetes-models module that models this apiVersion and kind. */
function modelModule(apiVersion: string, kind: string): string {
  if (apiVersion.startsWith('cert-manager.io/')) return `@kubernetes-models/cert-manager/${apiVersion}/${kind}`;
  return `kubernetes-models/${apiVersion}/${kind}`;
}

/** Required fields, enums and formats by the OpenAPI schema (kubernetes-models); [] when valid. */
export async function openApiProblems(obj: K8sObject): Promise<string[]> {
  const mod = (await import(modelModule(obj.apiVersion, obj.kind))) as Record<string, unknown>;
  const Model = mod[obj.kind] as Validating | undefined;
  if (!Model) throw new Error(`${obj.apiVersion} ${obj.kind}: no kubernetes-models class`);
  try {
    new Model(obj).validate();
    return [];
  } catch (err) {
    return [`${obj.kind}/${obj.metadata.name}: ${(err as Error).message}`];
  }
}

/** Every schema problem of `obj`: both sources for Kubernetes kinds, the OpenAPI one for CRDs. */
export async function schemaProblems(obj: K8sObject): Promise<string[]> {
  const structural = modelNameOf(obj.apiVersion, obj.kind) ? structuralProblems(obj) : [];
  return [...structural, ...(await openApiProblems(obj))];
}
