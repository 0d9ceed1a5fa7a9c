import { X509Certificate } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/resolve.js';
import { KubeError, type Kube, type SecretObject } from '../../src/k8s/kube.js';
import { resolvePublicHost } from '../../src/k8s/public-host.js';
import { createLogger } from '../../src/log.js';
import { readKeyPair, watchCertificateFiles } from '../../src/webhook/certificate.js';
import { generateCertificate, serviceDNSNames, stillUsable } from '../../src/webhook/selfsigned.js';
import { ensureSelfSignedCertificate } from '../../src/webhook/selfsigned-secret.js';
import { makeTempDir } from '../helpers/temp-dir.js';

const logger = createLogger('silent');
const DNS = serviceDNSNames('layover-webhook', 'layover');
const tmp = makeTempDir('layover-webhook-certs-');
afterAll(() => tmp.cleanup());

function fakeKube(overrides: Partial<Kube> = {}): Kube & { secrets: Map<string, SecretObject>; bundles: string[] } {
  const secrets = new Map<string, SecretObject>();
  const bundles: string[] = [];
  const unused = async () => {
    throw new Error('not used');
  };
  return {
    secrets,
    bundles,
    readServiceNodePorts: unused,
    readSecret: async (ns, name) => secrets.get(`${ns}/${name}`),
    createSecret: async (ns, s) => {
      if (secrets.has(`${ns}/${s.metadata.name}`)) throw new KubeError(409, 'create secret');
      secrets.set(`${ns}/${s.metadata.name}`, s);
      return s;
    },
    replaceSecret: async (ns, s) => {
      secrets.set(`${ns}/${s.metadata.name}`, s);
      return s;
    },
    deleteSecret: unused,
    createEvent: unused,
    setWebhookCABundle: async (_name, pem) => {
      bundles.push(pem);
    },
    watchNamespaces: unused,
    ...overrides,
  };
}

describe('generated certificates', () => {
  it('are sha256-signed by their own CA, for the Service names, valid about a year', async () => {
    const now = new Date();
    const g = await generateCertificate(DNS, ['127.0.0.1'], now);
    const ca = new X509Certificate(g.ca);
    const leaf = new X509Certificate(g.cert);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.checkIssued(ca)).toBe(true);
    expect(ca.ca).toBe(true);
    expect(leaf.ca).toBe(false);
    for (const name of DNS) expect(leaf.checkHost(name)).toBe(name);
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1');
    const days = (Date.parse(leaf.validTo) - now.getTime()) / 86_400_000;
    expect(days).toBeGreaterThan(360);
    expect(days).toBeLessThan(370);
    // The library's default would be sha1; the signature OID must be ecdsa-with-SHA256.
    expect(leaf.raw.includes(Buffer.from('06082a8648ce3d040302', 'hex'))).toBe(true);
  });

  it('stillUsable: refuses certificates near expiry or missing a name', async () => {
    const g = await generateCertificate(DNS);
    expect(stillUsable(g.cert, DNS)).toBe(true);
    expect(stillUsable(g.cert, [...DNS, 'other.svc'])).toBe(false);
    expect(stillUsable(g.cert, DNS, new Date(Date.now() + 340 * 86_400_000))).toBe(false);
    expect(stillUsable('not a certificate', DNS)).toBe(false);
  });
});

describe('selfSigned mode', () => {
  const options = (kube: Kube) => ({ kube, namespace: 'layover', secretName: 'layover-webhook-tls', webhookConfigName: 'layover', dnsNames: DNS, logger });

  it('stores a new certificate, sets the caBundle, and reuses it the next time', async () => {
    const kube = fakeKube();
    const first = await ensureSelfSignedCertificate(options(kube));
    const stored = kube.secrets.get('layover/layover-webhook-tls');
    expect(stored?.type).toBe('kubernetes.io/tls');
    expect(Buffer.from(stored?.data?.['tls.crt'] ?? '', 'base64').toString()).toBe(first.cert);
    expect(kube.bundles).toEqual([first.ca]);
    const second = await ensureSelfSignedCertificate(options(kube));
    expect(second).toEqual(first);
    expect(kube.bundles).toEqual([first.ca, first.ca]);
  });

  it('replaces a stored certificate that no longer serves its names', async () => {
    const kube = fakeKube();
    const old = await generateCertificate(['other.svc']);
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    kube.secrets.set('layover/layover-webhook-tls', { metadata: { name: 'layover-webhook-tls', resourceVersion: '5' }, data: { 'tls.crt': b64(old.cert), 'tls.key': b64(old.key), 'ca.crt': b64(old.ca) } });
    const fresh = await ensureSelfSignedCertificate(options(kube));
    expect(fresh.cert).not.toBe(old.cert);
    expect(kube.secrets.get('layover/layover-webhook-tls')?.metadata.resourceVersion).toBe('5');
  });

  it('when another replica stores one first, serves that one', async () => {
    const theirs = await generateCertificate(DNS);
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const kube = fakeKube();
    let reads = 0;
    kube.readSecret = async () => (++reads === 1 ? undefined : { metadata: { name: 'layover-webhook-tls' }, data: { 'tls.crt': b64(theirs.cert), 'tls.key': b64(theirs.key), 'ca.crt': b64(theirs.ca) } });
    kube.createSecret = async () => {
      throw new KubeError(409, 'create secret');
    };
    expect(await ensureSelfSignedCertificate(options(kube))).toEqual(theirs);
    expect(kube.bundles).toEqual([theirs.ca]);
  });
});

describe('certificate files', () => {
  it('rejects a key that does not match its certificate and keeps serving the old pair meanwhile', async () => {
    const dir = path.join(tmp.path, 'files');
    mkdirSync(dir);
    const a = await generateCertificate(DNS);
    const b = await generateCertificate(DNS);
    const files = { cert: path.join(dir, 'tls.crt'), key: path.join(dir, 'tls.key') };
    writeFileSync(files.cert, a.cert);
    writeFileSync(files.key, a.key);
    const changes: string[] = [];
    const watch = await watchCertificateFiles(files, (p) => changes.push(p.cert), logger, { debounceMs: 10_000 });
    try {
      writeFileSync(files.cert, b.cert); // b's certificate with a's key: a half-written swap
      await expect(readKeyPair(files)).rejects.toThrow();
      expect(await watch.reload()).toBe(false);
      expect(watch.current().cert).toBe(a.cert);
      writeFileSync(files.key, b.key);
      expect(await watch.reload()).toBe(true);
      expect(watch.current()).toEqual({ cert: b.cert, key: b.key });
      expect(changes).toEqual([b.cert]);
      expect(await watch.reload()).toBe(false);
    } finally {
      watch.close();
    }
  });
});

describe('public host', () => {
  const kube = (ports: Array<{ name: string; port: number; nodePort?: number }> | undefined) => fakeKube({ readServiceNodePorts: async () => ports });

  it('is localhost:<NodePort> of the registry Service, preferring the port named registry', async () => {
    const config = defaultConfig({ webhook: { rewriteTarget: 'nodePort' } });
    expect(await resolvePublicHost(config, kube([{ name: 'metrics', port: 9090, nodePort: 31999 }, { name: 'registry', port: 5000, nodePort: 30500 }]))).toEqual({ host: 'localhost:30500', from: 'service' });
    expect(await resolvePublicHost(config, kube([{ name: '', port: 5000, nodePort: 30777 }]))).toEqual({ host: 'localhost:30777', from: 'service' });
    await expect(resolvePublicHost(config, kube([{ name: 'registry', port: 5000 }]))).rejects.toThrow(/no NodePort/);
    await expect(resolvePublicHost(config, kube(undefined))).rejects.toThrow(/not found/);
  });

  it('is registry.publicHost when configured, or without a cluster', async () => {
    const configured = defaultConfig({ registry: { publicHost: 'localhost:30999' }, webhook: { rewriteTarget: 'nodePort' } });
    expect(await resolvePublicHost(configured, kube([{ name: 'registry', port: 5000, nodePort: 30500 }]))).toEqual({ host: 'localhost:30999', from: 'config' });
    expect(await resolvePublicHost(defaultConfig({ webhook: { rewriteTarget: 'nodePort' } }), undefined)).toEqual({ host: 'localhost:5000', from: 'config' });
  });
});
