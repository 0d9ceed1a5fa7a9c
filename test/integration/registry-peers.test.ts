// layover beside the real peers: containerd pulls and unpacks what was pushed to it, and skopeo
// copies images between a real docker-registry (Distribution 2.8) and layover in both directions.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainerd, type Containerd } from '../helpers/containerd.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { computeDigest } from '../helpers/oci-content.js';
import { makeOciImage, makeOciIndex, type OciImage } from '../helpers/oci-layout.js';
import { skopeoCopy, skopeoInspect } from '../helpers/skopeo.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';

let layover: InProcessLayover;
let upstream: DockerRegistry;
let containerd: Containerd;
let tmp: TempDir;
let image: OciImage;

beforeAll(async () => {
  tmp = makeTempDir();
  [layover, upstream, containerd] = await Promise.all([startLayover(), startDockerRegistry(), startContainerd()]);
  image = await makeOciImage(`${tmp.path}/img`, { layers: [200_000, 700_000, 30_000], tag: 'v1' });
  await skopeoCopy(image.ref, `docker://${layover.host}/dev/app:v1`);
});
afterAll(async () => {
  await Promise.all([layover?.close(), upstream?.close(), containerd?.close()]);
  tmp?.cleanup();
});

describe('containerd', () => {
  it('pulls and unpacks an image pushed to layover, every digest verified', async () => {
    await containerd.pullWithCtr(`${layover.host}/dev/app:v1`, { plainHttp: true });
    const images = await containerd.images();
    expect(images).toContainEqual(expect.objectContaining({ ref: `${layover.host}/dev/app:v1`, digest: image.manifest.digest }));
    const content = await containerd.contentDigests();
    for (const layer of image.layers) expect(content).toContain(layer.digest);
    expect(content).toContain(image.config.digest);
    // Unpacked: each layer's single file is on disk at its size.
    const files = containerd.unpackedFiles();
    for (const layer of image.layers) expect(files).toContainEqual({ path: layer.fileName, size: layer.fileSize });
  });

  it('pulls a multi-platform index by digest', async () => {
    const index = await makeOciIndex(`${tmp.path}/multi`, { layers: 1, tag: 'multi' });
    await skopeoCopy(index.ref, `docker://${layover.host}/dev/multi:1`, { all: true });
    await containerd.pullWithCtr(`${layover.host}/dev/multi@${index.index.digest}`, { plainHttp: true, platform: 'linux/arm64' });
    const arm = index.images.find((i) => i.platform.architecture === 'arm64');
    expect(await containerd.contentDigests()).toContain(arm?.layers[0]?.digest);
  });
});

describe('skopeo between docker-registry and layover', () => {
  it('copies layover → docker-registry with the identical manifest digest', async () => {
    await skopeoCopy(`docker://${layover.host}/dev/app:v1`, `docker://${upstream.host}/copied/app:v1`);
    const raw = await skopeoInspect(`docker://${upstream.host}/copied/app:v1`, { raw: true });
    expect(computeDigest(raw)).toBe(image.manifest.digest);
  });

  it('copies docker-registry → layover with the identical manifest digest (schema2 too)', async () => {
    const other = await makeOciImage(`${tmp.path}/other`, { layers: 2, tag: 'o' });
    await skopeoCopy(other.ref, `docker://${upstream.host}/src/other:o`, { format: 'v2s2' });
    const upstreamRaw = await skopeoInspect(`docker://${upstream.host}/src/other:o`, { raw: true });
    await skopeoCopy(`docker://${upstream.host}/src/other:o`, `docker://${layover.host}/dev/other:o`);
    const raw = await skopeoInspect(`docker://${layover.host}/dev/other:o`, { raw: true });
    expect(raw.equals(upstreamRaw)).toBe(true);
    expect(JSON.parse(raw.toString()).mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    const res = await fetch(`${layover.url}/v2/dev/other/manifests/o`, { method: 'HEAD' });
    expect(res.headers.get('content-type')).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(res.headers.get('docker-content-digest')).toBe(computeDigest(upstreamRaw));
  });
});
