// Failed-login limits on a real listening layover, with clients on two loopback addresses
// (127.0.0.1 and 127.0.0.2): only password checks are limited, a user is locked out only at the
// address that guessed, and signed tokens (namespace, bearer, refresh) are never refused with 429.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { PASSWORDS, TEST_USERS } from '../fixtures/auth/config.js';

// undici's client option, not `connect.localAddress`: the connector overrides that one.
const ATTACKER = new Agent({ localAddress: '127.0.0.1' });
const ELSEWHERE = new Agent({ localAddress: '127.0.0.2' });

interface Answer { status: number; json: { token?: string; refresh_token?: string; errors?: { code: string }[] }; retryAfter: string | undefined }

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

async function call(layover: InProcessLayover, from: Agent, path: string, init: { authorization?: string; form?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (init.authorization) headers.authorization = init.authorization;
  if (init.form) headers['content-type'] = 'application/x-www-form-urlencoded';
  const res = await request(`${layover.url}${path}`, {
    dispatcher: from,
    method: init.form ? 'POST' : 'GET',
    headers,
    body: init.form ? new URLSearchParams(init.form).toString() : undefined,
  });
  const text = await res.body.text();
  const retryAfter = res.headers['retry-after'];
  return { status: res.statusCode, json: text ? JSON.parse(text) as Answer['json'] : {}, retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined };
}

const v2 = (l: InProcessLayover, from: Agent, authorization: string) => call(l, from, '/v2/', { authorization });
const tokenGet = (l: InProcessLayover, from: Agent, authorization: string) => call(l, from, '/token?service=layover&scope=repository:shop/app:pull', { authorization });
const tokenPost = (l: InProcessLayover, from: Agent, form: Record<string, string>) => call(l, from, '/token', { form: { service: 'layover', ...form } });

/** Bad password checks from `from`, each answered 401, until the address or user is locked (429). */
async function guessUntilLocked(l: InProcessLayover, from: Agent, users: (i: number) => string, max: number): Promise<number> {
  for (let i = 0; i < max; i++) {
    const res = await v2(l, from, basic(users(i), `wrong-${i}`));
    if (res.status === 429) return i;
    expect(res.status).toBe(401);
  }
  return max;
}

let layover: InProcessLayover;
let namespaceToken: string;

// Each test locks something for a 60 s window: a fresh layover keeps the tests independent.
beforeEach(async () => {
  layover = await startLayover({
    auth: { enabled: true, users: TEST_USERS, rateLimit: { perUser: 5, perClient: 30, window: '60s' } },
  });
  namespaceToken = (await layover.app.auth!.mintNamespaceToken('shop')).token;
}, 60_000);
afterEach(async () => {
  await layover?.close();
});
afterAll(async () => {
  await Promise.all([ATTACKER.close(), ELSEWHERE.close()]);
});

describe('login limits', () => {
  it('a flood of bad passwords from an address locks passwords there, never a namespace token', async () => {
    const before = await tokenPost(layover, ATTACKER, { grant_type: 'password', username: 'alice', password: PASSWORDS.alice, access_type: 'offline' });
    expect(before.status).toBe(200);

    // One address, many user names: the per-address limit (30 failed checks) locks it.
    expect(await guessUntilLocked(layover, ATTACKER, (i) => `nobody${i}`, 40)).toBe(30);
    const locked = await v2(layover, ATTACKER, basic('carol', PASSWORDS.carol));
    expect(locked.status).toBe(429);
    expect(locked.json.errors?.[0]?.code).toBe('TOOMANYREQUESTS');
    expect(Number(locked.retryAfter)).toBeGreaterThanOrEqual(59);
    expect((await tokenGet(layover, ATTACKER, basic('carol', PASSWORDS.carol))).status).toBe(429);

    // The node's pull secret behind the same (SNAT) address still works, on /v2/ and /token.
    const ns = basic('namespace:shop', namespaceToken);
    expect((await v2(layover, ATTACKER, ns)).status).toBe(200);
    const issued = await tokenGet(layover, ATTACKER, ns);
    expect(issued.status).toBe(200);
    expect((await tokenPost(layover, ATTACKER, { grant_type: 'password', username: 'namespace:shop', password: namespaceToken })).status).toBe(200);
    // So do bearer access tokens and refresh tokens.
    expect((await call(layover, ATTACKER, '/v2/shop/app/tags/list', { authorization: `Bearer ${issued.json.token}` })).status).not.toBe(429);
    expect((await v2(layover, ATTACKER, `Bearer ${issued.json.token}`)).status).toBe(200);
    expect((await tokenPost(layover, ATTACKER, { grant_type: 'refresh_token', refresh_token: before.json.refresh_token ?? '' })).status).toBe(200);

    // Another address is not affected.
    expect((await v2(layover, ELSEWHERE, basic('carol', PASSWORDS.carol))).status).toBe(200);
  }, 60_000);

  it('locks a user out only at the address that guessed the password', async () => {
    expect(await guessUntilLocked(layover, ATTACKER, () => 'admin', 10)).toBe(5);
    expect((await v2(layover, ATTACKER, basic('admin', PASSWORDS.admin))).status).toBe(429);
    expect((await tokenGet(layover, ATTACKER, basic('admin', PASSWORDS.admin))).status).toBe(429);
    // The admin at their own machine logs in as usual, by Basic and at the token endpoint.
    expect((await v2(layover, ELSEWHERE, basic('admin', PASSWORDS.admin))).status).toBe(200);
    expect((await tokenGet(layover, ELSEWHERE, basic('admin', PASSWORDS.admin))).status).toBe(200);
    expect((await tokenPost(layover, ELSEWHERE, { grant_type: 'password', username: 'admin', password: PASSWORDS.admin })).status).toBe(200);
    // The attacker's address may still log in as other users until it reaches the address limit.
    expect((await v2(layover, ATTACKER, basic('bob', PASSWORDS.bob))).status).toBe(200);
  }, 60_000);

  it('never counts or refuses signed tokens, however many bad ones arrive', async () => {
    const forged = `${namespaceToken.slice(0, -6)}AAAAAA`;
    for (let i = 0; i < 40; i++) {
      expect((await v2(layover, ATTACKER, basic('namespace:shop', forged))).status).toBe(401);
      expect((await v2(layover, ATTACKER, `Bearer ${forged}`)).status).toBe(401);
      expect((await tokenPost(layover, ATTACKER, { grant_type: 'refresh_token', refresh_token: forged })).status).toBe(401);
    }
    // None of those 120 failures counted against the address's password checks.
    expect((await v2(layover, ATTACKER, basic('alice', PASSWORDS.alice))).status).toBe(200);
    expect((await v2(layover, ATTACKER, basic('namespace:shop', namespaceToken))).status).toBe(200);
  }, 60_000);
});
