import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/resolve.js';
import { createLogger } from '../../src/log.js';
import { defaultHealthURL, startHealthCheck } from '../../src/webhook/health.js';
import { freePort } from '../helpers/free-port.js';

describe('registry health check', () => {
  let server: Server;
  let base: string;
  let hits = 0;
  beforeAll(async () => {
    server = createServer((req, res) => {
      hits++;
      const status = Number(req.url?.slice(1));
      if (req.url === '/hang') return; // never answers
      res.writeHead(status).end('{}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  const check = async (path: string, timeoutMs = 500) => {
    const health = startHealthCheck({ url: `${base}${path}`, logger: createLogger('silent'), intervalMs: 60_000, timeoutMs });
    try {
      expect(health.healthy()).toBe(false); // unknown until the first answer
      return await health.refresh();
    } finally {
      await health.close();
    }
  };

  it('treats any HTTP answer below 500 as up (200, and 401 when auth is on)', async () => {
    expect(await check('/200')).toBe(true);
    expect(await check('/401')).toBe(true);
    expect(await check('/404')).toBe(true);
  });

  it('treats 5xx, a refused connection and a timeout as down', async () => {
    expect(await check('/500')).toBe(false);
    expect(await check('/503')).toBe(false);
    const closed = await freePort();
    const refused = startHealthCheck({ url: `http://127.0.0.1:${closed}/v2/`, logger: createLogger('silent'), intervalMs: 60_000 });
    expect(await refused.refresh()).toBe(false);
    await refused.close();
    const started = Date.now();
    expect(await check('/hang', 300)).toBe(false);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('caches the answer and refreshes it in the background', async () => {
    const health = startHealthCheck({ url: `${base}/200`, logger: createLogger('silent'), intervalMs: 50 });
    try {
      const before = hits;
      await expect.poll(() => health.healthy(), { timeout: 2000 }).toBe(true);
      await expect.poll(() => hits - before, { timeout: 2000 }).toBeGreaterThanOrEqual(3);
      const during = hits;
      for (let i = 0; i < 100; i++) health.healthy();
      expect(hits - during).toBeLessThan(3);
    } finally {
      await health.close();
    }
  });

  it('concurrent refreshes share one probe', async () => {
    const health = startHealthCheck({ url: `${base}/200`, logger: createLogger('silent'), intervalMs: 60_000 });
    const before = hits;
    await Promise.all([health.refresh(), health.refresh(), health.refresh()]);
    expect(hits - before).toBe(1);
    await health.close();
  });

  it('defaults to the registry’s own /v2/ on a loopback address', () => {
    expect(defaultHealthURL(defaultConfig())).toBe('http://127.0.0.1:5000/v2/');
    expect(defaultHealthURL(defaultConfig({ registry: { listen: '0.0.0.0:5001' } }))).toBe('http://127.0.0.1:5001/v2/');
    expect(defaultHealthURL(defaultConfig({ registry: { listen: '[::]:5001' } }))).toBe('http://[::1]:5001/v2/');
    expect(defaultHealthURL(defaultConfig({ registry: { listen: '127.0.0.1:5443', tls: { cert: 'c', key: 'k' } } }))).toBe('https://127.0.0.1:5443/v2/');
    expect(defaultHealthURL(defaultConfig({ webhook: { healthURL: 'http://layover-registry.layover.svc:5000/v2/' } }))).toBe('http://layover-registry.layover.svc:5000/v2/');
  });
});
