// The image reference grammar, for every module that names images.
export {
  DEFAULT_DOMAIN,
  DEFAULT_TAG,
  LEGACY_DEFAULT_DOMAIN,
  ReferenceError,
  familiarString,
  formatReference,
  isValidTag,
  looksLikeDomain,
  normalizeReference,
  parseCanonical,
  parseNormalized,
  repositoryName,
  splitDomain,
  tryParseNormalized,
  validateDigest,
  withDefaultTag,
  type Reference,
  type ReferenceErrorCode,
} from './reference.js';
export { NAME_MAX_LENGTH } from './grammar.js';
