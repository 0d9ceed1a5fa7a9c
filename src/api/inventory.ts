// What is stored, in the terms people ask about: repositories with their sizes, tags with digest,
// size, platforms and push/pull times, and bytes per namespace. Reads go around the GC guard
// (browsing is not a use that should delay collection) and count blobs actually stored, so a
// mirror's manifests whose layers were never pulled count only what was cached.
import type { Digest } from '../registry/digest.js';
import type { Descriptor } from '../registry/manifest.js';
import { artifactKind, type ArtifactKind } from './artifact-kind.js';
import { readBlobBytes } from '../registry/gc/manifests.js';
import { namespaceOf } from '../registry/names.js';
import { toStored } from '../registry/storage/composed-store.js';
import type { ManifestRef, MetadataStore, RepositorySummary, RevisionRecord } from '../registry/storage/metadata/types.js';
import type { Store, StoredManifest } from '../registry/storage/store.js';

/** Read per round when a page is asked for (filtering by visibility shrinks batches). */
const REPOSITORY_BATCH = 1_000;

export interface TagInfo {
  tag: string;
  digest: Digest;
  mediaType: string;
  /** The manifest's artifact type (its config's media type when it names none). */
  artifactType?: string;
  kind: ArtifactKind;
  /** Manifests of this repository whose subject is this one (signatures, SBOMs...). */
  referrers: number;
  /** Bytes on disk of the manifest, its config and layers (an index: with its children). */
  size: number;
  platforms: string[];
  pushedAt: string;
  pulledAt?: string;
}

export interface RepositoryInfo {
  name: string;
  namespace: string;
  mirror: boolean;
  tags: number;
  manifests: number;
  size: number;
  pushedAt?: string;
}

export interface NamespaceUsage {
  namespace: string;
  kind: 'mirror' | 'pushed';
  repositories: number;
  /** Unique bytes referenced by this namespace's manifests (a blob shared with another namespace counts in both). */
  bytes: number;
}

export interface StorageUsage {
  namespaces: NamespaceUsage[];
  mirrorBytes: number;
  pushedBytes: number;
  /** Every blob on disk, counted once. */
  storedBytes: number;
  blobs: number;
  /** Bytes of blobs only mirror namespaces hold: what the cache budget (cache.maxSize) counts. */
  cacheBytes: number;
  /** Bytes of blobs held by more than one repository: counted in each one's size, stored once. */
  sharedBytes: number;
}

export interface ReferrerInfo {
  digest: Digest;
  mediaType: string;
  artifactType?: string;
  kind: ArtifactKind;
  size: number;
  annotations?: Record<string, string>;
}

interface ManifestNode {
  meta: StoredManifest;
  blobs: Digest[];
  children: Digest[];
}

function platformString(p: unknown): string | undefined {
  if (typeof p !== 'object' || p === null) return undefined;
  const { os, architecture, variant } = p as Record<string, unknown>;
  if (typeof os !== 'string' || typeof architecture !== 'string') return undefined;
  return `${os}/${architecture}${typeof variant === 'string' && variant ? `/${variant}` : ''}`;
}

/**
 * Reads the metadata's indexes, never a manifest's bytes for sizes: one repository costs a few
 * point queries per manifest; every repository (ls) is one statement (repositorySummaries); du
 * costs one scan of each table.
 */
export class Inventory {
  private sizes: Map<Digest, number> | undefined;
  private refs: Map<Digest, { blobs: Digest[]; children: Digest[] }> | undefined;
  private bulk: Map<string, RevisionRecord[]> | undefined;

  constructor(
    private readonly store: Store,
    private readonly mirrorNamespaces: ReadonlySet<string>,
  ) {}

  isMirror(repository: string): boolean {
    return this.mirrorNamespaces.has(namespaceOf(repository));
  }

  private async revisions(repository: string): Promise<RevisionRecord[]> {
    if (this.bulk) return this.bulk.get(repository) ?? [];
    return this.store.metadata.listManifests(repository);
  }

  private async manifests(repository: string): Promise<Map<Digest, ManifestNode>> {
    const revisions = await this.revisions(repository);
    if (!this.refs) {
      const refs = new Map<Digest, { blobs: Digest[]; children: Digest[] }>();
      for (const r of await this.store.metadata.manifestRefs(revisions.map((m) => m.digest))) addRef(refs, r);
      this.refs = refs;
    }
    const out = new Map<Digest, ManifestNode>();
    for (const r of revisions) {
      const refs = this.refs.get(r.digest);
      out.set(r.digest, { meta: toStored(r), blobs: refs?.blobs ?? [], children: refs?.children ?? [] });
    }
    return out;
  }

  /** The digests a manifest keeps on disk: itself, and recursively its children, config and layers. */
  private closure(nodes: Map<Digest, ManifestNode>, digest: Digest, into: Set<Digest>): Set<Digest> {
    if (into.has(digest)) return into;
    into.add(digest);
    const node = nodes.get(digest);
    if (!node) return into;
    for (const blob of node.blobs) into.add(blob);
    for (const child of node.children) this.closure(nodes, child, into);
    return into;
  }

  private async sizeOf(digest: Digest): Promise<number | undefined> {
    if (this.sizes) return this.sizes.get(digest);
    return (await this.store.metadata.getBlob(digest))?.size;
  }

  private async bytesOf(digests: Iterable<Digest>): Promise<number> {
    let total = 0;
    const sizes = this.sizes;
    // With every size loaded (listings of many repositories) this stays synchronous.
    if (sizes) for (const d of digests) total += sizes.get(d) ?? 0;
    else for (const d of digests) total += (await this.sizeOf(d)) ?? 0;
    return total;
  }

  private infoOf(summary: RepositorySummary): RepositoryInfo {
    return {
      name: summary.name,
      namespace: namespaceOf(summary.name),
      mirror: this.isMirror(summary.name),
      tags: summary.tags,
      manifests: summary.manifests,
      size: summary.size,
      ...(summary.pushedAt !== undefined ? { pushedAt: new Date(summary.pushedAt).toISOString() } : {}),
    };
  }

  async repository(name: string): Promise<RepositoryInfo | undefined> {
    const tags = await this.store.metadata.listTags(name);
    if (!tags) return undefined;
    const pushedAt = tags.reduce<number | undefined>((a, t) => (a === undefined || t.updatedAt > a ? t.updatedAt : a), undefined);
    const nodes = await this.manifests(name);
    const all = new Set<Digest>();
    for (const digest of nodes.keys()) this.closure(nodes, digest, all);
    return this.infoOf({ name, tags: tags.length, manifests: nodes.size, size: await this.bytesOf(all), ...(pushedAt !== undefined ? { pushedAt } : {}) });
  }

  /**
   * The repositories `visible` admits (optionally in one namespace), with sizes, after `after`:
   * at most `limit` of them (all when undefined), read from the metadata in batches, each one
   * statement with counts and sizes (repositorySummaries). `more` says whether others follow.
   */
  async repositories(visible: (name: string) => boolean, page: { namespace?: string; after?: string; limit?: number } = {}): Promise<{ repositories: RepositoryInfo[]; more: boolean }> {
    const out: RepositoryInfo[] = [];
    const want = page.limit;
    const batch = want === undefined ? undefined : Math.max(want + 1, Math.min(REPOSITORY_BATCH, 2 * want + 1));
    for (let after = page.after; ; ) {
      const summaries = await this.store.metadata.repositorySummaries({ ...(page.namespace === undefined ? {} : { namespace: page.namespace }), after, limit: batch });
      for (const summary of summaries) {
        if (!visible(summary.name)) continue;
        if (want !== undefined && out.length === want) return { repositories: out, more: true };
        out.push(this.infoOf(summary));
      }
      if (batch === undefined || summaries.length < batch) return { repositories: out, more: false };
      after = summaries[summaries.length - 1]?.name;
    }
  }

  async tags(name: string): Promise<TagInfo[] | undefined> {
    const tags = await this.store.metadata.listTags(name);
    if (!tags) return undefined;
    const nodes = await this.manifests(name);
    const revisions = await this.revisions(name);
    const pulled = new Map(revisions.map((r) => [r.digest, r.pulledAt] as const));
    const referrers = new Map<Digest, number>();
    for (const r of revisions) if (r.subject) referrers.set(r.subject, (referrers.get(r.subject) ?? 0) + 1);
    const bytesByDigest = new Map<Digest, number>();
    const platformsByDigest = new Map<Digest, string[]>();
    const out: TagInfo[] = [];
    for (const t of tags) {
      const node = nodes.get(t.digest);
      let size = bytesByDigest.get(t.digest);
      if (size === undefined) bytesByDigest.set(t.digest, (size = await this.bytesOf(this.closure(nodes, t.digest, new Set()))));
      let platforms = platformsByDigest.get(t.digest);
      if (!platforms) platformsByDigest.set(t.digest, (platforms = node ? await this.platforms(node) : []));
      const at = pulled.get(t.digest);
      out.push({
        tag: t.tag,
        digest: t.digest,
        mediaType: node?.meta.mediaType ?? 'unknown',
        ...(node?.meta.artifactType ? { artifactType: node.meta.artifactType } : {}),
        kind: artifactKind(node?.meta.mediaType ?? '', node?.meta.artifactType),
        referrers: referrers.get(t.digest) ?? 0,
        size,
        platforms,
        pushedAt: new Date(t.updatedAt).toISOString(),
        ...(at !== undefined ? { pulledAt: new Date(at).toISOString() } : {}),
      });
    }
    return out;
  }

  /** The manifests of `repository` whose subject is `subject`, labelled by kind. */
  async referrers(repository: string, subject: Digest): Promise<ReferrerInfo[]> {
    const descriptors: Descriptor[] = await this.store.metadata.listReferrers(repository, subject);
    return descriptors.map((d) => ({
      digest: d.digest as Digest,
      mediaType: d.mediaType,
      ...(d.artifactType ? { artifactType: d.artifactType } : {}),
      kind: artifactKind(d.mediaType, d.artifactType),
      size: d.size,
      ...(d.annotations ? { annotations: d.annotations } : {}),
    }));
  }

  /** An image's platform from its config, an index's from its descriptors (small reads, once per digest). */
  private async platforms(node: ManifestNode): Promise<string[]> {
    if (node.children.length) {
      const bytes = await readBlobBytes(this.store, node.meta.digest);
      if (!bytes) return [];
      try {
        const doc = JSON.parse(bytes.toString('utf8')) as { manifests?: { digest?: string; platform?: unknown }[] };
        const byChild = new Map<string, string>();
        for (const d of doc.manifests ?? []) {
          const p = platformString(d.platform);
          if (p && typeof d.digest === 'string') byChild.set(d.digest, p);
        }
        return node.children.map((c) => byChild.get(c)).filter((p): p is string => p !== undefined && p !== 'unknown/unknown');
      } catch {
        return [];
      }
    }
    const config = node.blobs[0];
    if (!config) return [];
    if (((await this.sizeOf(config)) ?? Infinity) > 1024 * 1024) return [];
    const bytes = await readBlobBytes(this.store, config);
    if (!bytes) return [];
    try {
      const p = platformString(JSON.parse(bytes.toString('utf8')));
      return p ? [p] : [];
    } catch {
      return [];
    }
  }

  /** Bytes by namespace over `repositories` (every one when undefined): storageUsage. */
  storage(repositories?: string[]): Promise<StorageUsage> {
    return storageUsage(this.store.metadata, this.mirrorNamespaces, repositories);
  }
}

/**
 * Bytes by namespace over `repositories` (every one when undefined): one aggregate statement in
 * the metadata engine (MetadataStore.storageUsage), whatever the registry's size.
 */
export async function storageUsage(metadata: MetadataStore, mirrorNamespaces: ReadonlySet<string>, repositories?: string[]): Promise<StorageUsage> {
  const usage = await metadata.storageUsage({ ...(repositories ? { repositories } : {}), mirrorNamespaces: [...mirrorNamespaces] });
  const namespaces: NamespaceUsage[] = usage.namespaces
    .sort((a, b) => a.namespace.localeCompare(b.namespace))
    .map((n) => ({ namespace: n.namespace, kind: mirrorNamespaces.has(n.namespace) ? 'mirror' : 'pushed', repositories: n.repositories, bytes: n.bytes }));
  return {
    cacheBytes: usage.cacheBytes,
    sharedBytes: usage.sharedBytes,
    namespaces,
    mirrorBytes: namespaces.filter((n) => n.kind === 'mirror').reduce((a, n) => a + n.bytes, 0),
    pushedBytes: namespaces.filter((n) => n.kind === 'pushed').reduce((a, n) => a + n.bytes, 0),
    storedBytes: usage.storedBytes,
    blobs: usage.blobs,
  };
}

function addRef(refs: Map<Digest, { blobs: Digest[]; children: Digest[] }>, r: ManifestRef): void {
  let entry = refs.get(r.manifest);
  if (!entry) refs.set(r.manifest, (entry = { blobs: [], children: [] }));
  if (r.kind === 'blob') entry.blobs.push(r.ref);
  else if (r.kind === 'child') entry.children.push(r.ref);
}
