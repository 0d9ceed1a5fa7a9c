// Proves the layover launchers: in-process and as a child process that survives kill -9 and restarts.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startLayover, spawnLayover } from '../helpers/layover.js';
import { peakRssBytes } from '../helpers/process-stats.js';
import { getBytes } from '../helpers/registry-client.js';

describe('startLayover', () => {
  it('listens on 127.0.0.1 with a fresh root, auth off, and the real port in the config', async () => {
    const layover = await startLayover({}, { logLevel: 'debug' });
    try {
      expect(layover.host).toBe(`127.0.0.1:${layover.port}`);
      expect(layover.config.registry.port).toBe(layover.port);
      expect(layover.config.registry.publicHost).toBe(`localhost:${layover.port}`);
      expect(layover.config.storage.root).toBe(layover.root);
      expect(layover.config.auth.enabled).toBe(false);
      expect(layover.config.log.level).toBe('debug');
      const res = await getBytes(`${layover.url}/v2/`);
      expect(res.status).toBe(200);
      expect(res.headers['docker-distribution-api-version']).toBe('registry/2.0');
    } finally {
      await layover.close();
    }
    expect(existsSync(layover.dir)).toBe(false);
  });

  it('rejects an invalid configuration with the key named', async () => {
    await expect(startLayover({ registry: { maxManifestSize: 'lots' } })).rejects.toThrow(/registry\.maxManifestSize/);
  });
});

describe('spawnLayover', () => {
  it('runs `layover serve`, dies on kill -9 and restarts on the same port and root', async () => {
    const layover = await spawnLayover();
    try {
      expect((await getBytes(`${layover.url}/v2/`)).status).toBe(200);
      expect(peakRssBytes(layover.pid)).toBeGreaterThan(10 * 2 ** 20);
      const firstPid = layover.pid;
      expect(await layover.kill('SIGKILL')).toBe('SIGKILL');
      expect(layover.alive()).toBe(false);
      await expect(getBytes(`${layover.url}/v2/`)).rejects.toThrow();
      await layover.restart();
      expect(layover.pid).not.toBe(firstPid);
      expect((await getBytes(`${layover.url}/v2/`)).status).toBe(200);
      expect(layover.log()).toMatch(/layover registry listening/);
    } finally {
      await layover.close();
    }
    expect(existsSync(layover.dir)).toBe(false);
  });
});
