// A flood of bad logins must not starve storage: scrypt (N=2^15) runs on libuv's threadpool,
// as blob reads do. On a real listening layover, blob GETs are timed while 16 clients keep a bad
// login each in flight (for a user with a scrypt hash, and for unknown users, whose check runs
// scrypt against a dummy hash); and a full queue of password checks is answered 429 at once.
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { randomBlob, type Content } from '../helpers/oci-content.js';
import { uploadBlob } from '../helpers/registry-client.js';
import type { RawConfig } from '../../src/config/schema.js';
import { hashPassword } from '../../src/registry/auth/password.js';
import { PASSWORDS, TEST_USERS } from '../fixtures/auth/config.js';

const DAVE_PASSWORD = 'dave-pw-1';
/**
 * 32 MiB GET on the shared 2-core test machine: 0.25–0.8 s idle; under the flood of 16 bad
 * logins 0.4–2.5 s with one scrypt at a time, and over 30 s when every login hashes at once.
 */
const MAX_GET_MS = 5000;
const GET_ABORT_MS = 2 * MAX_GET_MS;

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

let layover: InProcessLayover | undefined;
afterEach(async () => {
  await layover?.close();
  layover = undefined;
});

async function start(passwordChecks?: NonNullable<RawConfig['auth']>['passwordChecks']): Promise<InProcessLayover> {
  layover = await startLayover({
    auth: {
      enabled: true,
      users: [
        ...TEST_USERS,
        { name: 'dave', passwordHash: await hashPassword(DAVE_PASSWORD) },
        // p=8: eight times the work of the default at the same memory, to hold the queue for a while.
        { name: 'erin', passwordHash: await hashPassword('erin-pw-1', { N: 2 ** 15, r: 8, p: 8 }) },
      ],
      // Limits out of the way: every bad login reaches a password check.
      rateLimit: { perUser: 1_000_000, perClient: 1_000_000 },
      ...(passwordChecks ? { passwordChecks } : {}),
    },
  });
  return layover;
}

interface Answer { status: number; ms: number; retryAfter: unknown; codes: string[] }

async function login(l: InProcessLayover, path: string, init: { authorization?: string; form?: Record<string, string> }): Promise<Answer> {
  const started = performance.now();
  const res = await request(`${l.url}${path}`, {
    method: init.form ? 'POST' : 'GET',
    headers: {
      ...(init.authorization ? { authorization: init.authorization } : {}),
      ...(init.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
    },
    body: init.form ? new URLSearchParams(init.form).toString() : undefined,
  });
  const text = await res.body.text();
  const codes = res.statusCode >= 400 ? (JSON.parse(text) as { errors: { code: string }[] }).errors.map((e) => e.code) : [];
  return { status: res.statusCode, ms: performance.now() - started, retryAfter: res.headers['retry-after'], codes };
}

describe('password hashing under a login flood', () => {
  it('keeps blob GETs fast while 16 bad logins are always in flight', async () => {
    const l = await start();
    const blob: Content = randomBlob(32 * 2 ** 20, 'auth-hashing');
    await uploadBlob(l.url, 'admin/big', blob.digest, blob.bytes, { user: 'admin', password: PASSWORDS.admin });
    const query = new URLSearchParams({ service: 'layover', scope: 'repository:admin/big:pull' });
    const issued = await request(`${l.url}/token?${query}`, { headers: { authorization: basic('admin', PASSWORDS.admin) } });
    const bearer = `Bearer ${((await issued.body.json()) as { token: string }).token}`;

    /** Milliseconds to GET the whole blob; one still running after GET_ABORT_MS is cut off and counts as that long. */
    const timedGet = async (): Promise<number> => {
      const started = performance.now();
      try {
        const res = await request(`${l.url}/v2/admin/big/blobs/${blob.digest}`, { headers: { authorization: bearer }, signal: AbortSignal.timeout(GET_ABORT_MS) });
        const body = Buffer.from(await res.body.arrayBuffer());
        expect(res.statusCode).toBe(200);
        expect(body.length).toBe(blob.size);
      } catch (err) {
        if ((err as Error).name !== 'TimeoutError') throw err;
      }
      return performance.now() - started;
    };

    await timedGet();
    let flooding = true;
    const statuses: number[] = [];
    const flood = Promise.all(Array.from({ length: 16 }, async (_, worker) => {
      for (let i = 0; flooding; i++) {
        const user = worker % 2 === 0 ? 'dave' : `nobody${worker}-${i}`;
        statuses.push((await login(l, '/v2/', { authorization: basic(user, `guess-${worker}-${i}`) })).status);
      }
    }));
    const latencies: number[] = [];
    const started = performance.now();
    while (performance.now() - started < 3000) latencies.push(await timedGet());
    flooding = false;
    await flood;

    expect(Math.max(...latencies), `GET latencies under the flood (ms): ${latencies.map(Math.round).join(' ')}`).toBeLessThan(MAX_GET_MS);
    expect(statuses.length).toBeGreaterThan(0);
    expect(new Set(statuses)).toEqual(new Set([401]));
    expect((await login(l, '/v2/', { authorization: basic('dave', DAVE_PASSWORD) })).status).toBe(200);
  }, 120_000);

  it('answers password checks beyond the queue 429 at once, on /v2/ and /token; cached successes skip the queue', async () => {
    const l = await start({ concurrency: 1, queue: 2 });
    // Verified once, so cached: it must not wait behind the flood, nor be refused by it.
    expect((await login(l, '/v2/', { authorization: basic('dave', DAVE_PASSWORD) })).status).toBe(200);

    // Three checks of erin's slow hash (≥ 1.6 s each) take the running slot and both waiting places.
    const held = Array.from({ length: 3 }, (_, i) => login(l, '/v2/', { authorization: basic('erin', `guess-${i}`) }));
    const probe = async (): Promise<Answer> => login(l, '/v2/', { authorization: basic('nobody', 'guess') });
    let first = await probe();
    for (let i = 0; first.status !== 429 && i < 50; i++) first = await probe();
    const refused = [first, ...await Promise.all([
      probe(),
      login(l, '/v2/', { authorization: basic('dave', 'guess') }),
      login(l, '/token?service=layover', { authorization: basic('dave', 'guess') }),
      login(l, '/token', { form: { grant_type: 'password', service: 'layover', username: 'dave', password: 'guess' } }),
    ])];
    const cached = await login(l, '/v2/', { authorization: basic('dave', DAVE_PASSWORD) });
    const checked = await Promise.all(held);

    expect(checked.map((a) => a.status)).toEqual([401, 401, 401]);
    for (const a of refused) {
      expect(a.status).toBe(429);
      expect(a.codes).toEqual(['TOOMANYREQUESTS']);
      expect(a.retryAfter).toBe('1');
      // At once, not after a hash.
      expect(a.ms).toBeLessThan(Math.min(...checked.map((c) => c.ms)));
    }
    expect(cached.status).toBe(200);
    expect(cached.ms).toBeLessThan(Math.min(...checked.map((c) => c.ms)));
    // Once drained, the queue takes checks again.
    expect((await login(l, '/v2/', { authorization: basic('carol', PASSWORDS.carol) })).status).toBe(200);
    expect((await probe()).status).toBe(401);
  }, 60_000);
});
