// Content digests: `sha256:<64 hex>` and `sha512:<128 hex>`, verified on every write.
import { createHash, type Hash } from 'node:crypto';
import { RegistryError } from './errors.js';

export type Algorithm = 'sha256' | 'sha512';
export type Digest = `${Algorithm}:${string}`;

const HEX_LENGTH: Record<Algorithm, number> = { sha256: 64, sha512: 128 };
// The spec's general form; anything matching it but not supported is DIGEST_INVALID too.
const GENERAL = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export interface ParsedDigest { algorithm: Algorithm; hex: string; digest: Digest }

export function parseDigest(input: string): ParsedDigest | undefined {
  if (input.length > 200 || !GENERAL.test(input)) return undefined;
  const colon = input.indexOf(':');
  const algorithm = input.slice(0, colon);
  const hex = input.slice(colon + 1);
  if (algorithm !== 'sha256' && algorithm !== 'sha512') return undefined;
  if (hex.length !== HEX_LENGTH[algorithm] || !/^[0-9a-f]+$/.test(hex)) return undefined;
  return { algorithm, hex, digest: input as Digest };
}

/** Exactly what parseDigest accepts, in one regular expression: manifests check thousands of digests at a time. */
const SUPPORTED = /^(?:sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$/;

export function isDigest(input: string): input is Digest {
  return SUPPORTED.test(input);
}

export function assertDigest(input: string): ParsedDigest {
  const parsed = parseDigest(input);
  if (!parsed) throw new RegistryError('DIGEST_INVALID', 'invalid or unsupported digest', { digest: input.slice(0, 200) });
  return parsed;
}

export function hashOf(algorithm: Algorithm): Hash {
  return createHash(algorithm);
}

export function digestOf(data: Buffer | string, algorithm: Algorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}
