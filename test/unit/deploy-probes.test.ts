// The registry's probe endpoints, as the manifests use them: with auth on (where /v2/ answers
// 401, which the kubelet would count as a failure) /healthz and /readyz answer 200 without
// credentials, and /readyz turns 503 when the storage root can no longer be written.
import { rm } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { at, findObject, render } from '../e2e/manifests.js';
import { startLayover } from '../helpers/layover.js';

interface Probe { httpGet: { path: string } }

describe('registry probes', async () => {
  const registry = findObject(await render('deploy/base'), 'StatefulSet', 'layover-registry');
  const container = at<Record<string, Probe>>(registry, 'spec.template.spec.containers.0');
  const paths = ['livenessProbe', 'readinessProbe', 'startupProbe'].map((probe) => at<string>(container, `${probe}.httpGet.path`));

  it('every probe path of the manifest answers 200 without credentials while /v2/ answers 401', async () => {
    const layover = await startLayover({ auth: { enabled: true } }, { logLevel: 'silent' });
    try {
      expect((await layover.app.inject({ method: 'GET', url: '/v2/' })).statusCode).toBe(401);
      for (const url of paths) {
        const res = await layover.app.inject({ method: 'GET', url });
        expect(res.statusCode, url).toBe(200);
        expect(res.json()).toEqual({ status: 'ok' });
      }
    } finally {
      await layover.close();
    }
  });

  it('readiness fails (503) and liveness holds when the storage root is gone', async () => {
    const layover = await startLayover({ auth: { enabled: false } }, { logLevel: 'silent' });
    try {
      await rm(layover.root, { recursive: true, force: true });
      expect((await layover.app.inject({ method: 'GET', url: at<string>(container, 'readinessProbe.httpGet.path') })).statusCode).toBe(503);
      expect((await layover.app.inject({ method: 'GET', url: at<string>(container, 'livenessProbe.httpGet.path') })).statusCode).toBe(200);
    } finally {
      await layover.close();
    }
  });
});
