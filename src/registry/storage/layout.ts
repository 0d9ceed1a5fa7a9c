// Where each thing lives under the storage root. Every function re-validates its inputs so that
// no caller can steer a path outside the root, whatever it forgot to check.
import path from 'node:path';
import { parseDigest, type Digest } from '../digest.js';
import { isRepositoryName, isTag } from '../names.js';

/** Upstream ids (proxy/source-id.ts): hex, so never a path of their own. */
const SOURCE_ID = /^[0-9a-f]{32}$/;
const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isSourceId(id: string): boolean {
  return SOURCE_ID.test(id);
}

export function isUploadId(id: string): boolean {
  return UPLOAD_ID.test(id);
}

function digestParts(digest: Digest): [string, string] {
  const parsed = parseDigest(digest);
  if (!parsed) throw new Error(`storage: refusing invalid digest ${String(digest).slice(0, 80)}`);
  return [parsed.algorithm, parsed.hex];
}

export class Layout {
  readonly blobs: string;
  readonly repositories: string;
  readonly uploads: string;
  readonly tmp: string;
  /** Provenance markers of cached blobs: `sources/<upstream id>/<algorithm>/<hex>`. */
  readonly sources: string;

  constructor(readonly root: string) {
    this.blobs = path.join(root, 'blobs');
    this.repositories = path.join(root, 'repositories');
    this.uploads = path.join(root, 'uploads');
    this.tmp = path.join(root, '_tmp');
    this.sources = path.join(root, 'sources');
  }

  blob(digest: Digest): string {
    const [algorithm, hex] = digestParts(digest);
    return path.join(this.blobs, algorithm, hex.slice(0, 2), hex);
  }

  blobSource(source: string, digest: Digest): string {
    if (!isSourceId(source)) throw new Error('storage: refusing invalid source id');
    const [algorithm, hex] = digestParts(digest);
    return path.join(this.sources, source, algorithm, hex);
  }

  repository(name: string): string {
    if (!isRepositoryName(name)) throw new Error(`storage: refusing invalid repository name ${name.slice(0, 80)}`);
    return path.join(this.repositories, ...name.split('/'));
  }

  layerLink(name: string, digest: Digest): string {
    const [algorithm, hex] = digestParts(digest);
    return path.join(this.repository(name), '_layers', algorithm, hex);
  }

  layerLinks(name: string): string {
    return path.join(this.repository(name), '_layers');
  }

  revision(name: string, digest: Digest): string {
    const [algorithm, hex] = digestParts(digest);
    return path.join(this.revisions(name), algorithm, hex);
  }

  revisions(name: string): string {
    return path.join(this.repository(name), '_manifests', 'revisions');
  }

  tags(name: string): string {
    return path.join(this.repository(name), '_manifests', 'tags');
  }

  tag(name: string, tag: string): string {
    if (!isTag(tag)) throw new Error(`storage: refusing invalid tag ${tag.slice(0, 80)}`);
    return path.join(this.tags(name), tag);
  }

  referrers(name: string, subject: Digest): string {
    const [algorithm, hex] = digestParts(subject);
    return path.join(this.repository(name), '_referrers', algorithm, hex);
  }

  referrer(name: string, subject: Digest, digest: Digest): string {
    const [algorithm, hex] = digestParts(digest);
    return path.join(this.referrers(name, subject), `${algorithm}-${hex}`);
  }

  upload(id: string): string {
    if (!isUploadId(id)) throw new Error('storage: refusing invalid upload id');
    return path.join(this.uploads, id);
  }
}
