// certs/README.md's kubectl patch, applied as kube-apiserver would (RFC 6902) to the
// MutatingWebhookConfiguration the base renders, which has no caBundle: `add` must work there
// (a `replace` of the absent field would be refused).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import jsonpatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, at, findObject, render } from '../e2e/manifests.js';

describe('certs/README.md', () => {
  it('sets the caBundle with a JSON Patch that applies to the shipped configuration, which has none', async () => {
    const readme = await readFile(path.join(REPO_ROOT, 'certs/README.md'), 'utf8');
    const quoted = /-p "(\[.*\])"/.exec(readme)?.[1];
    if (!quoted) throw new Error('no kubectl patch -p in certs/README.md');
    const patch = JSON.parse(quoted.replaceAll('\\"', '"').replace('$CA_BUNDLE', 'Q0E=')) as jsonpatch.Operation[];
    const config = findObject(await render('deploy/base'), 'MutatingWebhookConfiguration', 'layover');
    expect(at<Record<string, unknown>>(config, 'webhooks.0.clientConfig').caBundle).toBeUndefined();
    const patched = jsonpatch.applyPatch(structuredClone(config), patch, true).newDocument;
    expect(at(patched, 'webhooks.0.clientConfig.caBundle')).toBe('Q0E=');
    // What the README used to say fails on this very object.
    expect(() => jsonpatch.applyPatch(structuredClone(config), [{ ...patch[0], op: 'replace' } as jsonpatch.Operation], true)).toThrow();
  });
});
