// Development A/B of the image's malloc environment on the push path (not run by `npm run bench`):
// a fresh compiled layover per push, for each variant in turn (order flipped every round), takes
// a skopeo push of a 3x100 MiB OCI layout; prints wall time, the process's CPU-s and its minor
// page faults. The variants are the image's environment and the overrides listed below.
// Usage: N=2 [ONLY=0,1] npx tsx test/bench/_malloc-env-push-ab.ts
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { IMAGE_ENV, spawnLayover } from '../helpers/layover.js';
import { makeOciImage } from '../helpers/oci-layout.js';
import { skopeoCopy } from '../helpers/skopeo.js';
import { makeTempDir } from '../helpers/temp-dir.js';
const MiB = 2 ** 20;
const stat = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return [(Number(f[11]) + Number(f[12])) / 100, Number(f[7])]; };
const tmp = makeTempDir('dev-');
const image = await makeOciImage(path.join(tmp.path, 'image'), { layers: [100 * MiB, 100 * MiB, 100 * MiB], seed: 'push-ab', gzipLevel: 0 });
const start = async (env: Record<string, string>) => { const saved = { ...IMAGE_ENV }; Object.assign(IMAGE_ENV, env); const l = await spawnLayover({}, { logLevel: 'warn', compiled: true }); Object.assign(IMAGE_ENV, saved); return l; };
const variants: [string, Record<string, string>][] = [
  ['image', {}],
  ['arenas 2', { MALLOC_ARENA_MAX: '2' }],
  ['mmap 32k', { MALLOC_MMAP_THRESHOLD_: '32768' }],
  ['mmap 32k, arenas 2', { MALLOC_MMAP_THRESHOLD_: '32768', MALLOC_ARENA_MAX: '2' }],
];
const rounds = Number(process.env.N ?? 2);
try {
  for (let i = 0; i < rounds; i++) {
    // ONLY=0,1: just those variants.
    const only = (process.env.ONLY ?? '').split(',').filter(Boolean).map(Number);
    const order = variants.map((_, k) => k).filter((k) => !only.length || only.includes(k));
    for (const k of i % 2 ? order.reverse() : order) {
      const l = await start(variants[k]![1]);
      try {
        const [c0, f0] = stat(l.pid);
        const t0 = performance.now();
        await skopeoCopy(image.ref, `docker://${new URL(l.url).host}/bench/image:1`);
        const t = (performance.now() - t0) / 1000;
        const [c1, f1] = stat(l.pid);
        console.log(variants[k]![0].padEnd(20), t.toFixed(2), 's cpu', (c1! - c0!).toFixed(2), 'faults', f1! - f0!);
      } finally { await l.close(); }
    }
  }
} finally { tmp.cleanup(); }
