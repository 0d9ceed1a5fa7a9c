// skopeo, a real registry client, against a real listening layover.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeDigest } from '../helpers/oci-content.js';
import { makeOciImage, makeOciIndex, type OciImage } from '../helpers/oci-layout.js';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { skopeoCopy, skopeoDelete, skopeoInspect, skopeoListTags } from '../helpers/skopeo.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';

let layover: InProcessLayover;
let tmp: TempDir;
let image: OciImage;

beforeAll(async () => {
  tmp = makeTempDir();
  layover = await startLayover();
  image = await makeOciImage(`${tmp.path}/img`, { layers: [300_000, 1_000_000, 50_000], tag: 'v1' });
});
afterAll(async () => {
  await layover?.close();
  tmp?.cleanup();
});

describe('skopeo against layover', () => {
  it('pushes an image and reads back the identical manifest', async () => {
    await skopeoCopy(image.ref, `docker://${layover.host}/team/app:v1`);
    const raw = await skopeoInspect(`docker://${layover.host}/team/app:v1`, { raw: true });
    expect(computeDigest(raw)).toBe(image.manifest.digest);
    expect(raw.equals(image.manifest.bytes)).toBe(true);
    const summary = await skopeoInspect(`docker://${layover.host}/team/app:v1`);
    expect(summary.Digest).toBe(image.manifest.digest);
    expect(summary.Layers).toEqual(image.layers.map((l) => l.digest));
  });

  it('pulls the image back to a layout with identical blobs', async () => {
    const out = `${tmp.path}/pulled`;
    await skopeoCopy(`docker://${layover.host}/team/app:v1`, `oci:${out}:v1`);
    const pulled = await skopeoInspect(`oci:${out}:v1`, { raw: true });
    expect(computeDigest(pulled)).toBe(image.manifest.digest);
  });

  it('lists tags and deletes by digest', async () => {
    await skopeoCopy(`docker://${layover.host}/team/app:v1`, `docker://${layover.host}/team/app:v2`);
    expect(await skopeoListTags(`docker://${layover.host}/team/app`)).toEqual(['v1', 'v2']);
    await skopeoDelete(`docker://${layover.host}/team/app@${image.manifest.digest}`);
    expect(await skopeoListTags(`docker://${layover.host}/team/app`)).toEqual([]);
    await expect(skopeoInspect(`docker://${layover.host}/team/app:v1`, { raw: true })).rejects.toThrow(/manifest unknown/i);
  });

  it('copies a multi-platform index with --all, digests unchanged', async () => {
    const index = await makeOciIndex(`${tmp.path}/multi`, { layers: 2, tag: 'multi' });
    await skopeoCopy(index.ref, `docker://${layover.host}/team/multi:1`, { all: true });
    const raw = await skopeoInspect(`docker://${layover.host}/team/multi:1`, { raw: true });
    expect(computeDigest(raw)).toBe(index.index.digest);
    for (const child of index.images) {
      const childRaw = await skopeoInspect(`docker://${layover.host}/team/multi@${child.manifest.digest}`, { raw: true });
      expect(computeDigest(childRaw)).toBe(child.manifest.digest);
    }
  });
});
