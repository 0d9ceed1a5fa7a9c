// A ValidatingAdmissionPolicy evaluated as kube-apiserver does, with a CEL library standing in
// for its CEL engine: matchConditions (all true, else the request is not matched at all), then
// variables in order (each may use the earlier ones), then every validation; a validation that
// is false, or fails to evaluate under failurePolicy Fail, denies with its message.
import { evaluate } from '@marcbachmann/cel-js';
import { at, type K8sObject } from '../e2e/manifests.js';

export interface AdmissionRequest {
  operation: 'CREATE' | 'UPDATE' | 'DELETE';
  namespace: string;
  /** Empty on a CREATE that relies on generateName. */
  name: string;
  userInfo: { username: string; groups?: string[] };
  resource?: { group: string; version: string; resource: string };
}

export interface PolicyInput {
  request: AdmissionRequest;
  /** null on DELETE. */
  object: Record<string, unknown> | null;
  /** null on CREATE. */
  oldObject: Record<string, unknown> | null;
}

export type Decision = { matched: false; allowed: true } | { matched: true; allowed: boolean; message?: string };

interface Named { name: string; expression: string }
interface Validation { expression: string; message?: string; messageExpression?: string }

export function decide(policy: K8sObject, input: PolicyInput): Decision {
  const spec = at<{ failurePolicy?: string; matchConditions?: Named[]; variables?: Named[]; validations?: Validation[] }>(policy, 'spec');
  const failClosed = (spec.failurePolicy ?? 'Fail') === 'Fail';
  const context: Record<string, unknown> = { ...input, variables: {} };
  for (const condition of spec.matchConditions ?? []) {
    if (evaluate(condition.expression, context) !== true) return { matched: false, allowed: true };
  }
  const variables: Record<string, unknown> = {};
  for (const variable of spec.variables ?? []) {
    context.variables = { ...variables };
    try {
      variables[variable.name] = evaluate(variable.expression, context);
    } catch {
      // An unevaluable variable fails only the validations that use it; keep it undefined.
    }
  }
  context.variables = variables;
  for (const validation of spec.validations ?? []) {
    let ok: unknown;
    try {
      ok = evaluate(validation.expression, context);
    } catch {
      if (failClosed) return { matched: true, allowed: false, message: `${validation.expression}: evaluation error` };
      continue;
    }
    if (ok !== true) {
      const message = validation.messageExpression ? String(evaluate(validation.messageExpression, context)) : validation.message;
      return { matched: true, allowed: false, message };
    }
  }
  return { matched: true, allowed: true };
}
