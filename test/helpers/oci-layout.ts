// OCI image layouts on disk (index.json, oci-layout, blobs/sha256/…) that skopeo copies from
// with `oci:DIR:TAG`: single-platform images and multi-platform indexes of real tar+gzip layers.
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildIndex, buildManifest, descriptorOf, imageConfig, MediaType, type Content, type Descriptor, type Platform } from './oci-content.js';
import { randomSeed } from './random-bytes.js';
import { writeTarGzLayer, type WrittenLayer } from './tar-layer.js';

const REF_NAME = 'org.opencontainers.image.ref.name';

export interface OciImageOptions {
  /** A count of layers (64 KiB of content each) or the content size in bytes of each layer. */
  layers: number | number[];
  /** Same seed, same bytes, same digests. Random when omitted. */
  seed?: string;
  /** The name under which index.json lists the image; `oci:DIR:TAG` refers to it. */
  tag?: string;
  platform?: Platform;
  gzipLevel?: number;
}

export interface OciImage {
  dir: string;
  tag: string;
  /** `oci:DIR:TAG`, ready for skopeo. */
  ref: string;
  manifest: Content;
  config: Content;
  layers: WrittenLayer[];
  platform: Platform;
}

export interface OciIndexImage {
  dir: string;
  tag: string;
  ref: string;
  index: Content;
  images: OciImage[];
}

const DEFAULT_LAYER_SIZE = 64 * 1024;

async function writeBlob(dir: string, c: Content): Promise<void> {
  await writeFile(path.join(dir, 'blobs', 'sha256', c.digest.slice('sha256:'.length)), c.bytes);
}

async function prepare(dir: string): Promise<string> {
  const blobs = path.join(dir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  return blobs;
}

/** Adds (or replaces) the entry for `tag` in index.json, keeping other tags in the layout. */
async function tagInLayout(dir: string, tag: string, target: Descriptor): Promise<void> {
  const file = path.join(dir, 'index.json');
  const existing = existsSync(file) ? (JSON.parse(await readFile(file, 'utf8')) as { manifests?: Descriptor[] }) : {};
  const others = (existing.manifests ?? []).filter((m) => m.annotations?.[REF_NAME] !== tag);
  const doc = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [...others, { ...target, annotations: { [REF_NAME]: tag } }] };
  await writeFile(file, JSON.stringify(doc));
}

async function writeImage(dir: string, blobs: string, opts: OciImageOptions, seed: string, tag: string): Promise<OciImage> {
  const sizes = typeof opts.layers === 'number' ? Array.from({ length: opts.layers }, () => DEFAULT_LAYER_SIZE) : opts.layers;
  const platform = opts.platform ?? { os: 'linux', architecture: 'amd64' };
  const layers: WrittenLayer[] = [];
  for (const [i, fileSize] of sizes.entries()) {
    const layerSeed = `${seed}/${platform.os}/${platform.architecture}/${i}`;
    layers.push(await writeTarGzLayer(blobs, { fileName: `layer-${i}.bin`, fileSize, seed: layerSeed, gzipLevel: opts.gzipLevel }));
  }
  const config = imageConfig(layers.map((l) => l.diffId), platform);
  const manifest = buildManifest({
    config,
    layers: layers.map((l) => ({ mediaType: MediaType.ociLayerGzip, digest: l.digest, size: l.size })),
  });
  await writeBlob(dir, config);
  await writeBlob(dir, manifest);
  return { dir, tag, ref: `oci:${dir}:${tag}`, manifest, config, layers, platform };
}

/** Builds a single-platform image of real tar+gzip layers in the OCI layout at `dir`. */
export async function makeOciImage(dir: string, opts: OciImageOptions): Promise<OciImage> {
  const blobs = await prepare(dir);
  const tag = opts.tag ?? 'latest';
  const image = await writeImage(dir, blobs, opts, opts.seed ?? randomSeed(), tag);
  await tagInLayout(dir, tag, descriptorOf(image.manifest));
  return image;
}

/**
 * Builds an image index with one image per platform (linux/amd64 and linux/arm64 by default),
 * each with its own layers. Copy it with `skopeoCopy(ref, dst, { all: true })`.
 */
export async function makeOciIndex(dir: string, opts: OciImageOptions & { platforms?: Platform[] }): Promise<OciIndexImage> {
  const blobs = await prepare(dir);
  const tag = opts.tag ?? 'latest';
  const seed = opts.seed ?? randomSeed();
  const platforms = opts.platforms ?? [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }];
  const images: OciImage[] = [];
  for (const platform of platforms) images.push(await writeImage(dir, blobs, { ...opts, platform }, seed, tag));
  const index = buildIndex({ manifests: images.map((img) => ({ ...img.manifest, platform: img.platform })) });
  await writeBlob(dir, index);
  await tagInLayout(dir, tag, descriptorOf(index));
  return { dir, tag, ref: `oci:${dir}:${tag}`, index, images };
}
