// What a manifest is, in words people use: an image, a multi-platform image, a Helm chart, a
// signature, an SBOM, an attestation, or some other artifact. Decided by the manifest's artifact
// type (its `artifactType`, else its config's media type: registry/manifest.ts) and media type.

export type ArtifactKind = 'image' | 'index' | 'helm' | 'signature' | 'sbom' | 'attestation' | 'artifact';

const IMAGE_CONFIGS = new Set([
  'application/vnd.oci.image.config.v1+json',
  'application/vnd.docker.container.image.v1+json',
]);

const INDEXES = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);

export function artifactKind(mediaType: string, artifactType: string | undefined): ArtifactKind {
  const type = (artifactType ?? '').toLowerCase();
  if (type.startsWith('application/vnd.cncf.helm.')) return 'helm';
  if (type.includes('cosign.artifact.sig') || type.includes('cosign.simplesigning') || type.startsWith('application/vnd.cncf.notary.signature')) return 'signature';
  if (type.includes('spdx') || type.includes('cyclonedx') || type.includes('syft')) return 'sbom';
  if (type.includes('in-toto') || type.includes('cosign.attestation') || type.includes('dsse')) return 'attestation';
  if (INDEXES.has(mediaType) && !artifactType) return 'index';
  if (!artifactType || IMAGE_CONFIGS.has(type)) return INDEXES.has(mediaType) ? 'index' : 'image';
  return 'artifact';
}
