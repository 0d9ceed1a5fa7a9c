// Reads what the registry needs from a manifest without ever re-serialising it: its media type,
// the blobs and child manifests it references, and its subject. The bytes are stored as sent.
import { setImmediate } from 'node:timers/promises';
import { RegistryError } from './errors.js';
import { isDigest, type Digest } from './digest.js';

export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociArtifact: 'application/vnd.oci.artifact.manifest.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

const INDEX_TYPES = new Set<string>([MediaType.ociIndex, MediaType.dockerList]);
const MANIFEST_TYPES = new Set<string>([MediaType.ociManifest, MediaType.dockerManifest, MediaType.ociArtifact]);
export const MANIFEST_MEDIA_TYPES: readonly string[] = [...MANIFEST_TYPES, ...INDEX_TYPES];
/** Layers that, per the Docker and OCI specs, may live elsewhere and need not be in the registry. */
const FOREIGN_LAYERS = new Set([
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
]);

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  urls?: string[];
  platform?: Record<string, unknown>;
}

export interface ManifestInfo {
  mediaType: string;
  isIndex: boolean;
  /** Blobs that must be in the repository (config and layers, minus foreign ones). */
  blobs: Digest[];
  /** Child manifests an index refers to. */
  manifests: Digest[];
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
}

function invalid(message: string): never {
  throw new RegistryError('MANIFEST_INVALID', message);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStringMap(value: unknown): value is Record<string, string> {
  if (!isRecord(value)) return false;
  for (const key in value) if (typeof value[key] !== 'string') return false;
  return true;
}

function stringMap(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isStringMap(value)) invalid(`${where}: annotations must map strings to strings`);
  return value;
}

type CheckedDescriptor = Record<string, unknown> & { mediaType: string; digest: Digest; size: number };

/**
 * What is wrong with a descriptor (a suffix for its path), or undefined when nothing is. It builds
 * nothing and formats no message for a good one: an index of the largest allowed size lists some
 * 30,000 children, all checked while the event loop waits.
 */
function descriptorProblem(value: unknown): string | undefined {
  if (!isRecord(value)) return ': not a descriptor';
  const { mediaType, digest, size } = value;
  if (typeof mediaType !== 'string' || !mediaType) return '.mediaType: missing';
  if (typeof digest !== 'string' || !isDigest(digest)) return '.digest: invalid';
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return '.size: invalid';
  if (value.annotations !== undefined && !isStringMap(value.annotations)) return ': annotations must map strings to strings';
  return undefined;
}

function checked(value: unknown, where: string): CheckedDescriptor {
  const problem = descriptorProblem(value);
  if (problem !== undefined) invalid(`${where}${problem}`);
  return value as CheckedDescriptor;
}

function descriptor(value: unknown, where: string): Descriptor {
  const d = checked(value, where);
  const out: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (typeof d.artifactType === 'string') out.artifactType = d.artifactType;
  if (d.annotations !== undefined) out.annotations = d.annotations as Record<string, string>;
  if (Array.isArray(d.urls)) out.urls = d.urls.filter((u): u is string => typeof u === 'string');
  if (isRecord(d.platform)) out.platform = d.platform;
  return out;
}

/** The checked descriptors of a list, as they stand in the document (only the fields checked are typed). */
function descriptorList(value: unknown, where: string): CheckedDescriptor[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) invalid(`${where}: must be an array`);
  for (let i = 0; i < value.length; i++) {
    const problem = descriptorProblem(value[i]);
    if (problem !== undefined) invalid(`${where}[${i}]${problem}`);
  }
  return value as CheckedDescriptor[];
}

const digestsOf = (list: CheckedDescriptor[]): Digest[] => list.map((d) => d.digest);

/**
 * Parses and checks a manifest. `contentType` is the request's Content-Type; where the manifest
 * names its own mediaType the two must agree (the spec's rule, which stops a client from storing
 * an index that will be served as an image).
 */
export function parseManifest(bytes: Buffer, contentType: string | undefined): ManifestInfo {
  return manifestInfo(parseJson(bytes.toString('utf8')), contentType);
}

/** Above this size parseManifestYielding lets the event loop run between its steps. */
const YIELD_ABOVE = 256 * 1024;

/**
 * parseManifest for a request handler: a manifest of the largest allowed size (4 MiB) costs
 * ~35 ms of CPU (decoding ~13, JSON.parse ~10, checking ~30,000 descriptors ~10, on the 2-core
 * test machine), so it is done in three steps with other requests served in between.
 */
export async function parseManifestYielding(bytes: Buffer, contentType: string | undefined): Promise<ManifestInfo> {
  if (bytes.length <= YIELD_ABOVE) return parseManifest(bytes, contentType);
  const text = bytes.toString('utf8');
  await setImmediate();
  const doc = parseJson(text);
  await setImmediate();
  return manifestInfo(doc, contentType);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    invalid('manifest is not valid JSON');
  }
}

function manifestInfo(doc: unknown, contentType: string | undefined): ManifestInfo {
  if (!isRecord(doc)) invalid('manifest must be a JSON object');
  const declared = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  const header = contentType?.split(';')[0]?.trim().toLowerCase();
  const headerType = header && MANIFEST_MEDIA_TYPES.includes(header) ? header : undefined;
  if (declared && headerType && declared !== headerType) invalid(`mediaType ${declared} does not match Content-Type ${headerType}`);
  let mediaType = declared ?? headerType;
  if (!mediaType) {
    // An OCI manifest may omit mediaType; its shape says which kind it is.
    if (Array.isArray(doc.manifests)) mediaType = MediaType.ociIndex;
    else if (isRecord(doc.config)) mediaType = MediaType.ociManifest;
    else invalid('manifest media type unknown: set mediaType or Content-Type');
  }
  if (!MANIFEST_MEDIA_TYPES.includes(mediaType)) invalid(`unsupported manifest media type ${mediaType}`);

  const isIndex = INDEX_TYPES.has(mediaType);
  if (mediaType !== MediaType.ociArtifact && doc.schemaVersion !== 2) invalid('schemaVersion must be 2');
  const info: ManifestInfo = { mediaType, isIndex, blobs: [], manifests: [] };
  if (isIndex) {
    info.manifests = digestsOf(descriptorList(doc.manifests, 'manifests'));
    if (doc.manifests === undefined) invalid('manifests: missing');
  } else if (mediaType === MediaType.ociArtifact) {
    info.blobs = digestsOf(descriptorList(doc.blobs, 'blobs'));
  } else {
    const config = descriptor(doc.config, 'config');
    if (doc.layers === undefined && mediaType === MediaType.dockerManifest) invalid('layers: missing');
    // Only a foreign (non-distributable) layer may be absent: its media type says clients fetch it
    // from its urls. `urls` on an ordinary layer is a hint, not a licence to skip the blob.
    const layers = descriptorList(doc.layers, 'layers').filter((d) => !FOREIGN_LAYERS.has(d.mediaType));
    info.blobs = [config.digest, ...digestsOf(layers)];
  }
  if (doc.subject !== undefined) info.subject = descriptor(doc.subject, 'subject');
  if (typeof doc.artifactType === 'string') info.artifactType = doc.artifactType;
  else if (!isIndex && isRecord(doc.config) && typeof doc.config.mediaType === 'string') info.artifactType = doc.config.mediaType;
  const annotations = stringMap(doc.annotations, 'manifest');
  if (annotations) info.annotations = annotations;
  return info;
}
