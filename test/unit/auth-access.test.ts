// The Access and the /token endpoint together, in-process, on a stand-in for the Distribution
// routes that asks for exactly what the real routes ask for.
import { readFileSync, statSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import type { Action, Config } from '../../src/config/config.js';
import { createLogger } from '../../src/log.js';
import { createAuth, type Auth } from '../../src/registry/auth/auth.js';
import { RegistryError } from '../../src/registry/errors.js';
import { hashPassword } from '../../src/registry/auth/password.js';
import { writeUsersFile } from '../../src/registry/auth/users-file.js';
import { authConfig, PASSWORDS } from '../fixtures/auth/config.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { buildApp } from '../../src/app.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const dirs: TempDir[] = [];
const apps: FastifyInstance[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
  dirs.splice(0).forEach((d) => d.cleanup());
});

const ACTION: Record<string, Action> = { GET: 'pull', HEAD: 'pull', PUT: 'push', POST: 'push', PATCH: 'push', DELETE: 'delete' };

async function start(mutate: (c: Config) => void = () => {}, auth: Parameters<typeof authConfig>[1] = {}) {
  const dir = makeTempDir();
  dirs.push(dir);
  const config = authConfig(dir.path, auth);
  mutate(config);
  const logged: string[] = [];
  const sink = new PassThrough();
  sink.on('data', (chunk: Buffer) => logged.push(...chunk.toString().split('\n').filter(Boolean)));
  const logger = createLogger('debug', sink);
  const printed: string[] = [];
  const a: Auth = await createAuth(config, { logger, announce: (m) => printed.push(m), reloadIntervalMs: 50 });
  const app = Fastify({ loggerInstance: logger }) as unknown as FastifyInstance;
  app.addHook('onClose', async () => a.close());
  await a.routes(app);
  app.setErrorHandler((err, _req, reply) => {
    const e = err instanceof RegistryError ? err : new RegistryError('UNKNOWN');
    void reply.code(e.status).headers(e.headers).send(e.body());
  });
  app.all('/v2/*', async (req) => {
    const rest = (req.params as { '*': string })['*'];
    const name = rest.replace(/\/(?:manifests|blobs|tags)\/.*$/, '');
    if (name === '' || name === '_catalog') {
      const p = await a.access.check(req, undefined, []);
      return { principal: p, visible: ['alice/app', 'bob/app', 'dev/tool', 'docker.io/library/nginx'].filter((r) => a.access.allows(p, r, 'pull')) };
    }
    const p = await a.access.check(req, name, [ACTION[req.method] as Action]);
    return { principal: p };
  });
  apps.push(app);
  return { app, auth: a, config, logged, printed };
}

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

async function token(app: FastifyInstance, authorization: string | undefined, scopes: string[]) {
  const query = new URLSearchParams([['service', 'layover'], ...scopes.map((s) => ['scope', s] as [string, string])]);
  const res = await app.inject({ method: 'GET', url: `/token?${query}`, headers: authorization ? { authorization } : {} });
  return { status: res.statusCode, body: res.json() as { token: string; access_token: string; expires_in: number; issued_at: string; scope: string; refresh_token?: string; errors?: { code: string }[] }, headers: res.headers };
}

describe('registry access', () => {
  it('challenges unauthenticated requests with the token realm, service and scope', async () => {
    const { app } = await start();
    const root = await app.inject({ url: '/v2/', headers: { host: 'registry.test:5000' } });
    expect(root.statusCode).toBe(401);
    expect(root.headers['www-authenticate']).toBe('Bearer realm="http://registry.test:5000/token",service="layover"');
    expect(root.json()).toEqual({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] });
    const push = await app.inject({ method: 'PUT', url: '/v2/alice/app/manifests/1', headers: { host: 'h"x' } });
    expect(push.statusCode).toBe(401);
    // a Host header that is not a host is never echoed into the challenge
    expect(push.headers['www-authenticate']).toBe('Bearer realm="http://localhost:0/token",service="layover",scope="repository:alice/app:push"');
  });

  it('grants requested ∩ allowed and enforces the token on each repository', async () => {
    const { app } = await start();
    const t = await token(app, basic('alice', PASSWORDS.alice), [
      'repository:alice/app:pull,push', 'repository:bob/app:pull,push,delete', 'repository:docker.io/library/nginx:pull,push,delete', 'repository:dev/tool:*',
    ]);
    expect(t.status).toBe(200);
    expect(t.body.scope).toBe('repository:alice/app:pull,push repository:docker.io/library/nginx:pull repository:dev/tool:pull,push,delete');
    expect(t.body.expires_in).toBe(300);
    expect(Math.abs(Date.parse(t.body.issued_at) - Date.now())).toBeLessThan(5000);
    expect(t.body.access_token).toBe(t.body.token);
    expect(t.headers['cache-control']).toBe('no-store');
    const bearer = { authorization: `Bearer ${t.body.token}` };

    expect((await app.inject({ url: '/v2/alice/app/manifests/1', headers: bearer })).statusCode).toBe(200);
    expect((await app.inject({ method: 'PUT', url: '/v2/alice/app/manifests/1', headers: bearer })).statusCode).toBe(200);
    expect((await app.inject({ url: '/v2/docker.io/library/nginx/manifests/1', headers: bearer })).statusCode).toBe(200);
    // allowed by policy, not in this token: ask for a new one
    const other = await app.inject({ url: '/v2/alice/other/manifests/1', headers: bearer });
    expect(other.statusCode).toBe(401);
    expect(other.headers['www-authenticate']).toContain('scope="repository:alice/other:pull",error="insufficient_scope"');
    const del = await app.inject({ method: 'DELETE', url: '/v2/alice/app/manifests/1', headers: bearer });
    expect(del.statusCode).toBe(401);
    // not allowed at all: denied
    const bob = await app.inject({ url: '/v2/bob/app/manifests/1', headers: bearer });
    expect(bob.statusCode).toBe(403);
    expect(bob.json().errors[0].code).toBe('DENIED');
    // a garbage token
    const bad = await app.inject({ url: '/v2/alice/app/manifests/1', headers: { authorization: `Bearer ${t.body.token.slice(0, -4)}AAAA` } });
    expect(bad.statusCode).toBe(401);
    expect(bad.headers['www-authenticate']).toContain('error="invalid_token"');
    // the catalog lists only what the caller may pull
    const catalog = await app.inject({ url: '/v2/_catalog', headers: bearer });
    expect(catalog.json().visible).toEqual(['alice/app', 'dev/tool', 'docker.io/library/nginx']);
  });

  it('accepts Basic on /v2/ requests and refuses bad passwords', async () => {
    const { app } = await start();
    expect((await app.inject({ url: '/v2/', headers: { authorization: basic('carol', PASSWORDS.carol) } })).statusCode).toBe(200);
    expect((await app.inject({ method: 'PUT', url: '/v2/carol/x/manifests/1', headers: { authorization: basic('carol', PASSWORDS.carol) } })).statusCode).toBe(200);
    expect((await app.inject({ method: 'PUT', url: '/v2/alice/x/manifests/1', headers: { authorization: basic('carol', PASSWORDS.carol) } })).statusCode).toBe(403);
    expect((await app.inject({ url: '/v2/', headers: { authorization: basic('carol', 'wrong') } })).statusCode).toBe(401);
    expect((await app.inject({ url: '/v2/', headers: { authorization: basic('nobody', 'wrong') } })).statusCode).toBe(401);
    expect((await app.inject({ url: '/v2/', headers: { authorization: 'Digest x' } })).statusCode).toBe(401);
    const admin = await app.inject({ url: '/v2/_catalog', headers: { authorization: basic('admin', PASSWORDS.admin) } });
    expect(admin.json().visible).toHaveLength(4);
  });

  it('authenticates namespace tokens as Basic passwords, split either way', async () => {
    const { app, auth } = await start();
    const { token: ns, keyId } = await auth.mintNamespaceToken('shop');
    expect(keyId).toBe(auth.currentKeyId());
    for (const authorization of [basic('namespace:shop', ns), basic('namespace', `shop:${ns}`)]) {
      expect((await app.inject({ url: '/v2/shop/web/manifests/1', headers: { authorization } })).statusCode).toBe(200);
      expect((await app.inject({ url: '/v2/dev/tool/manifests/1', headers: { authorization } })).statusCode).toBe(200);
      expect((await app.inject({ url: '/v2/docker.io/library/nginx/manifests/1', headers: { authorization } })).statusCode).toBe(200);
      expect((await app.inject({ url: '/v2/alice/app/manifests/1', headers: { authorization } })).statusCode).toBe(403);
      expect((await app.inject({ method: 'PUT', url: '/v2/shop/web/manifests/1', headers: { authorization } })).statusCode).toBe(403);
    }
    // for another namespace, or not a namespace token at all
    expect((await app.inject({ url: '/v2/shop/web/manifests/1', headers: { authorization: basic('namespace:other', ns) } })).statusCode).toBe(401);
    const access = await token(app, basic('alice', PASSWORDS.alice), ['repository:alice/app:pull']);
    expect((await app.inject({ url: '/v2/', headers: { authorization: basic('namespace:shop', access.body.token) } })).statusCode).toBe(401);
    // the token endpoint takes them too (containerd's flow with pull-secret credentials)
    const t = await token(app, basic('namespace', `shop:${ns}`), ['repository:shop/web:pull,push', 'repository:alice/app:pull']);
    expect(t.status).toBe(200);
    expect(t.body.scope).toBe('repository:shop/web:pull');
    const post = await app.inject({ method: 'POST', url: '/token', payload: new URLSearchParams({ grant_type: 'password', username: 'namespace:shop', password: ns, scope: 'repository:shop/web:pull', service: 'layover' }).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(post.statusCode).toBe(200);
    expect(post.json().refresh_token).toBeUndefined();
  });

  it('handles the OAuth2 POST flow with refresh tokens that die with the password', async () => {
    const { app, config } = await start();
    await writeUsersFile(config.auth.usersFile, { users: [{ name: 'dave', passwordHash: await hashPassword('dave-pw') }], teams: [] });
    const form = (fields: Record<string, string>) => app.inject({ method: 'POST', url: '/token', payload: new URLSearchParams(fields).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    await waitFor(async () => (await form({ grant_type: 'password', username: 'dave', password: 'dave-pw' })).statusCode === 200, 5000);
    const first = await form({ grant_type: 'password', username: 'dave', password: 'dave-pw', scope: 'repository:dave/a:pull,push repository:alice/a:pull', access_type: 'offline', client_id: 'containerd-client', service: 'layover' });
    expect(first.statusCode).toBe(200);
    const body = first.json();
    expect(body.scope).toBe('repository:dave/a:pull,push');
    expect(body.refresh_token).toEqual(expect.any(String));
    const refreshed = await form({ grant_type: 'refresh_token', refresh_token: body.refresh_token, scope: 'repository:dave/b:pull', service: 'layover' });
    expect(refreshed.statusCode).toBe(200);
    expect(refreshed.json().scope).toBe('repository:dave/b:pull');
    // an access token is not a refresh token
    expect((await form({ grant_type: 'refresh_token', refresh_token: body.access_token })).statusCode).toBe(401);
    expect((await form({ grant_type: 'password', username: 'dave', password: 'nope' })).statusCode).toBe(401);
    expect((await form({ grant_type: 'client_credentials' })).statusCode).toBe(400);
    expect((await form({ grant_type: 'password', username: 'dave', password: 'dave-pw', service: 'elsewhere' })).statusCode).toBe(400);
    await writeUsersFile(config.auth.usersFile, { users: [{ name: 'dave', passwordHash: await hashPassword('new-pw') }], teams: [] });
    await waitFor(async () => (await form({ grant_type: 'password', username: 'dave', password: 'new-pw' })).statusCode === 200, 5000);
    expect((await form({ grant_type: 'refresh_token', refresh_token: body.refresh_token })).statusCode).toBe(401);
  });

  it('keeps anonymous out unless auth.anonymous, and then only for mirror pulls', async () => {
    const closed = await start();
    expect((await token(closed.app, undefined, ['repository:docker.io/library/nginx:pull'])).status).toBe(401);
    expect((await closed.app.inject({ url: '/v2/docker.io/library/nginx/manifests/1' })).statusCode).toBe(401);

    const { app } = await start(() => {}, { anonymous: true });
    const t = await token(app, undefined, ['repository:docker.io/library/nginx:pull,push', 'repository:alice/app:pull']);
    expect(t.status).toBe(200);
    expect(t.body.scope).toBe('repository:docker.io/library/nginx:pull');
    expect((await app.inject({ url: '/v2/docker.io/library/nginx/manifests/1' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/v2/docker.io/library/nginx/manifests/1', headers: { authorization: `Bearer ${t.body.token}` } })).statusCode).toBe(200);
    const denied = await app.inject({ url: '/v2/alice/app/manifests/1', headers: { authorization: `Bearer ${t.body.token}` } });
    expect(denied.statusCode).toBe(401);
    expect((await app.inject({ url: '/v2/' })).statusCode).toBe(401);
  });

  it('rate-limits failed logins per user and lets the right password through afterwards', async () => {
    const { app } = await start(() => {}, { rateLimit: { perUser: 3, perClient: 100, window: '1s' } });
    for (let i = 0; i < 3; i++) expect((await token(app, basic('alice', `guess${i}`), [])).status).toBe(401);
    const locked = await token(app, basic('alice', PASSWORDS.alice), []);
    expect(locked.status).toBe(429);
    expect(locked.body.errors?.[0]?.code).toBe('TOOMANYREQUESTS');
    expect(Number(locked.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    const lockedV2 = await app.inject({ url: '/v2/', headers: { authorization: basic('alice', PASSWORDS.alice) } });
    expect(lockedV2.statusCode).toBe(429);
    expect((await token(app, basic('bob', PASSWORDS.bob), [])).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await token(app, basic('alice', PASSWORDS.alice), [])).status).toBe(200);
  });

  it('never writes credentials or tokens into a log line, and logs the denial', async () => {
    const { app, logged, auth } = await start();
    const t = await token(app, basic('alice', PASSWORDS.alice), ['repository:alice/app:pull']);
    const ns = (await auth.mintNamespaceToken('shop')).token;
    await app.inject({ url: '/v2/bob/app/manifests/1', headers: { authorization: `Bearer ${t.body.token}` } });
    await app.inject({ url: '/v2/bob/app/manifests/1', headers: { authorization: basic('alice', PASSWORDS.alice) } });
    await app.inject({ url: '/v2/bob/app/manifests/1', headers: { authorization: basic('alice', 'WrongSecret123') } });
    await app.inject({ url: '/v2/alice/app/manifests/1', headers: { authorization: basic('namespace:shop', ns) } });
    await token(app, basic('alice', 'WrongSecret123'), []);
    await new Promise((r) => setTimeout(r, 50));
    const text = logged.join('\n');
    expect(logged.filter((l) => l.includes('"access denied"') && l.includes('"principal":"alice"') && l.includes('bob/app'))).toHaveLength(2);
    expect(logged.some((l) => l.includes('"access denied"') && l.includes('"principal":"namespace:shop"'))).toBe(true);
    expect(logged.some((l) => l.includes('authentication failed'))).toBe(true);
    for (const secret of [PASSWORDS.alice, 'WrongSecret123', t.body.token, ns, Buffer.from(`alice:${PASSWORDS.alice}`).toString('base64'), 'Basic ', 'Bearer ']) {
      expect(text.includes(secret), `log holds ${secret.slice(0, 12)}…`).toBe(false);
    }
  });

  it('creates the first admin when there are no users, printed once and kept in a 0600 file', async () => {
    const { app, printed, config } = await start((c) => { c.auth.users = []; });
    expect(printed).toHaveLength(1);
    const passwordFile = path.join(config.storage.root, '_auth', 'admin-password');
    const password = readFileSync(passwordFile, 'utf8').trim();
    expect(password).toMatch(/^[\w-]{24}$/);
    expect(printed[0]).toContain(password);
    expect(statSync(passwordFile).mode & 0o777).toBe(0o600);
    expect(statSync(config.auth.usersFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(config.auth.usersFile, 'utf8')).not.toContain(password);
    const res = await app.inject({ url: '/v2/_catalog', headers: { authorization: basic('admin', password) } });
    expect(res.json().visible).toHaveLength(4);
    // a second start finds the admin and creates nothing
    const again = await createAuth(config, { logger: createLogger('silent'), announce: (m) => printed.push(m) });
    again.close();
    expect(printed).toHaveLength(1);
  });

  it('is on by default: the embedded defaults deny anonymous requests and create the first admin', async () => {
    const dir = makeTempDir();
    dirs.push(dir);
    const config = resolveConfig({}, { baseDir: dir.path });
    expect(config.auth).toMatchObject({ enabled: true, anonymous: false, usersFile: path.join(dir.path, 'data', '_auth', 'users.yaml') });
    const printed: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string) => { printed.push(String(chunk)); return true; }) as typeof process.stderr.write;
    let app: FastifyInstance;
    try {
      app = await buildApp(config, { logger: createLogger('silent') });
    } finally {
      process.stderr.write = write;
    }
    apps.push(app);
    const password = readFileSync(path.join(dir.path, 'data', '_auth', 'admin-password'), 'utf8').trim();
    expect(printed.join('')).toContain(password);
    expect((await app.inject({ url: '/v2/' })).statusCode).toBe(401);
    expect((await app.inject({ url: '/v2/', headers: { authorization: basic('admin', password) } })).statusCode).toBe(200);
    const t = await app.inject({ url: '/token?service=layover&scope=repository:admin/x:pull,push', headers: { authorization: basic('admin', password) } });
    expect(t.json().scope).toBe('repository:admin/x:pull,push');
  });
});
