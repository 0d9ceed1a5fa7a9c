// The small parts behind the web page: what kind of artifact a manifest is, an upstream's latency
// and last error, and the usage sampler's configuration keys.
import { describe, expect, it } from 'vitest';
import { artifactKind } from '../../src/api/artifact-kind.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { UpstreamHealth } from '../../src/registry/proxy/health.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

describe('artifactKind', () => {
  it.each([
    [OCI_MANIFEST, 'application/vnd.oci.image.config.v1+json', 'image'],
    ['application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.container.image.v1+json', 'image'],
    [OCI_INDEX, undefined, 'index'],
    ['application/vnd.docker.distribution.manifest.list.v2+json', undefined, 'index'],
    [OCI_MANIFEST, 'application/vnd.cncf.helm.config.v1+json', 'helm'],
    [OCI_MANIFEST, 'application/vnd.dev.cosign.artifact.sig.v1+json', 'signature'],
    [OCI_MANIFEST, 'application/vnd.dev.cosign.simplesigning.v1+json', 'signature'],
    [OCI_MANIFEST, 'application/vnd.cncf.notary.signature', 'signature'],
    [OCI_MANIFEST, 'application/spdx+json', 'sbom'],
    [OCI_MANIFEST, 'application/vnd.cyclonedx+json', 'sbom'],
    [OCI_MANIFEST, 'application/vnd.in-toto+json', 'attestation'],
    [OCI_MANIFEST, 'application/vnd.example.thing', 'artifact'],
    [OCI_INDEX, 'application/vnd.example.bundle', 'artifact'],
  ])('%s with artifact type %s is %s', (mediaType, artifactType, kind) => {
    expect(artifactKind(mediaType, artifactType)).toBe(kind);
  });
});

describe('UpstreamHealth latency and last error', () => {
  it('keeps a moving average of answer times and the last failure, also after recovery', () => {
    let now = 1_000;
    const health = new UpstreamHealth({ downAfterFailures: 2, downForMs: 1_000, now: () => now });
    expect(health.latency).toBeUndefined();
    expect(health.lastError).toBeUndefined();
    health.answered(100);
    expect(health.latency).toEqual({ lastMs: 100, averageMs: 100 });
    health.answered(200);
    expect(health.latency).toEqual({ lastMs: 200, averageMs: 110 });
    now = 5_000;
    health.failed('unreachable: ECONNREFUSED');
    health.succeeded();
    expect(health.down).toBe(false);
    expect(health.lastError).toEqual({ message: 'unreachable: ECONNREFUSED', at: 5_000 });
  });
});

describe('usage configuration', () => {
  it('samples every 5 minutes and keeps 14 days by default; both are durations above 0', () => {
    expect(resolveConfig({}).usage).toEqual({ sampleIntervalMs: 300_000, keepMs: 14 * 86_400_000 });
    expect(resolveConfig({ usage: { sampleInterval: '1m', keep: '2d' } }).usage).toEqual({ sampleIntervalMs: 60_000, keepMs: 2 * 86_400_000 });
    expect(() => resolveConfig({ usage: { sampleInterval: '0s' } })).toThrow(/usage\.sampleInterval: must be more than 0/);
    expect(() => resolveConfig({ usage: { keep: 'forever' } })).toThrow(/usage\.keep: not a duration/);
  });
});
