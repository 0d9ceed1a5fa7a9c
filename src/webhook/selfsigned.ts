// Certificates for the in-process mode (`webhook.selfSigned: true`): a long-lived CA and serving
// certificates it signs (ECDSA P-256, sha256; the library's default would be sha1). Which one to
// make when is ca-rotation.ts; where they are kept is selfsigned-secret.ts.
import { X509Certificate } from 'node:crypto';
import { generate } from 'selfsigned';
import type { KeyPair } from './certificate.js';

export interface GeneratedCertificate extends KeyPair { ca: string }

const DAY = 86_400_000;
/** The CA lives long: renewing the serving certificate never changes what the caBundle trusts. */
export const CA_LIFETIME_MS = 10 * 365 * DAY;
export const SERVING_LIFETIME_MS = 365 * DAY;
/** A serving certificate closer than this to expiry is replaced. */
export const RENEW_BEFORE_MS = 30 * DAY;

/** The names kube-apiserver uses to reach the webhook Service. */
export function serviceDNSNames(service: string, namespace: string): string[] {
  return [`${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`, `${service}.${namespace}`, service];
}

const common = (now: Date) => ({ algorithm: 'sha256', keyType: 'ec' as const, curve: 'P-256' as const, notBeforeDate: new Date(now.getTime() - 60_000) });

export async function generateCA(now = new Date()): Promise<KeyPair> {
  const ca = await generate([{ name: 'commonName', value: 'layover webhook CA' }], {
    ...common(now),
    notAfterDate: new Date(now.getTime() + CA_LIFETIME_MS),
    extensions: [
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return { cert: ca.cert, key: ca.private };
}

/** A serving certificate for these names, signed by `ca`; it never outlives the CA. */
export async function issueServingCertificate(ca: KeyPair, dnsNames: string[], ips: string[] = [], now = new Date()): Promise<KeyPair> {
  const caExpiry = Date.parse(new X509Certificate(ca.cert).validTo);
  const leaf = await generate([{ name: 'commonName', value: dnsNames[0] ?? 'layover-webhook' }], {
    ...common(now),
    notAfterDate: new Date(Math.min(now.getTime() + SERVING_LIFETIME_MS, caExpiry)),
    ca: { key: ca.key, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [...dnsNames.map((value) => ({ type: 2 as const, value })), ...ips.map((ip) => ({ type: 7 as const, ip }))] },
    ],
  });
  return { cert: leaf.cert, key: leaf.private };
}

/** A new CA and a serving certificate from it. */
export async function generateCertificate(dnsNames: string[], ips: string[] = [], now = new Date()): Promise<GeneratedCertificate> {
  const ca = await generateCA(now);
  return { ca: ca.cert, ...(await issueServingCertificate(ca, dnsNames, ips, now)) };
}

/** Whether a certificate names every one of `dnsNames` (no wildcards). */
export function servesNames(certPem: string, dnsNames: string[]): boolean {
  try {
    const cert = new X509Certificate(certPem);
    return dnsNames.every((name) => cert.checkHost(name, { wildcards: false }) === name);
  } catch {
    return false;
  }
}

/** Whether a stored certificate still serves all names for long enough. */
export function stillUsable(certPem: string, dnsNames: string[], now = new Date()): boolean {
  try {
    if (Date.parse(new X509Certificate(certPem).validTo) - now.getTime() < RENEW_BEFORE_MS) return false;
  } catch {
    return false;
  }
  return servesNames(certPem, dnsNames);
}
