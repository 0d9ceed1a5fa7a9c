// The in-process certificate mode (`webhook.selfSigned: true`): a CA and a serving certificate
// made at start (sha256; the library's default would be sha1), kept in a Secret so every replica
// serves the same one, and the CA written into the MutatingWebhookConfiguration's caBundle.
import { X509Certificate } from 'node:crypto';
import { generate } from 'selfsigned';
import { isConflict, type Kube, type SecretObject } from '../k8s/kube.js';
import type { Logger } from '../log.js';
import type { KeyPair } from './certificate.js';

export interface GeneratedCertificate extends KeyPair { ca: string }

const DAY = 86_400_000;
/** A stored certificate closer than this to expiry is replaced. */
export const RENEW_BEFORE_MS = 30 * DAY;

/** The names kube-apiserver uses to reach the webhook Service. */
export function serviceDNSNames(service: string, namespace: string): string[] {
  return [`${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`, `${service}.${namespace}`, service];
}

export async function generateCertificate(dnsNames: string[], ips: string[] = [], now = new Date()): Promise<GeneratedCertificate> {
  const common = { algorithm: 'sha256', keyType: 'ec' as const, curve: 'P-256' as const, notBeforeDate: new Date(now.getTime() - 60_000) };
  const ca = await generate([{ name: 'commonName', value: 'layover webhook CA' }], {
    ...common,
    notAfterDate: new Date(now.getTime() + 10 * 365 * DAY),
    extensions: [
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const leaf = await generate([{ name: 'commonName', value: dnsNames[0] ?? 'layover-webhook' }], {
    ...common,
    notAfterDate: new Date(now.getTime() + 365 * DAY),
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [...dnsNames.map((value) => ({ type: 2 as const, value })), ...ips.map((ip) => ({ type: 7 as const, ip }))] },
    ],
  });
  return { ca: ca.cert, cert: leaf.cert, key: leaf.private };
}

/** Whether a stored certificate still serves all names for long enough. */
export function stillUsable(certPem: string, dnsNames: string[], now = new Date()): boolean {
  try {
    const cert = new X509Certificate(certPem);
    if (new Date(cert.validTo).getTime() - now.getTime() < RENEW_BEFORE_MS) return false;
    return dnsNames.every((name) => cert.checkHost(name, { wildcards: false }) === name);
  } catch {
    return false;
  }
}

const decode = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8'));

function fromSecret(secret: SecretObject | undefined): GeneratedCertificate | undefined {
  const cert = decode(secret?.data?.['tls.crt']);
  const key = decode(secret?.data?.['tls.key']);
  const ca = decode(secret?.data?.['ca.crt']);
  return cert && key && ca ? { cert, key, ca } : undefined;
}

export interface SelfSignedOptions {
  kube: Kube;
  namespace: string;
  secretName: string;
  webhookConfigName: string;
  dnsNames: string[];
  logger: Logger;
}

/** The stored certificate when still good, else a new one stored in its place; then the caBundle is set. */
export async function ensureSelfSignedCertificate(options: SelfSignedOptions): Promise<GeneratedCertificate> {
  const { kube, namespace, secretName, dnsNames, logger } = options;
  const existing = await kube.readSecret(namespace, secretName);
  let certificate = fromSecret(existing);
  if (!certificate || !stillUsable(certificate.cert, dnsNames)) {
    const fresh = await generateCertificate(dnsNames);
    const secret: SecretObject = {
      metadata: {
        name: secretName,
        namespace,
        labels: { 'app.kubernetes.io/managed-by': 'layover' },
        ...(existing?.metadata.resourceVersion && { resourceVersion: existing.metadata.resourceVersion }),
      },
      type: 'kubernetes.io/tls',
      data: {
        'tls.crt': Buffer.from(fresh.cert).toString('base64'),
        'tls.key': Buffer.from(fresh.key).toString('base64'),
        'ca.crt': Buffer.from(fresh.ca).toString('base64'),
      },
    };
    try {
      if (existing) await kube.replaceSecret(namespace, secret);
      else await kube.createSecret(namespace, secret);
      certificate = fresh;
      logger.info({ secret: `${namespace}/${secretName}` }, 'webhook certificate generated and stored');
    } catch (err) {
      // Another replica stored one first: serve that one so the caBundle matches every replica.
      if (!isConflict(err)) throw err;
      certificate = fromSecret(await kube.readSecret(namespace, secretName));
      if (!certificate) throw err;
    }
  }
  await kube.setWebhookCABundle(options.webhookConfigName, certificate.ca);
  return certificate;
}
