// Reads what the registry needs from a manifest without ever re-serialising it: its media type,
// the blobs and child manifests it references, and its subject. The bytes are stored as sent.
import { RegistryError } from './errors.js';
import { parseDigest, type Digest } from './digest.js';

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

function stringMap(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value) || Object.values(value).some((v) => typeof v !== 'string')) invalid(`${where}: annotations must map strings to strings`);
  return value as Record<string, string>;
}

function descriptor(value: unknown, where: string): Descriptor {
  if (!isRecord(value)) invalid(`${where}: not a descriptor`);
  const { mediaType, digest, size } = value;
  if (typeof mediaType !== 'string' || !mediaType) invalid(`${where}.mediaType: missing`);
  if (typeof digest !== 'string' || !parseDigest(digest)) invalid(`${where}.digest: invalid`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) invalid(`${where}.size: invalid`);
  const out: Descriptor = { mediaType, digest: digest as Digest, size };
  if (typeof value.artifactType === 'string') out.artifactType = value.artifactType;
  const annotations = stringMap(value.annotations, where);
  if (annotations) out.annotations = annotations;
  if (Array.isArray(value.urls)) out.urls = value.urls.filter((u): u is string => typeof u === 'string');
  if (isRecord(value.platform)) out.platform = value.platform;
  return out;
}

function descriptors(value: unknown, where: string): Descriptor[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) invalid(`${where}: must be an array`);
  return value.map((d, i) => descriptor(d, `${where}[${i}]`));
}

/**
 * Parses and checks a manifest. `contentType` is the request's Content-Type; where the manifest
 * names its own mediaType the two must agree (the spec's rule, which stops a client from storing
 * an index that will be served as an image).
 */
export function parseManifest(bytes: Buffer, contentType: string | undefined): ManifestInfo {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    invalid('manifest is not valid JSON');
  }
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
    info.manifests = descriptors(doc.manifests, 'manifests').map((d) => d.digest);
    if (doc.manifests === undefined) invalid('manifests: missing');
  } else if (mediaType === MediaType.ociArtifact) {
    info.blobs = descriptors(doc.blobs, 'blobs').map((d) => d.digest);
  } else {
    const config = descriptor(doc.config, 'config');
    if (doc.layers === undefined && mediaType === MediaType.dockerManifest) invalid('layers: missing');
    const layers = descriptors(doc.layers, 'layers').filter((d) => !FOREIGN_LAYERS.has(d.mediaType) && !(d.urls && d.urls.length));
    info.blobs = [config.digest, ...layers.map((d) => d.digest)];
  }
  if (doc.subject !== undefined) info.subject = descriptor(doc.subject, 'subject');
  if (typeof doc.artifactType === 'string') info.artifactType = doc.artifactType;
  else if (!isIndex && isRecord(doc.config) && typeof doc.config.mediaType === 'string') info.artifactType = doc.config.mediaType;
  const annotations = stringMap(doc.annotations, 'manifest');
  if (annotations) info.annotations = annotations;
  return info;
}
