// The pure parts of issue 12's upstream limits: Retry-After parsing and the hold it sets, the
// byte bound of the token cache, bounded body reads, the blob rate watch, and the configuration
// keys (defaults, and errors that name the key).
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig } from '../../src/config/resolve.js';
import { BodyTooLarge, readBounded } from '../../src/registry/body.js';
import { watchRate } from '../../src/registry/proxy/deadline.js';
import { DEFAULT_HOLD_MS, parseRetryAfter, RateLimitGate } from '../../src/registry/proxy/retry-after.js';
import { TokenCache } from '../../src/registry/proxy/token-cache.js';

describe('Retry-After', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');

  it('reads delta-seconds and HTTP-dates; a past date is 0; anything else is unreadable', () => {
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:01:30 GMT', now)).toBe(90_000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('-5', now)).toBeUndefined();
    expect(parseRetryAfter('1.5', now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
  });

  it('a 429 holds the upstream off for what it asks, capped; a 503 only with Retry-After; the hold ends', () => {
    let clock = now;
    const gate = new RateLimitGate({ maxMs: 600_000, now: () => clock });
    expect(gate.current()).toBeUndefined();
    expect(gate.note(200, '3600')).toBeUndefined();
    expect(gate.note(503, undefined)).toBeUndefined();
    expect(gate.current()).toBeUndefined();
    expect(gate.note(429, '3600')).toEqual({ status: 429, seconds: 600 });
    clock += 599_500;
    expect(gate.current()).toEqual({ status: 429, seconds: 1 });
    clock += 500;
    expect(gate.current()).toBeUndefined();

    expect(gate.note(429, undefined)).toEqual({ status: 429, seconds: DEFAULT_HOLD_MS / 1000 });
    clock += DEFAULT_HOLD_MS;
    expect(gate.note(503, new Date(clock + 5_000).toUTCString())).toEqual({ status: 503, seconds: 5 });
  });
});

describe('the upstream token cache', () => {
  it('holds at most maxBytes of tokens, dropping the least recently used, and never keeps one larger than that', () => {
    const cache = new TokenCache(2 ** 20);
    const token = 'a'.repeat(100 * 1024);
    for (let i = 0; i < 50; i++) cache.set(`repository:app${i}:pull`, { token, until: Date.now() + 60_000 });
    expect(cache.bytes).toBeLessThanOrEqual(2 ** 20);
    expect(cache.size).toBeGreaterThan(0);
    expect(cache.size).toBeLessThan(6);
    expect(cache.get('repository:app49:pull')?.token).toBe(token);
    expect(cache.get('repository:app0:pull')).toBeUndefined();

    cache.set('repository:huge:pull', { token: 'b'.repeat(2 ** 20), until: Date.now() + 60_000 });
    expect(cache.get('repository:huge:pull')).toBeUndefined();
    expect(cache.bytes).toBeLessThanOrEqual(2 ** 20);
  });
});

describe('bounded body reads', () => {
  it('refuses a declared length above the limit without reading, and stops a longer body at the limit', async () => {
    let pulled = 0;
    const endless = () => new Readable({
      read() {
        pulled += 1;
        this.push(Buffer.alloc(64 * 1024));
      },
    });
    const declared = endless();
    await expect(readBounded(declared, String(10 * 2 ** 30), 256 * 1024)).rejects.toBeInstanceOf(BodyTooLarge);
    expect(pulled).toBe(0);
    expect(declared.destroyed).toBe(true);

    const undeclared = endless();
    await expect(readBounded(undeclared, undefined, 256 * 1024)).rejects.toBeInstanceOf(BodyTooLarge);
    expect(pulled).toBeLessThan(10);
    expect(undeclared.destroyed).toBe(true);

    expect((await readBounded(Readable.from([Buffer.from('{"token":'), Buffer.from('"t"}')]), '14', 14)).toString()).toBe('{"token":"t"}');
  });
});

describe('the blob rate watch', () => {
  it('gives up one window after the start when too little arrived, never while enough does', async () => {
    let slow = 0;
    let fast = 0;
    const started = Date.now();
    let calledAfter = -1;
    const stopSlow = watchRate(() => slow, { bytesPerSecond: 1000, windowMs: 400 }, () => (calledAfter = Date.now() - started));
    let fastCalled = false;
    const stopFast = watchRate(() => fast, { bytesPerSecond: 1000, windowMs: 400 }, () => (fastCalled = true));
    const feeder = setInterval(() => {
      slow += 10; // 200 bytes/s
      fast += 100; // 2000 bytes/s
    }, 50);
    await new Promise((r) => setTimeout(r, 1_500));
    clearInterval(feeder);
    stopSlow();
    stopFast();
    expect(calledAfter).toBeGreaterThanOrEqual(390);
    expect(calledAfter).toBeLessThan(1_000); // late timers on a loaded machine, not a later window
    expect(fastCalled).toBe(false);
    // 0 turns it off.
    expect(watchRate(() => 0, { bytesPerSecond: 0, windowMs: 400 }, () => undefined)).toBeTypeOf('function');
  });
});

describe('upstream limit configuration', () => {
  it('has defaults and reads timeouts and maxRetryAfter', () => {
    const [defaults, set] = resolveConfig({
      upstreams: [
        { prefix: 'a', url: 'https://a' },
        { prefix: 'b', url: 'https://b', timeouts: { token: '5s', manifest: '20s', blobHeaders: '15s', blobMinRate: '64KiB', blobRateWindow: '10s' }, maxRetryAfter: '5m' },
      ],
    }).upstreams;
    expect(defaults).toMatchObject({
      timeouts: { tokenMs: 30_000, manifestMs: 60_000, blobHeadersMs: 60_000, blobMinBytesPerSecond: 10 * 1024, blobRateWindowMs: 30_000 },
      maxRetryAfterMs: 3_600_000,
    });
    expect(set).toMatchObject({
      timeouts: { tokenMs: 5_000, manifestMs: 20_000, blobHeadersMs: 15_000, blobMinBytesPerSecond: 64 * 1024, blobRateWindowMs: 10_000 },
      maxRetryAfterMs: 300_000,
    });
    expect(resolveConfig({ upstreams: [{ prefix: 'a', url: 'https://a', timeouts: { blobMinRate: 0 } }] }).upstreams[0]?.timeouts.blobMinBytesPerSecond).toBe(0);
  });

  it('names the bad key', () => {
    const problems = (raw: unknown): string[] => {
      try {
        resolveConfig(raw);
      } catch (err) {
        if (err instanceof ConfigError) return err.problems;
        throw err;
      }
      return [];
    };
    expect(problems({ upstreams: [{ prefix: 'a', url: 'https://a', timeouts: { body: '5s' } }] })).toEqual(['upstreams.0.timeouts.body: unknown key']);
    expect(problems({ upstreams: [{ prefix: 'a', url: 'https://a', timeouts: { manifest: 0, token: 'soon', blobMinRate: 'fast' }, maxRetryAfter: 'later' }] })).toEqual([
      expect.stringMatching(/^upstreams\.0\.timeouts\.token: not a duration/),
      'upstreams.0.timeouts.manifest: must be more than 0',
      expect.stringMatching(/^upstreams\.0\.timeouts\.blobMinRate: not a size/),
      expect.stringMatching(/^upstreams\.0\.maxRetryAfter: not a duration/),
    ]);
  });
});
