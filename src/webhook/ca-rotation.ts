// What the self-signed mode changes, and when, as a pure function of what is stored and the time.
// The CA lives long and only the serving certificate is renewed, so the caBundle rarely changes.
// When the CA must change, nothing that kube-apiserver trusts is ever removed before its
// replacement is in use:
//   1. a new CA is made and appended to the trusted bundle (caBundle: old + new), the serving
//      certificate still from the old CA;
//   2. once that bundle is installed and every apiserver has had TRUST_GRACE_MS to see it, the
//      new CA signs the serving certificate (replicas pick it up within a minute);
//   3. SWITCH_GRACE_MS later, when every replica serves the new certificate, the old CA is dropped.
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import type { KeyPair } from './certificate.js';
import { RENEW_BEFORE_MS, SERVING_LIFETIME_MS, generateCA, issueServingCertificate, servesNames, stillUsable } from './selfsigned.js';

export interface SelfSignedState {
  /** The CA that signs serving certificates. No key: stored by a version that kept none, so it is replaced. */
  ca: { cert: string; key?: string };
  /** What the caBundle trusts: the current CA, and the previous one while a CA rotation runs. */
  trusted: string[];
  serving: KeyPair;
  /** When `trusted` or the serving certificate's CA last changed; the grace periods count from here. */
  changedAt: Date;
}

/** A CA is replaced while it can still outlive a full-length serving certificate. */
export const CA_RENEW_BEFORE_MS = SERVING_LIFETIME_MS + RENEW_BEFORE_MS;
/** How long a newly trusted CA waits before it signs: every apiserver must see the new caBundle. */
export const TRUST_GRACE_MS = 60_000;
/** How long the old CA stays trusted after the switch: every replica re-reads the Secret each minute. */
export const SWITCH_GRACE_MS = 5 * 60_000;

export type Change = 'created' | 'new-ca-trusted' | 'serving-renewed' | 'serving-signed-by-new-ca' | 'old-ca-dropped';

export interface PlanInput {
  dnsNames: string[];
  now: Date;
  /** Whether this round has installed the stored `trusted` bundle as the caBundle. */
  bundleInstalled: boolean;
}

function remainingMs(pem: string, now: Date): number {
  try {
    return Date.parse(new X509Certificate(pem).validTo) - now.getTime();
  } catch {
    return -Infinity;
  }
}

function keyMatches(certPem: string, keyPem: string): boolean {
  try {
    const fromKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
    return fromKey.equals(new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' }));
  } catch {
    return false;
  }
}

function signedBy(leafPem: string, caPem: string): boolean {
  try {
    const leaf = new X509Certificate(leafPem);
    const ca = new X509Certificate(caPem);
    return leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
  } catch {
    return false;
  }
}

const caUsable = (ca: SelfSignedState['ca'], now: Date) => ca.key !== undefined && keyMatches(ca.cert, ca.key) && remainingMs(ca.cert, now) >= CA_RENEW_BEFORE_MS;
/** Expired, missing a name, or not matching its key: nothing can use it, so it is replaced at once. */
const servingBroken = (serving: KeyPair, dnsNames: string[], now: Date) => remainingMs(serving.cert, now) <= 0 || !servesNames(serving.cert, dnsNames) || !keyMatches(serving.cert, serving.key);

/** The next stored state; `changes` is empty when nothing is to be written. */
export async function plan(current: SelfSignedState | undefined, input: PlanInput): Promise<{ state: SelfSignedState; changes: Change[] }> {
  const { dnsNames, now } = input;
  if (!current) {
    const ca = await generateCA(now);
    return { state: { ca, trusted: [ca.cert], serving: await issueServingCertificate(ca, dnsNames, [], now), changedAt: now }, changes: ['created'] };
  }
  let state = current;
  const changes: Change[] = [];
  if (!caUsable(state.ca, now)) {
    const ca = await generateCA(now);
    const stillTrusted = state.trusted.filter((pem) => remainingMs(pem, now) > 0);
    state = { ...state, ca, trusted: [...stillTrusted, ca.cert], changedAt: now };
    changes.push('new-ca-trusted');
  }
  const ca = state.ca as KeyPair;
  const since = now.getTime() - state.changedAt.getTime();
  if (servingBroken(state.serving, dnsNames, now)) {
    // Waiting for the caBundle would only prolong an outage.
    state = { ...state, serving: await issueServingCertificate(ca, dnsNames, [], now), changedAt: now };
    changes.push('serving-renewed');
  } else if (!signedBy(state.serving.cert, ca.cert)) {
    if (input.bundleInstalled && changes.length === 0 && since >= TRUST_GRACE_MS) {
      state = { ...state, serving: await issueServingCertificate(ca, dnsNames, [], now), changedAt: now };
      changes.push('serving-signed-by-new-ca');
    }
  } else if (!stillUsable(state.serving.cert, dnsNames, now)) {
    // Same CA: the caBundle does not change, so no grace period starts.
    state = { ...state, serving: await issueServingCertificate(ca, dnsNames, [], now) };
    changes.push('serving-renewed');
  } else if (state.trusted.length > 1 && since >= SWITCH_GRACE_MS) {
    state = { ...state, trusted: [ca.cert], changedAt: now };
    changes.push('old-ca-dropped');
  }
  return { state, changes };
}
