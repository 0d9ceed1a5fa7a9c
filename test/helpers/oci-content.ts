// Raw OCI content for API tests: digests, descriptors, manifests and indexes as exact bytes.
import { createHash } from 'node:crypto';
import { seededBytes } from './random-bytes.js';

export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export type DigestAlgorithm = 'sha256' | 'sha512';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface Platform { os: string; architecture: string; variant?: string }

/** A blob or manifest as the exact bytes that go over the wire, with its descriptor. */
export interface Content {
  bytes: Buffer;
  digest: string;
  mediaType: string;
  size: number;
}

export function computeDigest(bytes: Buffer | string, algorithm: DigestAlgorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

export function content(bytes: Buffer | string, mediaType: string, algorithm: DigestAlgorithm = 'sha256'): Content {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  return { bytes: buf, digest: computeDigest(buf, algorithm), mediaType, size: buf.length };
}

export function descriptorOf(c: Content, extra: Partial<Descriptor> = {}): Descriptor {
  return { mediaType: c.mediaType, digest: c.digest, size: c.size, ...extra };
}

/** A random (seeded when `seed` is given) opaque blob, e.g. a fake layer for API tests. */
export function randomBlob(size: number, seed = `${Math.random()}`, mediaType: string = MediaType.ociLayerGzip): Content {
  return content(seededBytes(seed, size), mediaType);
}

/** The OCI empty descriptor's content `{}`, used as the config of artifacts. */
export function emptyConfig(): Content {
  return content('{}', MediaType.ociEmpty);
}

export function imageConfig(diffIds: string[], platform: Platform = { os: 'linux', architecture: 'amd64' }, mediaType: string = MediaType.ociConfig): Content {
  const config = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: {},
    rootfs: { type: 'layers', diff_ids: diffIds },
  };
  return content(JSON.stringify(config), mediaType);
}

export interface ManifestSpec {
  config: Content | Descriptor;
  layers: (Content | Descriptor)[];
  mediaType?: string;
  artifactType?: string;
  subject?: Content | Descriptor;
  annotations?: Record<string, string>;
}

function toDescriptor(d: Content | Descriptor): Descriptor {
  return 'bytes' in d ? descriptorOf(d) : d;
}

/** An image (or artifact) manifest. Serialised once: the returned bytes are the manifest. */
export function buildManifest(spec: ManifestSpec): Content {
  const mediaType = spec.mediaType ?? MediaType.ociManifest;
  const doc = {
    schemaVersion: 2,
    mediaType,
    ...(spec.artifactType ? { artifactType: spec.artifactType } : {}),
    config: toDescriptor(spec.config),
    layers: spec.layers.map(toDescriptor),
    ...(spec.subject ? { subject: toDescriptor(spec.subject) } : {}),
    ...(spec.annotations ? { annotations: spec.annotations } : {}),
  };
  return content(JSON.stringify(doc), mediaType);
}

export interface IndexSpec {
  manifests: (Descriptor | (Content & { platform?: Platform }))[];
  mediaType?: string;
  artifactType?: string;
  subject?: Content | Descriptor;
  annotations?: Record<string, string>;
}

/** An image index (or Docker manifest list when `mediaType` says so). */
export function buildIndex(spec: IndexSpec): Content {
  const mediaType = spec.mediaType ?? MediaType.ociIndex;
  const doc = {
    schemaVersion: 2,
    mediaType,
    ...(spec.artifactType ? { artifactType: spec.artifactType } : {}),
    manifests: spec.manifests.map((m) => ('bytes' in m ? descriptorOf(m, m.platform ? { platform: m.platform } : {}) : m)),
    ...(spec.subject ? { subject: toDescriptor(spec.subject) } : {}),
    ...(spec.annotations ? { annotations: spec.annotations } : {}),
  };
  return content(JSON.stringify(doc), mediaType);
}
