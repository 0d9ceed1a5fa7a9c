// What is stored, in the terms people ask about: repositories with their sizes, tags with digest,
// size, platforms and push/pull times, and bytes per namespace. Reads go around the GC guard
// (browsing is not a use that should delay collection) and count blobs actually on disk, so a
// mirror's manifests whose layers were never pulled count only what was cached.
import type { Digest } from '../registry/digest.js';
import { readBlobBytes } from '../registry/gc/manifests.js';
import { parseManifest } from '../registry/manifest.js';
import { namespaceOf } from '../registry/names.js';
import type { Store, StoredManifest } from '../registry/storage/store.js';

export interface TagInfo {
  tag: string;
  digest: Digest;
  mediaType: string;
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
}

interface ManifestNode {
  meta: StoredManifest;
  blobs: Digest[];
  children: Digest[];
  /** Platforms an index names for its children. */
  childPlatforms: Map<Digest, string>;
}

type PullClock = { lastPulled(repository: string, digest: Digest): Promise<Date | undefined> };

function hasPullClock(store: Store): store is Store & PullClock {
  return typeof (store as Partial<PullClock>).lastPulled === 'function';
}

function platformString(p: unknown): string | undefined {
  if (typeof p !== 'object' || p === null) return undefined;
  const { os, architecture, variant } = p as Record<string, unknown>;
  if (typeof os !== 'string' || typeof architecture !== 'string') return undefined;
  return `${os}/${architecture}${typeof variant === 'string' && variant ? `/${variant}` : ''}`;
}

export class Inventory {
  private sizes: Map<Digest, number> | undefined;

  constructor(
    private readonly store: Store,
    private readonly mirrorNamespaces: ReadonlySet<string>,
  ) {}

  isMirror(repository: string): boolean {
    return this.mirrorNamespaces.has(namespaceOf(repository));
  }

  /** Sizes of every blob on disk, read once per Inventory (one per API request). */
  private async blobSizes(): Promise<Map<Digest, number>> {
    if (this.sizes) return this.sizes;
    const sizes = new Map<Digest, number>();
    for await (const blob of this.store.listBlobs()) sizes.set(blob.digest, blob.size);
    this.sizes = sizes;
    return sizes;
  }

  private async manifests(repository: string): Promise<Map<Digest, ManifestNode>> {
    const out = new Map<Digest, ManifestNode>();
    for (const meta of await this.store.listManifests(repository)) {
      const node: ManifestNode = { meta, blobs: [], children: [], childPlatforms: new Map() };
      const bytes = await readBlobBytes(this.store, meta.digest);
      if (bytes) {
        try {
          const info = parseManifest(bytes, meta.mediaType);
          node.blobs = info.blobs;
          node.children = info.manifests;
          if (info.isIndex) {
            const doc = JSON.parse(bytes.toString('utf8')) as { manifests?: { digest?: string; platform?: unknown }[] };
            for (const d of doc.manifests ?? []) {
              const p = platformString(d.platform);
              if (p && typeof d.digest === 'string') node.childPlatforms.set(d.digest as Digest, p);
            }
          }
        } catch {
          // An unreadable manifest is listed with its own size only.
        }
      }
      out.set(meta.digest, node);
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

  private async bytesOf(digests: Iterable<Digest>): Promise<number> {
    const sizes = await this.blobSizes();
    let total = 0;
    for (const d of digests) total += sizes.get(d) ?? 0;
    return total;
  }

  async repository(name: string): Promise<RepositoryInfo | undefined> {
    const tags = await this.store.listTagDetails(name);
    if (!tags) return undefined;
    const nodes = await this.manifests(name);
    const all = new Set<Digest>();
    for (const digest of nodes.keys()) this.closure(nodes, digest, all);
    const newest = tags.reduce<Date | undefined>((a, t) => (!a || t.modified > a ? t.modified : a), undefined);
    return {
      name,
      namespace: namespaceOf(name),
      mirror: this.isMirror(name),
      tags: tags.length,
      manifests: nodes.size,
      size: await this.bytesOf(all),
      ...(newest ? { pushedAt: newest.toISOString() } : {}),
    };
  }

  async tags(name: string): Promise<TagInfo[] | undefined> {
    const tags = await this.store.listTagDetails(name);
    if (!tags) return undefined;
    const nodes = await this.manifests(name);
    const out: TagInfo[] = [];
    for (const t of tags) {
      const node = nodes.get(t.digest);
      const pulled = hasPullClock(this.store) ? await this.store.lastPulled(name, t.digest) : undefined;
      out.push({
        tag: t.tag,
        digest: t.digest,
        mediaType: node?.meta.mediaType ?? 'unknown',
        size: await this.bytesOf(this.closure(nodes, t.digest, new Set())),
        platforms: node ? await this.platforms(node) : [],
        pushedAt: t.modified.toISOString(),
        ...(pulled ? { pulledAt: pulled.toISOString() } : {}),
      });
    }
    return out;
  }

  private async platforms(node: ManifestNode): Promise<string[]> {
    if (node.children.length) return node.children.map((c) => node.childPlatforms.get(c)).filter((p): p is string => p !== undefined && p !== 'unknown/unknown');
    const config = node.blobs[0];
    if (!config) return [];
    const sizes = await this.blobSizes();
    if ((sizes.get(config) ?? Infinity) > 1024 * 1024) return [];
    const bytes = await readBlobBytes(this.store, config);
    if (!bytes) return [];
    try {
      const p = platformString(JSON.parse(bytes.toString('utf8')));
      return p ? [p] : [];
    } catch {
      return [];
    }
  }

  async storage(repositories: string[]): Promise<StorageUsage> {
    const byNamespace = new Map<string, { repositories: number; digests: Set<Digest> }>();
    for (const repository of repositories) {
      const ns = namespaceOf(repository);
      let entry = byNamespace.get(ns);
      if (!entry) byNamespace.set(ns, (entry = { repositories: 0, digests: new Set() }));
      entry.repositories += 1;
      const nodes = await this.manifests(repository);
      for (const digest of nodes.keys()) this.closure(nodes, digest, entry.digests);
    }
    const namespaces: NamespaceUsage[] = [];
    for (const [namespace, entry] of [...byNamespace].sort(([a], [b]) => a.localeCompare(b))) {
      namespaces.push({ namespace, kind: this.mirrorNamespaces.has(namespace) ? 'mirror' : 'pushed', repositories: entry.repositories, bytes: await this.bytesOf(entry.digests) });
    }
    const sizes = await this.blobSizes();
    let storedBytes = 0;
    for (const size of sizes.values()) storedBytes += size;
    return {
      namespaces,
      mirrorBytes: namespaces.filter((n) => n.kind === 'mirror').reduce((a, n) => a + n.bytes, 0),
      pushedBytes: namespaces.filter((n) => n.kind === 'pushed').reduce((a, n) => a + n.bytes, 0),
      storedBytes,
      blobs: sizes.size,
    };
  }
}
