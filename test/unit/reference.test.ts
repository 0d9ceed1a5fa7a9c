import { describe, expect, it } from 'vitest';
import {
  ReferenceError,
  familiarString,
  formatReference,
  normalizeReference,
  parseCanonical,
  parseNormalized,
  splitDomain,
  type ReferenceErrorCode,
} from '../../src/reference/index.js';

const D64 = 'sha256:' + 'a'.repeat(64);
const D64b = 'sha256:6a92cd1fcdc8d8cdec60f33dda4db2cb1fcdcacf3410a8e05b3741f44a9b5998';
const D512 = 'sha512:' + '0123456789abcdef'.repeat(8);

// input → fully-qualified normalised form (default tag added when neither tag nor digest)
const VALID: Array<[string, string]> = [
  ['nginx', 'docker.io/library/nginx:latest'],
  ['nginx:1.27', 'docker.io/library/nginx:1.27'],
  ['nginx:1.27-alpine', 'docker.io/library/nginx:1.27-alpine'],
  ['library/nginx', 'docker.io/library/nginx:latest'],
  ['docker.io/nginx', 'docker.io/library/nginx:latest'],
  ['docker.io/library/nginx:stable', 'docker.io/library/nginx:stable'],
  ['index.docker.io/nginx', 'docker.io/library/nginx:latest'],
  ['index.docker.io/bitnami/redis:7.2', 'docker.io/bitnami/redis:7.2'],
  ['bitnami/redis', 'docker.io/bitnami/redis:latest'],
  ['grafana/grafana-oss:10.4.1', 'docker.io/grafana/grafana-oss:10.4.1'],
  ['ghcr.io/a/b:1', 'ghcr.io/a/b:1'],
  ['ghcr.io/fluxcd/source-controller:v1.2.4', 'ghcr.io/fluxcd/source-controller:v1.2.4'],
  ['quay.io/prometheus/node-exporter:v1.8.0', 'quay.io/prometheus/node-exporter:v1.8.0'],
  ['registry.k8s.io/pause:3.9', 'registry.k8s.io/pause:3.9'],
  ['registry.k8s.io/ingress-nginx/controller:v1.10.0', 'registry.k8s.io/ingress-nginx/controller:v1.10.0'],
  ['gcr.io/distroless/static-debian12:nonroot', 'gcr.io/distroless/static-debian12:nonroot'],
  ['us-docker.pkg.dev/my-proj/repo/app:2', 'us-docker.pkg.dev/my-proj/repo/app:2'],
  ['123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:2024.01', '123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:2024.01'],
  ['myacr.azurecr.io/samples/hello:v1', 'myacr.azurecr.io/samples/hello:v1'],
  ['public.ecr.aws/docker/library/busybox:1.36', 'public.ecr.aws/docker/library/busybox:1.36'],
  ['localhost/app', 'localhost/app:latest'],
  ['localhost:5000/app', 'localhost:5000/app:latest'],
  ['localhost:5000/team/app:dev', 'localhost:5000/team/app:dev'],
  ['127.0.0.1:30500/docker.io/library/nginx:1', '127.0.0.1:30500/docker.io/library/nginx:1'],
  ['registry.example.com:8443/a/b/c/d:v', 'registry.example.com:8443/a/b/c/d:v'],
  ['my-registry:5000/app', 'my-registry:5000/app:latest'],
  ['[::1]:5000/app:1', '[::1]:5000/app:1'],
  [`nginx@${D64}`, `docker.io/library/nginx@${D64}`],
  [`nginx:1.27@${D64b}`, `docker.io/library/nginx:1.27@${D64b}`],
  [`ghcr.io/a/b@${D64b}`, `ghcr.io/a/b@${D64b}`],
  [`quay.io/a/b:latest@${D64}`, `quay.io/a/b:latest@${D64}`],
  [`localhost:5000/x@${D512}`, `localhost:5000/x@${D512}`],
  ['foo_bar/baz__qux', 'docker.io/foo_bar/baz__qux:latest'],
  ['a/b-----c', 'docker.io/a/b-----c:latest'],
  ['a.b/c.d', 'a.b/c.d:latest'],
  ['busybox:_x', 'docker.io/library/busybox:_x'],
  ['busybox:UPPER.Tag-1', 'docker.io/library/busybox:UPPER.Tag-1'],
  ['Example.COM/app', 'Example.COM/app:latest'],
  ['EXAMPLE/app', 'EXAMPLE/app:latest'],
  [`busybox:${'t'.repeat(128)}`, `docker.io/library/busybox:${'t'.repeat(128)}`],
  ['0/1', 'docker.io/0/1:latest'],
];

const INVALID: Array<[string, ReferenceErrorCode]> = [
  ['', 'EMPTY'],
  ['Nginx', 'UPPERCASE'],
  ['library/Nginx', 'UPPERCASE'],
  ['ghcr.io/Owner/app', 'UPPERCASE'],
  ['nginx:', 'INVALID_FORMAT'],
  ['nginx@', 'INVALID_FORMAT'],
  [':latest', 'INVALID_FORMAT'],
  ['nginx:-tag', 'INVALID_FORMAT'],
  ['nginx:.tag', 'INVALID_FORMAT'],
  [`nginx:${'t'.repeat(129)}`, 'INVALID_FORMAT'],
  ['nginx latest', 'INVALID_FORMAT'],
  [' nginx', 'INVALID_FORMAT'],
  ['a//b', 'INVALID_FORMAT'],
  ['a/b/', 'INVALID_FORMAT'],
  ['/a', 'INVALID_FORMAT'],
  ['-a/b', 'INVALID_FORMAT'],
  ['a/b-', 'INVALID_FORMAT'],
  ['a/b..c', 'INVALID_FORMAT'],
  ['a/b___c', 'INVALID_FORMAT'],
  ['host:port/app', 'INVALID_FORMAT'],
  ['-host.io/app', 'INVALID_FORMAT'],
  ['host-.io/app', 'INVALID_FORMAT'],
  ['[fe80::1%eth0]:5000/app', 'INVALID_FORMAT'],
  ['nginx@sha256:abc', 'INVALID_FORMAT'],
  [`nginx@sha256:${'a'.repeat(63)}`, 'DIGEST_INVALID'],
  [`nginx@sha256:${'A'.repeat(64)}`, 'DIGEST_INVALID'],
  [`nginx@md5:${'a'.repeat(32)}`, 'DIGEST_UNSUPPORTED'],
  [`nginx@${D64}:tag`, 'INVALID_FORMAT'],
  ['a'.repeat(64), 'IDENTIFIER'],
  [`docker.io/${'a'.repeat(250)}`, 'NAME_TOO_LONG'],
  ['ghcr.io/a/b:1:2', 'INVALID_FORMAT'],
  ['ghcr.io/a/b:t@g', 'INVALID_FORMAT'],
  ['ghcr.io/a/b\n', 'INVALID_FORMAT'],
];

describe('image references: real-world valid forms', () => {
  it.each(VALID)('%s → %s', (input, expected) => {
    expect(formatReference(normalizeReference(input))).toBe(expected);
  });

  it('has at least 40 valid cases and 30 invalid ones', () => {
    expect(VALID.length).toBeGreaterThanOrEqual(40);
    expect(INVALID.length).toBeGreaterThanOrEqual(30);
  });
});

describe('image references: invalid forms are reported, never guessed', () => {
  it.each(INVALID)('%j is rejected (%s)', (input, code) => {
    let caught: unknown;
    try {
      parseNormalized(input);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ReferenceError);
    expect((caught as ReferenceError).code).toBe(code);
  });
});

describe('reference parts', () => {
  it('keeps tag and digest exactly, adds no tag to a digest-only reference', () => {
    expect(normalizeReference(`nginx@${D64b}`)).toEqual({ domain: 'docker.io', path: 'library/nginx', digest: D64b });
    expect(normalizeReference(`quay.io/a/b:v1@${D64b}`)).toEqual({ domain: 'quay.io', path: 'a/b', tag: 'v1', digest: D64b });
    expect(parseNormalized('nginx')).toEqual({ domain: 'docker.io', path: 'library/nginx' });
  });

  it('separates the port from the tag', () => {
    expect(normalizeReference('localhost:5000/app:5001')).toEqual({ domain: 'localhost:5000', path: 'app', tag: '5001' });
    // Without a slash "localhost:5000" is a Docker Hub repository named localhost with tag 5000.
    expect(normalizeReference('localhost:5000')).toEqual({ domain: 'docker.io', path: 'library/localhost', tag: '5000' });
  });

  it('splits domains the way docker does', () => {
    expect(splitDomain('foo/bar')).toEqual({ domain: 'docker.io', remainder: 'foo/bar' });
    expect(splitDomain('foo.io/bar')).toEqual({ domain: 'foo.io', remainder: 'bar' });
    expect(splitDomain('localhost/bar')).toEqual({ domain: 'localhost', remainder: 'bar' });
    expect(splitDomain('index.docker.io/bar')).toEqual({ domain: 'docker.io', remainder: 'library/bar' });
  });

  it('formats the familiar short form', () => {
    expect(familiarString(normalizeReference('docker.io/library/nginx:1'))).toBe('nginx:1');
    expect(familiarString(normalizeReference('index.docker.io/bitnami/redis'))).toBe('bitnami/redis:latest');
    expect(familiarString(normalizeReference('ghcr.io/a/b:1'))).toBe('ghcr.io/a/b:1');
    expect(familiarString(normalizeReference('docker.io/library/a/b'))).toBe('library/a/b:latest');
  });

  it('parseCanonical refuses familiar names', () => {
    expect(parseCanonical('docker.io/library/nginx:1')).toEqual({ domain: 'docker.io', path: 'library/nginx', tag: '1' });
    expect(() => parseCanonical('nginx:1')).toThrow(/canonical/);
    expect(() => parseCanonical('index.docker.io/library/nginx')).toThrow(/canonical/);
  });

  it('round-trips every normalised form', () => {
    for (const [, expected] of VALID) expect(formatReference(parseNormalized(expected))).toBe(expected);
  });
});
