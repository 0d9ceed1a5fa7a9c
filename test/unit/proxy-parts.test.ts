// Pure parts of the pull-through cache: challenge parsing, upstream names, credential helper
// output, the circuit breaker, and the router's containerd ?ns= mapping.
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/resolve.js';
import { parseChallenges } from '../../src/registry/proxy/challenge.js';
import { parseHelperOutput } from '../../src/registry/proxy/credentials.js';
import { UpstreamHealth } from '../../src/registry/proxy/health.js';
import { buildMirrors } from '../../src/registry/proxy/mirrors.js';
import { upstreamPath } from '../../src/registry/proxy/upstream-names.js';
import type { Store } from '../../src/registry/storage/store.js';

const config = resolveConfig({
  upstreams: [
    { prefix: 'docker.io', url: 'https://registry-1.docker.io', aliases: ['hub'] },
    { prefix: 'ghcr.io', url: 'https://ghcr.io' },
    { prefix: 'local', url: 'http://127.0.0.1:5999', pushable: true },
  ],
});

describe('WWW-Authenticate parsing', () => {
  it('reads Bearer parameters, quoted and escaped, and several challenges', () => {
    expect(parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull' } },
    ]);
    expect(parseChallenges(['Basic realm="x \\"y\\""', 'Bearer realm=https://t/token'])).toEqual([
      { scheme: 'basic', params: { realm: 'x "y"' } },
      { scheme: 'bearer', params: { realm: 'https://t/token' } },
    ]);
    expect(parseChallenges(undefined)).toEqual([]);
  });
});

describe('upstream names', () => {
  it('maps Docker Hub one-component names under library/ and leaves others alone', () => {
    const [hub, ghcr] = config.upstreams as [typeof config.upstreams[0], typeof config.upstreams[0]];
    expect(upstreamPath(hub, 'docker.io/nginx')).toBe('library/nginx');
    expect(upstreamPath(hub, 'docker.io/bitnami/redis')).toBe('bitnami/redis');
    expect(upstreamPath(ghcr, 'ghcr.io/nginx')).toBe('nginx');
    expect(upstreamPath(ghcr, 'ghcr.io')).toBeUndefined();
  });

  it('routes by prefix or alias, maps ?ns= by prefix, alias or host, and knows what may be pushed', () => {
    const mirrors = buildMirrors(config, {} as Store);
    expect(mirrors.sourceFor('docker.io/library/nginx')).toBeDefined();
    expect(mirrors.sourceFor('hub/nginx')).toBe(mirrors.sourceFor('docker.io/nginx'));
    expect(mirrors.sourceFor('alice/app')).toBeUndefined();
    expect(mirrors.sourceFor('docker.io')).toBeUndefined();
    expect(mirrors.localName('library/nginx', 'docker.io')).toBe('docker.io/library/nginx');
    expect(mirrors.localName('library/nginx', 'registry-1.docker.io')).toBe('docker.io/library/nginx');
    expect(mirrors.localName('a/b', '127.0.0.1:5999')).toBe('local/a/b');
    expect(mirrors.localName('a/b', 'quay.io')).toBeUndefined();
    expect(mirrors.pushable('docker.io/x/y')).toBe(false);
    expect(mirrors.pushable('local/x/y')).toBe(true);
    expect(mirrors.evictable('docker.io/x/y')).toBe(true);
    expect(mirrors.evictable('local/x/y')).toBe(false);
    expect(mirrors.evictable('alice/app')).toBe(false);
    void mirrors.close();
  });
});

describe('credential helper output', () => {
  it('splits user:secret at the first colon, or pairs a bare secret with the username', () => {
    expect(parseHelperOutput('AWS:abc:def\n', undefined)).toEqual({ username: 'AWS', password: 'abc:def' });
    expect(parseHelperOutput('tok3n\n', 'oauth2accesstoken')).toEqual({ username: 'oauth2accesstoken', password: 'tok3n' });
    expect(() => parseHelperOutput('tok3n', undefined)).toThrow(/no username/);
    expect(() => parseHelperOutput('  \n', 'u')).toThrow(/nothing/);
  });
});

describe('upstream health', () => {
  it('goes down after N consecutive failures, lets one probe through after downFor, and recovers on success', () => {
    let now = 0;
    const health = new UpstreamHealth({ downAfterFailures: 2, downForMs: 1000, now: () => now });
    health.failed();
    expect(health.allow()).toBe(true);
    health.failed();
    expect(health.down).toBe(true);
    expect(health.allow()).toBe(false);
    expect(health.retryInMs()).toBe(1000);
    now = 1000;
    expect(health.allow()).toBe(true);
    expect(health.allow()).toBe(false); // one probe at a time
    health.failed();
    expect(health.allow()).toBe(false);
    now = 2000;
    expect(health.allow()).toBe(true);
    health.succeeded();
    expect(health.down).toBe(false);
    expect(health.allow()).toBe(true);
  });
});
