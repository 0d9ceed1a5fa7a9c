// The self-signed mode over time, against a loopback apiserver driven by the real client: the CA
// outlives serving-certificate renewals, a CA rotation never leaves kube-apiserver without trust
// in the certificate being served, caBundle writes survive a concurrent writer (409), and a
// renewal made by one replica reaches another replica's listener.
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { connect, createServer, type Server } from 'node:tls';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/resolve.js';
import { KubeError } from '../../src/k8s/kube.js';
import { createLogger } from '../../src/log.js';
import { CA_RENEW_BEFORE_MS, SWITCH_GRACE_MS, TRUST_GRACE_MS } from '../../src/webhook/ca-rotation.js';
import type { KeyPair } from '../../src/webhook/certificate.js';
import { RECHECK_MS, certificateSource } from '../../src/webhook/certificate-source.js';
import { ensureSelfSignedCertificate, splitPems, stateFromSecret } from '../../src/webhook/selfsigned-secret.js';
import { serviceDNSNames } from '../../src/webhook/selfsigned.js';
import { startCertApiserver, type CertApiserver } from '../helpers/cert-apiserver.js';

// Everything logged at debug level and up is kept, to check that no key or certificate is.
const logged: string[] = [];
const logStream = new PassThrough();
logStream.on('data', (chunk: Buffer) => logged.push(chunk.toString()));
const logger = createLogger('debug', logStream);
const DNS = serviceDNSNames('layover-webhook', 'layover');
const DAY = 86_400_000;
const T0 = Date.parse('2027-01-01T00:00:00Z');

let api: CertApiserver;
beforeEach(async () => {
  api = await startCertApiserver();
});
afterEach(async () => {
  await api.close();
});

const round = (at: number, dnsNames = DNS) => ensureSelfSignedCertificate({ kube: api.kube(), namespace: 'layover', secretName: 'layover-webhook-tls', webhookConfigName: 'layover', dnsNames, logger, now: () => new Date(at) });
const stored = () => {
  const state = stateFromSecret(api.secret('layover', 'layover-webhook-tls') as Parameters<typeof stateFromSecret>[0]);
  if (!state) throw new Error('no stored certificate');
  return state;
};
const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;
/** Whether kube-apiserver, holding the current caBundle, accepts this serving certificate. */
const trustedByApiserver = (cert: string) => splitPems(api.caBundle()).some((ca) => new X509Certificate(cert).checkIssued(new X509Certificate(ca)) && new X509Certificate(cert).verify(new X509Certificate(ca).publicKey));

describe('self-signed certificates over time', () => {
  it('the CA survives serving-certificate renewals (near expiry, and when the Service names change); the caBundle is not rewritten', async () => {
    const first = await round(T0);
    const ca = stored().ca.cert;
    expect(api.caBundle()).toBe(ca);
    expect(new X509Certificate(ca).validTo).toMatch(/2036/);
    expect(api.caBundleWrites).toHaveLength(1);

    expect((await round(T0 + 300 * DAY)).cert).toBe(first.cert);
    const renewed = await round(T0 + 340 * DAY);
    expect(renewed.cert).not.toBe(first.cert);
    expect(renewed.key).not.toBe(first.key);
    expect(stored().ca.cert).toBe(ca);
    expect(stored().trusted).toEqual([ca]);
    expect(trustedByApiserver(renewed.cert)).toBe(true);

    const renamed = await round(T0 + 341 * DAY, [...DNS, 'layover-webhook.other.svc']);
    expect(new X509Certificate(renamed.cert).checkHost('layover-webhook.other.svc')).toBe('layover-webhook.other.svc');
    expect(stored().ca.cert).toBe(ca);
    expect(api.caBundleWrites).toEqual([ca]);
  });

  it('a CA rotation appends the new CA to the caBundle, switches the serving certificate only once it is trusted, then drops the old CA', async () => {
    await round(T0);
    const oldCA = stored().ca.cert;
    const caExpiry = Date.parse(new X509Certificate(oldCA).validTo);
    // A year's serving certificate from the old CA, renewed as usual.
    const t1 = caExpiry - CA_RENEW_BEFORE_MS - 5 * DAY;
    const before = await round(t1);
    expect(stored().ca.cert).toBe(oldCA);

    // The CA is due: the new one is trusted first, the serving certificate stays the old CA's.
    const t2 = caExpiry - CA_RENEW_BEFORE_MS + DAY;
    expect((await round(t2)).cert).toBe(before.cert);
    const newCA = stored().ca.cert;
    expect(newCA).not.toBe(oldCA);
    expect(splitPems(api.caBundle())).toEqual([oldCA, newCA]);

    // Not before every apiserver has had time to see the new caBundle.
    expect((await round(t2 + TRUST_GRACE_MS / 2)).cert).toBe(before.cert);
    const switched = await round(t2 + TRUST_GRACE_MS);
    expect(switched.cert).not.toBe(before.cert);
    expect(new X509Certificate(switched.cert).checkIssued(new X509Certificate(newCA))).toBe(true);
    // Both CAs stay trusted while replicas move to the new certificate.
    expect(splitPems(api.caBundle())).toEqual([oldCA, newCA]);
    expect(trustedByApiserver(before.cert) && trustedByApiserver(switched.cert)).toBe(true);
    await round(t2 + TRUST_GRACE_MS + SWITCH_GRACE_MS / 2);
    expect(splitPems(api.caBundle())).toEqual([oldCA, newCA]);

    await round(t2 + TRUST_GRACE_MS + SWITCH_GRACE_MS);
    expect(splitPems(api.caBundle())).toEqual([newCA]);
    expect(trustedByApiserver(switched.cert)).toBe(true);
    // Every caBundle ever written trusted the certificate served at that time.
    expect(api.caBundleWrites.map((b) => splitPems(b).length)).toEqual([1, 2, 1]);
    expect(stored().ca.key).toBeDefined();
    // The rotation was logged, step by step, without a key or certificate in any line.
    const lines = logged.join('');
    for (const step of ['created', 'new-ca-trusted', 'serving-signed-by-new-ca', 'old-ca-dropped']) expect(lines).toContain(step);
    expect(lines).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE|LS0tLS1CRUdJTi/);
  });

  it('a Secret from a version that kept no CA key moves to a kept CA the same way: old and new trusted first', async () => {
    await round(T0);
    const legacy = api.secret('layover', 'layover-webhook-tls') as unknown as { data: Record<string, string>; metadata: { annotations?: Record<string, string> } };
    const oldCA = stored().ca.cert;
    delete legacy.data['ca.key'];
    delete legacy.data['ca-bundle.crt'];
    delete legacy.metadata.annotations;
    const served = await round(T0 + DAY);
    expect(splitPems(api.caBundle())[0]).toBe(oldCA);
    expect(splitPems(api.caBundle())).toHaveLength(2);
    expect(trustedByApiserver(served.cert)).toBe(true);
  });

  it('caBundle writes are retried on 409 (fetch, modify, replace with resourceVersion), keeping the other writer\'s change; bounded', async () => {
    await round(T0);
    api.webhookConfig().webhooks[0]!.clientConfig.caBundle = undefined;
    api.interfere(2);
    const kube = api.kube();
    await kube.setWebhookCABundle('layover', stored().ca.cert);
    expect(api.caBundle()).toBe(stored().ca.cert);
    expect(api.webhookConfig().metadata.labels?.['other-writer']).toBeDefined();

    api.webhookConfig().webhooks[0]!.clientConfig.caBundle = undefined;
    api.interfere(100);
    const err = await kube.setWebhookCABundle('layover', stored().ca.cert).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeError);
    expect((err as KubeError).status).toBe(409);
  });
});

describe('replicas', () => {
  async function tlsServer(pair: KeyPair): Promise<{ server: Server; served(): Promise<string> }> {
    const server = createServer({ ...pair, minVersion: 'TLSv1.2' }, (socket) => socket.end());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const served = async () => {
      const socket = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, rejectUnauthorized: false, servername: DNS[0] });
      await once(socket, 'secureConnect');
      const cert = socket.getPeerX509Certificate();
      socket.destroy();
      if (!cert) throw new Error('no peer certificate');
      return cert.fingerprint256;
    };
    return { server, served };
  }

  it('a second replica serves the certificate another replica renewed, within its re-read period (at most a minute)', async () => {
    expect(RECHECK_MS).toBeLessThanOrEqual(60_000);
    const config = defaultConfig({ webhook: { listen: '127.0.0.1:0', selfSigned: true } });
    const deps = { logger, kube: api.kube() };
    let clock = Date.now();
    const now = () => new Date(clock);
    let b: Server | undefined;
    const replicaB = await certificateSource(config, deps, (pair) => b?.setSecureContext(pair), { recheckMs: 50, now });
    const listener = await tlsServer(replicaB.pair);
    b = listener.server;
    try {
      const original = await listener.served();
      expect(original).toBe(fingerprint(replicaB.pair.cert));
      // Replica A runs 340 days later: its round renews the serving certificate in the Secret.
      clock += 340 * DAY;
      const renewed = await round(clock);
      expect(fingerprint(renewed.cert)).not.toBe(original);
      await expect.poll(() => listener.served(), { timeout: 5_000, interval: 50 }).toBe(fingerprint(renewed.cert));
    } finally {
      replicaB.stop();
      listener.server.close();
    }
  });
});
