// Where the webhook's serving certificate comes from, and how a new one reaches the listener:
// files (webhook.tls, reloaded when they change), or the self-signed mode's Secret, re-read by
// every replica once a minute so that a renewal made by any replica is served by all of them.
import type { Config } from '../config/config.js';
import type { Kube } from '../k8s/kube.js';
import type { Logger } from '../log.js';
import { watchCertificateFiles, type KeyPair } from './certificate.js';

export interface CertificateSource { pair: KeyPair; stop(): void }

/** How often a replica re-reads the self-signed Secret (and renews when due). */
export const RECHECK_MS = 60_000;

const pairOf = ({ cert, key }: KeyPair): KeyPair => ({ cert, key });

export async function certificateSource(
  config: Config,
  deps: { logger: Logger; kube?: Kube },
  install: (pair: KeyPair) => void,
  options: { recheckMs?: number; now?: () => Date } = {},
): Promise<CertificateSource> {
  const { logger, kube } = deps;
  const wh = config.webhook;
  if (wh.tls) {
    const watch = await watchCertificateFiles(wh.tls, install, logger);
    return { pair: watch.current(), stop: () => watch.close() };
  }
  if (!wh.selfSigned) throw new Error('the webhook needs webhook.tls (certificate files) or webhook.selfSigned: true');
  // Loaded only in this mode: the certificate generator and its ASN.1 libraries hold tens of MiB
  // that a webhook serving files never needs.
  const { generateCertificate, serviceDNSNames } = await import('./selfsigned.js');
  const { ensureSelfSignedCertificate } = await import('./selfsigned-secret.js');
  const dnsNames = serviceDNSNames(wh.webhookServiceName, wh.ownNamespace);
  if (!kube) {
    // Outside a cluster nothing can trust a CA it never sees; this serves a throwaway certificate.
    logger.warn('webhook.selfSigned without a Kubernetes client: serving a certificate no apiserver trusts');
    return { pair: pairOf(await generateCertificate([...dnsNames, 'localhost'], ['127.0.0.1'])), stop: () => {} };
  }
  const ensure = async () => pairOf(await ensureSelfSignedCertificate({ kube, namespace: wh.ownNamespace, secretName: wh.certSecretName, webhookConfigName: wh.webhookConfigName, dnsNames, logger, now: options.now }));
  let current = await ensure();
  let running = false;
  const timer = setInterval(() => {
    // A slow apiserver must not stack rounds on top of each other.
    if (running) return;
    running = true;
    ensure().then((next) => {
      if (next.cert === current.cert && next.key === current.key) return;
      current = next;
      install(next);
      logger.info('webhook serving certificate replaced from the Secret');
    }, (err: unknown) => logger.warn({ err: (err as Error).message }, 'webhook certificate check failed; retrying'))
      .finally(() => { running = false; });
  }, options.recheckMs ?? RECHECK_MS);
  timer.unref();
  return { pair: current, stop: () => clearInterval(timer) };
}
