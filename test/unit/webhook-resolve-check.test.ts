// The resolve check's cache, coalescing and budget, and how the webhook gets a namespace's
// credentials, against a loopback HTTP server that answers HEADs as a registry would.
import { createHook } from 'node:async_hooks';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPullSecret } from '../../src/controller/pull-secret.js';
import { defaultConfig } from '../../src/config/resolve.js';
import { KubeError, type Kube, type SecretObject } from '../../src/k8s/kube.js';
import { createLogger } from '../../src/log.js';
import { mintedCredentials, pullSecretCredentials } from '../../src/webhook/registry-access.js';
import { checkImages, createResolveChecker } from '../../src/webhook/resolve-check.js';

const logger = createLogger('silent');

describe('resolve check', () => {
  let server: Server;
  let base: string;
  const seen: Array<{ path: string; auth?: string }> = [];
  let status = 200;
  let holdMs = 0;

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push({ path: req.url ?? '', auth: req.headers.authorization });
      setTimeout(() => res.writeHead(status).end(), holdMs);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  it('HEADs the manifest by digest or tag with the namespace’s Basic credentials', async () => {
    const checker = createResolveChecker({ registryUrl: base, logger, credentials: async (ns) => ({ username: `namespace:${ns}`, password: 'tok' }) });
    seen.length = 0;
    status = 200;
    expect(await checker.check('team-a', '127.0.0.1:5005/docker.io/library/nginx:1.27')).toEqual({ ok: true });
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(await checker.check('team-a', `127.0.0.1:5005/ghcr.io/a/b:1@${digest}`)).toEqual({ ok: true });
    expect(seen.map((r) => r.path)).toEqual(['/v2/docker.io/library/nginx/manifests/1.27', `/v2/ghcr.io/a/b/manifests/${digest}`]);
    expect(seen[0]?.auth).toBe(`Basic ${Buffer.from('namespace:team-a:tok').toString('base64')}`);
    await checker.close();
  });

  it('caches per namespace and image, a failure only briefly, and coalesces identical checks', async () => {
    const checker = createResolveChecker({ registryUrl: base, logger, credentials: async () => undefined, positiveTtlMs: 60_000, negativeTtlMs: 100 });
    seen.length = 0;
    status = 403;
    holdMs = 50;
    const answers = await Promise.all(Array.from({ length: 10 }, () => checker.check('team-a', '127.0.0.1:5005/x/y:1')));
    expect(answers[9]).toEqual({ ok: false, reason: 'namespace team-a may not pull it through layover (HTTP 403)' });
    expect(seen).toHaveLength(1);
    status = 200;
    expect((await checker.check('team-a', '127.0.0.1:5005/x/y:1')).ok).toBe(false); // still cached
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(await checker.check('team-a', '127.0.0.1:5005/x/y:1')).toEqual({ ok: true });
    expect(await checker.check('team-b', '127.0.0.1:5005/x/y:1')).toEqual({ ok: true }); // another namespace: its own check
    status = 404;
    expect(await checker.check('team-a', '127.0.0.1:5005/x/y:1')).toEqual({ ok: true }); // a success stays cached
    expect(seen).toHaveLength(3);
    holdMs = 0;
    await checker.close();
  });

  it('answers a success past its life at once while one check renews it, for at most one more life', async () => {
    const checker = createResolveChecker({ registryUrl: base, logger, credentials: async () => undefined, positiveTtlMs: 200, negativeTtlMs: 100 });
    const image = '127.0.0.1:5005/stale/a:1';
    seen.length = 0;
    status = 200;
    expect(await checker.check('team-a', image)).toEqual({ ok: true });
    status = 404;
    holdMs = 50;
    await new Promise((resolve) => setTimeout(resolve, 250));
    // Stale: answered without waiting, and renewed once in the background however many ask.
    expect(checker.cached?.('team-a', image)).toEqual({ ok: true });
    expect(await checker.check('team-a', image)).toEqual({ ok: true });
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(seen).toHaveLength(2);
    // The renewal's answer replaces it.
    expect(checker.cached?.('team-a', image)).toEqual({ ok: false, reason: 'not found through layover (HTTP 404)' });
    // A success left unasked past twice its life is gone: the next review waits for a new check.
    status = 200;
    holdMs = 0;
    const other = '127.0.0.1:5005/stale/b:1';
    expect(await checker.check('team-a', other)).toEqual({ ok: true });
    await new Promise((resolve) => setTimeout(resolve, 450));
    expect(checker.cached?.('team-a', other)).toBeUndefined();
    await checker.close();
  });

  it('a review waits for its checks only up to its budget; late answers still fill the cache', async () => {
    const checker = createResolveChecker({ registryUrl: base, logger, credentials: async () => undefined });
    status = 200;
    holdMs = 400;
    const started = Date.now();
    const results = await checkImages(checker, 'team-a', ['127.0.0.1:5005/slow/a:1', '127.0.0.1:5005/slow/b:1'], 100);
    expect(Date.now() - started).toBeLessThan(350);
    expect(results.size).toBe(0);
    holdMs = 0;
    await expect.poll(async () => (await checkImages(checker, 'team-a', ['127.0.0.1:5005/slow/a:1'], 0)).get('127.0.0.1:5005/slow/a:1'), { timeout: 2_000 }).toEqual({ ok: true });
    await checker.close();
  });

  it('answers a review whose images are all cached from the cache alone, without a request', async () => {
    const checker = createResolveChecker({ registryUrl: base, logger, credentials: async () => undefined });
    status = 200;
    const image = '127.0.0.1:5005/cached/a:1';
    expect(await checker.check('team-a', image)).toEqual({ ok: true });
    const before = seen.length;
    expect(checker.cached?.('team-a', image)).toEqual({ ok: true });
    expect(checker.cached?.('team-b', image)).toBeUndefined();
    // A zero budget still gets the cached answer.
    expect((await checkImages(checker, 'team-a', [image], 0)).get(image)).toEqual({ ok: true });
    // One image not cached: it is asked for, the cached one is not asked again.
    const other = '127.0.0.1:5005/cached/b:1';
    const both = await checkImages(checker, 'team-a', [image, other], 2_000);
    expect([both.get(image), both.get(other)]).toEqual([{ ok: true }, { ok: true }]);
    expect(seen.slice(before).map((r) => r.path)).toEqual(['/v2/cached/b/manifests/1']);
    await checker.close();
  });

  it('answers from the cache without arming a timer: no extra event-loop wake-up per review', async () => {
    const checker = createResolveChecker({ registryUrl: base, logger, credentials: async () => undefined });
    status = 200;
    const image = '127.0.0.1:5005/cached/timer:1';
    expect(await checker.check('team-a', image)).toEqual({ ok: true });
    // Spaced past a millisecond, as reviews arriving at 1,000/s are.
    await new Promise((r) => setTimeout(r, 5));
    let timers = 0;
    const hook = createHook({ init: (_id, type) => void (type === 'Timeout' && (timers += 1)) }).enable();
    try {
      expect((await checkImages(checker, 'team-a', [image], 2_000)).get(image)).toEqual({ ok: true });
    } finally {
      hook.disable();
    }
    expect(timers).toBe(0);
    await checker.close();
  });

  it('says so when the namespace has no credentials, or the registry does not answer', async () => {
    const noSecret = createResolveChecker({ registryUrl: base, logger, credentials: pullSecretCredentials({ readSecret: async () => undefined } as unknown as Kube, 'layover-pull') });
    expect(await noSecret.check('team-x', '127.0.0.1:5005/x/y:1')).toEqual({ ok: false, reason: 'namespace has no layover-pull Secret yet' });
    await noSecret.close();
    const closed = createResolveChecker({ registryUrl: 'http://127.0.0.1:1', logger, credentials: async () => undefined });
    expect(await closed.check('team-x', '127.0.0.1:5005/x/y:1')).toEqual({ ok: false, reason: 'the registry did not answer (ECONNREFUSED)' });
    await closed.close();
  });
});

describe('configuration', () => {
  it('webhook.resolveTimeout defaults to 2s and must be more than zero; prefetch defaults to on', () => {
    expect(defaultConfig().webhook).toMatchObject({ resolveTimeoutMs: 2_000, prefetch: true, rewriteTarget: 'node' });
    expect(defaultConfig({ webhook: { resolveTimeout: '500ms', prefetch: false } }).webhook).toMatchObject({ resolveTimeoutMs: 500, prefetch: false });
    expect(() => defaultConfig({ webhook: { resolveTimeout: '0s' } })).toThrow(/webhook.resolveTimeout: must be more than 0/);
  });
});

describe('namespace credentials', () => {
  it('come from the pull secret the controller writes (username/password or only `auth`), read once per window', async () => {
    let reads = 0;
    const secret = buildPullSecret({ namespace: 'team-a', name: 'layover-pull', hosts: ['127.0.0.1:5005'], token: 'tok.en.sig', expiresAt: new Date(Date.now() + 86_400_000), keyId: 'k' });
    const authOnly: SecretObject = { ...secret, data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths: { h: { auth: Buffer.from('namespace:team-b:tok2').toString('base64') } } })).toString('base64') } };
    const kube = {
      readSecret: async (ns: string) => {
        reads++;
        if (ns === 'forbidden') throw new KubeError(403, 'read secret');
        return ns === 'team-a' ? secret : ns === 'team-b' ? authOnly : undefined;
      },
    } as unknown as Kube;
    const credentials = pullSecretCredentials(kube, 'layover-pull');
    expect(await credentials('team-a')).toEqual({ username: 'namespace:team-a', password: 'tok.en.sig' });
    expect(await credentials('team-a')).toEqual({ username: 'namespace:team-a', password: 'tok.en.sig' });
    expect(await credentials('team-b')).toEqual({ username: 'namespace:team-b', password: 'tok2' });
    expect(reads).toBe(2);
    await expect(credentials('forbidden')).rejects.toThrow('cannot read Secret forbidden/layover-pull (kubernetes API read secret: HTTP 403)');
    expect(await pullSecretCredentials(kube, 'layover-pull', { anonymousFallback: true })('team-none')).toBeUndefined();
  });

  it('are minted in-process when the registry’s keys are here, and reused for half the token’s life', async () => {
    let now = 0;
    let minted = 0;
    const credentials = mintedCredentials(async (ns) => ({ token: `${ns}-${++minted}`, expiresAt: new Date(now + 1_000) }), () => now);
    expect(await credentials('team-a')).toEqual({ username: 'namespace:team-a', password: 'team-a-1' });
    now = 400;
    expect((await credentials('team-a'))?.password).toBe('team-a-1');
    now = 600;
    expect((await credentials('team-a'))?.password).toBe('team-a-2');
  });
});
