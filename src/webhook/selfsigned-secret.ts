// The self-signed mode's state lives in one Secret that every replica reads: each round a
// replica installs the stored CA bundle as the caBundle, lets ca-rotation.ts decide what changes,
// writes it back under optimistic concurrency (a replica that loses the race serves the winner's
// certificate), and serves the stored serving certificate. Keys are never logged.
import { isConflict } from '../k8s/kube-error.js';
import type { Kube, SecretObject } from '../k8s/kube.js';
import type { Logger } from '../log.js';
import { plan, type SelfSignedState } from './ca-rotation.js';
import type { GeneratedCertificate } from './selfsigned.js';

const CHANGED_AT = 'layover.dev/certificate-changed-at';
/** `ca.crt` is the signing CA (as cert-manager writes it); `ca-bundle.crt` what the caBundle trusts. */
const KEYS = { cert: 'tls.crt', key: 'tls.key', ca: 'ca.crt', caKey: 'ca.key', bundle: 'ca-bundle.crt' } as const;

const decode = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8'));
const encode = (s: string) => Buffer.from(s).toString('base64');

export const bundlePem = (trusted: string[]) => trusted.join('');
export const splitPems = (bundle: string) => bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\r?\n?/g) ?? [];

export function stateFromSecret(secret: SecretObject | undefined): SelfSignedState | undefined {
  const data = secret?.data ?? {};
  const [cert, key, ca] = [decode(data[KEYS.cert]), decode(data[KEYS.key]), decode(data[KEYS.ca])];
  if (!cert || !key || !ca) return undefined;
  const bundle = decode(data[KEYS.bundle]);
  const caKey = decode(data[KEYS.caKey]);
  const changedAt = Date.parse(secret?.metadata.annotations?.[CHANGED_AT] ?? '');
  return {
    ca: { cert: ca, ...(caKey && { key: caKey }) },
    trusted: bundle ? splitPems(bundle) : [ca],
    serving: { cert, key },
    // Unknown (written by an older version): long enough ago for any grace period.
    changedAt: new Date(Number.isNaN(changedAt) ? 0 : changedAt),
  };
}

export function secretFromState(state: SelfSignedState, namespace: string, name: string, resourceVersion?: string): SecretObject {
  return {
    metadata: {
      name,
      namespace,
      labels: { 'app.kubernetes.io/managed-by': 'layover' },
      annotations: { [CHANGED_AT]: state.changedAt.toISOString() },
      ...(resourceVersion && { resourceVersion }),
    },
    type: 'kubernetes.io/tls',
    data: {
      [KEYS.cert]: encode(state.serving.cert),
      [KEYS.key]: encode(state.serving.key),
      [KEYS.ca]: encode(state.ca.cert),
      ...(state.ca.key && { [KEYS.caKey]: encode(state.ca.key) }),
      [KEYS.bundle]: encode(bundlePem(state.trusted)),
    },
  };
}

export interface SelfSignedOptions {
  kube: Kube;
  namespace: string;
  secretName: string;
  webhookConfigName: string;
  dnsNames: string[];
  logger: Logger;
  /** The clock (tests move it); the rotation's grace periods count on it. */
  now?: () => Date;
}

/** One round: the serving certificate to use now (`ca`: the trusted bundle, as set in the caBundle). */
export async function ensureSelfSignedCertificate(options: SelfSignedOptions): Promise<GeneratedCertificate> {
  const { kube, namespace, secretName, webhookConfigName, dnsNames, logger } = options;
  const existing = await kube.readSecret(namespace, secretName);
  const stored = stateFromSecret(existing);
  // The stored bundle first: a later step (signing with a new CA) relies on it being installed.
  if (stored) await kube.setWebhookCABundle(webhookConfigName, bundlePem(stored.trusted));
  const next = await plan(stored, { dnsNames, now: options.now?.() ?? new Date(), bundleInstalled: stored !== undefined });
  let served = next.state;
  if (next.changes.length > 0) {
    const secret = secretFromState(next.state, namespace, secretName, existing?.metadata.resourceVersion);
    try {
      if (existing) await kube.replaceSecret(namespace, secret);
      else await kube.createSecret(namespace, secret);
      logger.info({ secret: `${namespace}/${secretName}`, changes: next.changes }, 'webhook certificate stored');
    } catch (err) {
      // Another replica wrote first: serve what it stored, so every replica matches the caBundle.
      const theirs = isConflict(err) ? stateFromSecret(await kube.readSecret(namespace, secretName)) : undefined;
      if (!theirs) throw err;
      served = theirs;
    }
    await kube.setWebhookCABundle(webhookConfigName, bundlePem(served.trusted));
  }
  return { ca: bundlePem(served.trusted), ...served.serving };
}
