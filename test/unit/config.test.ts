import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError, defaultConfig, resolveConfig } from '../../src/config/resolve.js';
import { schemaProblems } from '../../src/config/schema-check.js';
import { parseDuration, parseListen, parseSize } from '../../src/config/units.js';

describe('units', () => {
  it('parses durations', () => {
    expect(parseDuration('48h')).toBe(48 * 3_600_000);
    expect(parseDuration('1h30m')).toBe(90 * 60_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration(60)).toBe(60_000);
    for (const bad of ['', 'h', '5x', '-1s', '1 h', '1h-2m']) expect(() => parseDuration(bad), bad).toThrow(/not a duration/);
  });
  it('parses sizes', () => {
    expect(parseSize('10GiB')).toBe(10 * 2 ** 30);
    expect(parseSize('500MB')).toBe(500e6);
    expect(parseSize('4mib')).toBe(4 * 2 ** 20);
    expect(parseSize(1024)).toBe(1024);
    for (const bad of ['', 'GiB', '5 parsecs', '-1']) expect(() => parseSize(bad), bad).toThrow(/not a size/);
  });
  it('parses listen addresses', () => {
    expect(parseListen('127.0.0.1:5000')).toEqual({ host: '127.0.0.1', port: 5000 });
    expect(parseListen('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(parseListen(':8443')).toEqual({ host: '0.0.0.0', port: 8443 });
    expect(() => parseListen('localhost')).toThrow();
    expect(() => parseListen('a:70000')).toThrow();
  });
});

describe('configuration', () => {
  it('has embedded defaults', () => {
    const c = resolveConfig({}, { baseDir: '/srv' });
    expect(c.registry).toMatchObject({ host: '127.0.0.1', port: 5000, publicHost: 'localhost:5000', maxManifestBytes: 4 * 2 ** 20 });
    expect(c.storage.root).toBe('/srv/data');
    expect(c.gc.intervalMs).toBe(48 * 3_600_000);
    expect(c.webhook.namespaceLabel).toBe('layover.dev/mirror');
  });
  it('names every unknown key and bad value', () => {
    let error: ConfigError | undefined;
    try {
      resolveConfig({ registry: { listen: 'x:1', bogus: 1 }, storage: { root: 3 }, nope: {} });
    } catch (err) {
      error = err as ConfigError;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error?.problems).toEqual(expect.arrayContaining(['registry.bogus: unknown key', 'storage.root: must be string', 'nope: unknown key']));
  });
  it('names bad units and duplicate upstream prefixes', () => {
    expect(() => resolveConfig({ gc: { interval: '5x' } })).toThrow(/gc\.interval: not a duration/);
    expect(() =>
      resolveConfig({ upstreams: [{ prefix: 'docker.io', url: 'https://a' }, { prefix: 'b', url: 'https://b', aliases: ['docker.io'] }] }),
    ).toThrow(/"docker.io" is used twice/);
    expect(() => resolveConfig({ upstreams: [{ prefix: 'Bad', url: 'https://a' }] })).toThrow(/upstreams\.0\.prefix/);
  });
  it('registry.uploadIdleTimeout: one hour by default, a duration of at least a second', () => {
    expect(resolveConfig({}).registry.uploadIdleTimeoutMs).toBe(3_600_000);
    expect(resolveConfig({ registry: { uploadIdleTimeout: '90s' } }).registry.uploadIdleTimeoutMs).toBe(90_000);
    expect(() => resolveConfig({ registry: { uploadIdleTimeout: 'soon' } })).toThrow(/registry\.uploadIdleTimeout: not a duration/);
    expect(() => resolveConfig({ registry: { uploadIdleTimeout: '0s' } })).toThrow(/registry\.uploadIdleTimeout: must be at least 1s/);
  });
  it('storage.driver s3: storage.s3 resolved, and every bad key named', () => {
    const c = resolveConfig({ storage: { driver: 's3', s3: { endpoint: 'http://rgw:7480/', bucket: 'layover', prefix: '/team/reg', accessKeyIdFile: 'id', secretAccessKeyFile: 'secret', redirect: true } } }, { baseDir: '/srv' });
    expect(c.storage.driver).toBe('s3');
    expect(c.storage.s3).toEqual({
      endpoint: 'http://rgw:7480', region: expect.any(String), bucket: 'layover', prefix: 'team/reg/',
      accessKeyIdFile: '/srv/id', secretAccessKeyFile: '/srv/secret', forcePathStyle: true, redirect: true, redirectTTLMs: 300_000,
    });
    expect(resolveConfig({ storage: { driver: 's3', s3: { bucket: 'b-1', region: 'eu-west-1' } } }).storage.s3).toMatchObject({ prefix: '', forcePathStyle: false, redirect: false, region: 'eu-west-1' });
    expect(resolveConfig({}).storage).toMatchObject({ driver: 'filesystem', s3: undefined });
    const problems = (raw: object): string[] => {
      try {
        resolveConfig(raw);
      } catch (err) {
        return (err as ConfigError).problems;
      }
      return [];
    };
    expect(problems({ storage: { driver: 's3' } })).toEqual([expect.stringMatching(/^storage\.s3: required with storage\.driver: s3/)]);
    expect(problems({ storage: { driver: 's3', s3: {} } })).toEqual(['storage.s3.bucket: required with storage.driver: s3']);
    expect(problems({ storage: { s3: { bucket: 'abc' } } })).toEqual(['storage.s3: set only with storage.driver: s3']);
    expect(problems({ storage: { driver: 'gcs' } })).toEqual([expect.stringMatching(/^storage\.driver/)]);
    expect(problems({ storage: { driver: 's3', s3: { bucket: 'Bad_Bucket' } } })).toEqual([expect.stringMatching(/^storage\.s3\.bucket: "Bad_Bucket" is not a valid bucket name/)]);
    expect(problems({ storage: { driver: 's3', s3: { bucket: 'abc', endpoint: 'ftp://x' } } })).toEqual(['storage.s3.endpoint: must be http:// or https://']);
    expect(problems({ storage: { driver: 's3', s3: { bucket: 'abc', prefix: 'a/../b' } } })).toEqual([expect.stringMatching(/^storage\.s3\.prefix/)]);
    expect(problems({ storage: { driver: 's3', s3: { bucket: 'abc', accessKeyIdFile: 'id' } } })).toEqual([expect.stringMatching(/^storage\.s3: set both accessKeyIdFile and secretAccessKeyFile/)]);
    expect(problems({ storage: { driver: 's3', s3: { bucket: 'abc', redirectTTL: '8d' } } })).toEqual([expect.stringMatching(/^storage\.s3\.redirectTTL: must be between/)]);
    expect(problems({ storage: { driver: 's3', s3: { bucket: 'abc', secret: 'x' } } })).toEqual(['storage.s3.secret: unknown key']);
  });
  it('loads YAML relative to the file', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'layover-config-'));
    const file = path.join(dir, 'c.yaml');
    await writeFile(file, 'registry:\n  listen: 127.0.0.1:5999\nstorage:\n  root: store\nupstreams:\n  - prefix: docker.io\n    url: https://registry-1.docker.io/\n    tagTTL: 2m\n');
    const c = await loadConfig(file);
    expect(c.registry.port).toBe(5999);
    expect(c.storage.root).toBe(path.join(dir, 'store'));
    expect(c.upstreams[0]).toMatchObject({ prefix: 'docker.io', url: 'https://registry-1.docker.io', tagTTLMs: 120_000 });
    await writeFile(file, 'registry: [unclosed\n');
    await expect(loadConfig(file)).rejects.toThrow(/not valid YAML/);
  });

  it('names the file in every refusal: unreadable, not YAML, not a mapping, against the schema', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'layover-config-'));
    const file = path.join(dir, 'c.yaml');
    const refusal = async () => (await loadConfig(file).then(() => undefined, (err: unknown) => err)) as ConfigError;
    expect((await refusal()).message).toBe(`invalid configuration in ${file}:\n  cannot read: ENOENT`);
    await writeFile(file, 'registry: [unclosed\n');
    expect((await refusal()).problems).toEqual([expect.stringMatching(/^not valid YAML: Flow sequence in block collection must be sufficiently indented/)]);
    await writeFile(file, '- a\n- b\n');
    expect((await refusal()).message).toBe(`invalid configuration in ${file}:\n  (top level): must be a mapping`);
    await writeFile(file, 'registry: { lisen: 1 }\nwebhook: { enabled: "yes" }\n');
    expect((await refusal()).problems).toEqual(['registry.lisen: unknown key', 'webhook.enabled: must be boolean']);
    // An empty file is the empty mapping.
    await writeFile(file, '');
    expect(await loadConfig(file)).toMatchObject({ registry: { port: 5000 }, source: file });
  });

  it('without a file, the embedded defaults, which fit the schema as they are (so loadConfig skips the check)', async () => {
    expect(schemaProblems({})).toEqual([]);
    const { source, ...fromLoad } = await loadConfig(undefined);
    expect(source).toBeUndefined();
    expect(fromLoad).toEqual(defaultConfig({}, process.cwd()));
  });
});

describe('cluster.advertiseUrl', () => {
  const db = { url: 'postgres://layover@db:5432/layover' };
  const withPodIp = <T>(ip: string | undefined, fn: () => T): T => {
    const saved = process.env.POD_IP;
    if (ip === undefined) delete process.env.POD_IP;
    else process.env.POD_IP = ip;
    try {
      return fn();
    } finally {
      if (saved === undefined) delete process.env.POD_IP;
      else process.env.POD_IP = saved;
    }
  };

  it('is only set with a database: the embedded default has no cluster', () => {
    expect(withPodIp('10.0.0.9', () => resolveConfig({}).cluster)).toBeUndefined();
  });

  it('defaults to the Pod IP, else the listen address, on the registry port (https with TLS)', () => {
    expect(withPodIp('10.0.0.9', () => resolveConfig({ database: db, registry: { listen: '0.0.0.0:5000' } }).cluster?.advertiseUrl)).toBe('http://10.0.0.9:5000');
    expect(withPodIp('fd00::9', () => resolveConfig({ database: db, registry: { listen: '0.0.0.0:5000' } }).cluster?.advertiseUrl)).toBe('http://[fd00::9]:5000');
    expect(withPodIp(undefined, () => resolveConfig({ database: db, registry: { listen: '127.0.0.1:5123' } }).cluster?.advertiseUrl)).toBe('http://127.0.0.1:5123');
    const tls = { cert: '/tls/tls.crt', key: '/tls/tls.key' };
    expect(withPodIp('10.0.0.9', () => resolveConfig({ database: db, registry: { listen: '0.0.0.0:5443', tls } }).cluster?.advertiseUrl)).toBe('https://10.0.0.9:5443');
  });

  it('takes an explicit URL, and refuses one that is no plain http(s) base URL', () => {
    expect(resolveConfig({ database: db, cluster: { advertiseUrl: 'http://layover-0.layover:5000/' } }).cluster?.advertiseUrl).toBe('http://layover-0.layover:5000');
    for (const bad of ['layover:5000', 'ftp://x:21', 'http://user:pw@x:5000', 'http://x:5000/?a=1']) {
      expect(() => resolveConfig({ database: db, cluster: { advertiseUrl: bad } }), bad).toThrow(/cluster.advertiseUrl/);
    }
  });
});
