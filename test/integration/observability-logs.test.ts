// The access log at `debug` (every request logged) never holds a credential, whichever way it was
// sent: Basic and Bearer headers, the token endpoint's form and answer, a token in the query.
// `log.access: false` silences the info lines but not the audit trail. Pull times are written
// every registry.pullRecordInterval without a restart.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORDS } from '../fixtures/auth/config.js';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { buildManifest, imageConfig, randomBlob } from '../helpers/oci-content.js';
import { basicAuthHeader, pushContent, type Auth } from '../helpers/registry-client.js';
import { waitFor } from '../helpers/wait-for.js';

const admin: Auth = { user: 'admin', password: PASSWORDS.admin };
const USERS = [{ name: 'admin', password: PASSWORDS.admin, admin: true }];

interface LogLine { level: number; msg: string; access?: { method: string; route: string; status: number; user?: string } }
const lines = (text: string) => text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);

async function pushImage(url: string, repo: string, tag: string, auth?: Auth): Promise<string> {
  const layer = randomBlob(5_000, `${repo}:${tag}`);
  const config = imageConfig([layer.digest]);
  const manifest = buildManifest({ config, layers: [layer] });
  await pushContent(url, repo, tag, [config, layer], manifest, auth);
  return manifest.digest;
}

describe('access log at debug: every request, no secret', { timeout: 120_000 }, () => {
  let layover: InProcessLayover;
  beforeAll(async () => {
    layover = await startLayover({ auth: { enabled: true, users: USERS } }, { logLevel: 'debug' });
  });
  afterAll(async () => layover?.close());

  it('logs probes and listings at debug and writes at info, and no credential reaches the log', async () => {
    const secrets: string[] = [PASSWORDS.admin, basicAuthHeader(admin).slice('Basic '.length), 'query-token-0123456789', 'bearer-secret-0123456789'];
    const send = async (path: string, init: Parameters<typeof request>[1] = {}) => {
      const res = await request(`${layover.url}${path}`, init);
      const text = await res.body.text();
      return { status: res.statusCode, text };
    };
    expect((await send('/v2/', { headers: { authorization: 'Bearer bearer-secret-0123456789' } })).status).toBe(401);
    const got = await send('/token?service=layover&scope=repository:admin/app:push,pull&token=query-token-0123456789', { headers: { authorization: basicAuthHeader(admin) } });
    expect(got.status).toBe(200);
    const issued = (JSON.parse(got.text) as { token: string }).token;
    secrets.push(issued);
    const form = new URLSearchParams({ grant_type: 'password', username: 'admin', password: PASSWORDS.admin, service: 'layover', access_type: 'offline', scope: 'repository:admin/app:pull' });
    const posted = await send('/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() });
    expect(posted.status).toBe(200);
    const answer = JSON.parse(posted.text) as { token: string; refresh_token: string };
    secrets.push(answer.token, answer.refresh_token);
    const refreshed = await send('/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: answer.refresh_token, service: 'layover' }).toString() });
    expect(refreshed.status).toBe(200);
    expect((await send('/v2/_catalog?password=query-token-0123456789', { headers: { authorization: `Bearer ${issued}` } })).status).toBe(200);
    expect((await send('/api/v1/me', { headers: { authorization: basicAuthHeader(admin) } })).status).toBe(200);
    await pushImage(layover.url, 'admin/app', 'v1', admin);

    // The access line is written when the response has finished, and reaches this process
    // through the child's stdout: the client can hold the answer to the last request first.
    const pushLogged = (t: string) => lines(t).some((l) => l.access?.method === 'PUT' && l.access.route === 'manifest');
    for (const until = Date.now() + 10_000; !pushLogged(layover.log()) && Date.now() < until; ) await new Promise((r) => setTimeout(r, 50));
    const text = layover.log();
    for (const secret of secrets) expect(text).not.toContain(secret);
    const access = lines(text).filter((l) => l.access);
    const find = (method: string, route: string) => access.find((l) => l.access?.method === method && l.access.route === route);
    expect(find('GET', 'base')).toMatchObject({ level: 20, access: { status: 401 } });
    expect(find('GET', 'catalog')).toMatchObject({ level: 20, access: { status: 200, user: 'admin' } });
    expect(find('GET', '/api/v1/me')).toMatchObject({ level: 20, access: { status: 200 } });
    expect(find('GET', '/token')?.level).toBe(20);
    expect(find('POST', '/token')).toMatchObject({ level: 30, access: { status: 200 } });
    expect(find('PUT', 'manifest')).toMatchObject({ level: 30, access: { status: 201, user: 'admin' } });
  });
});

describe('log.access: false, and pull times written on their interval', { timeout: 120_000 }, () => {
  let layover: InProcessLayover;
  beforeAll(async () => {
    layover = await startLayover({ log: { access: false }, registry: { pullRecordInterval: '1s' } });
  });
  afterAll(async () => layover?.close());

  it('writes no access line but still audits the push', async () => {
    await pushImage(layover.url, 'team/app', 'v1');
    expect(lines(layover.log()).some((l) => l.access)).toBe(false);
    const res = await request(`${layover.url}/api/v1/audit?action=push`);
    const body = (await res.body.json()) as { events: { target: string; actor: string }[] };
    expect(body.events).toEqual([expect.objectContaining({ target: 'team/app:v1', actor: 'anonymous' })]);
  });

  it('writes pull times of pushed images every registry.pullRecordInterval, without a restart', async () => {
    const digest = await pushImage(layover.url, 'team/lib', 'v1');
    const res = await request(`${layover.url}/v2/team/lib/manifests/v1`);
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    const pulledAt = await waitFor(async () => {
      const answer = await request(`${layover.url}/api/v1/repository?name=team/lib`);
      const body = (await answer.body.json()) as { tagList: { digest: string; pulledAt?: string }[] };
      return body.tagList.find((t) => t.digest === digest)?.pulledAt;
    }, 15_000, 200);
    expect(Date.parse(pulledAt)).toBeGreaterThan(Date.now() - 60_000);
  });
});
