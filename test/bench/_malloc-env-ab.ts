// Development A/B of the image's malloc environment (not run by `npm run bench`). Two compiled
// layovers on one docker-registry upstream, A with the image's environment (IMAGE_ENV), B with
// B_ENV's overrides, take turns on N fresh 64 MiB blobs: a cold pull-through then a hot GET each,
// printing the process's CPU-s and minor page faults per request, its RSS 12 s after, and with
// STRACE=1 its mmap/munmap/brk/madvise calls during each cold pull (counts, not times: strace
// slows the process). Light enough for a shared machine: judge by CPU-s and call counts.
// Usage: B_ENV=MALLOC_MMAP_THRESHOLD_=16384 N=4 npx tsx test/bench/_malloc-env-ab.ts
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { IMAGE_ENV, spawnLayover } from '../helpers/layover.js';
import { uploadBlob } from '../helpers/registry-client.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { curlGet, writeBlobFile } from './measure.js';

const N = Number(process.env.N ?? 4);
const SIZE = 64 * 2 ** 20;
const cpu = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) / 100; };
const minflt = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[7]);
const rss = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const tmp = makeTempDir('dev-');
const up = await startDockerRegistry({ logLevel: 'error' });
const digests: string[] = [];
for (let i = 0; i < 2 * N; i++) {
  const f = path.join(tmp.path, 'b');
  digests.push(await writeBlobFile(f, `arena-${i}-${Date.now()}`, SIZE));
  await uploadBlob(up.url, 'bench/big', digests[i]!, { file: f });
}
const start = async (b: boolean) => {
  const saved = { ...IMAGE_ENV };
  if (b) for (const kv of (process.env.B_ENV ?? '').split(',').filter(Boolean)) IMAGE_ENV[kv.split('=')[0]!] = kv.split('=')[1]!;
  const l = await spawnLayover({ upstreams: [{ prefix: 'up', url: up.url }] }, { logLevel: 'warn', compiled: true });
  Object.assign(IMAGE_ENV, saved);
  return l;
};
const ls = [await start(false), await start(true)];
const hot: number[][] = [[], []];
const cpus: number[][] = [[], []];
try {
  for (let i = 0; i < N; i++) {
    for (const j of i % 2 ? [1, 0] : [0, 1]) {
      const l = ls[j]!;
      const tracer = process.env.STRACE ? spawn('strace', ['-f', '-c', '-e', 'trace=mmap,munmap,mremap,brk,madvise', '-p', String(l.pid)], { stdio: ['ignore', 'ignore', 'pipe'] }) : undefined;
      let traced = '';
      tracer?.stderr.on('data', (d: Buffer) => (traced += d.toString()));
      if (tracer) await new Promise((r) => setTimeout(r, 1000));
      const c0 = cpu(l.pid);
      const f0 = minflt(l.pid);
      const s = await curlGet(`${l.url}/v2/up/bench/big/blobs/${digests[2 * i + j]}`, SIZE);
      await new Promise((r) => setTimeout(r, 500));
      cpus[j]!.push(cpu(l.pid) - c0);
      if (tracer) {
        tracer.kill('SIGINT');
        await new Promise((r) => tracer.once('exit', r));
        console.log(j ? 'B' : 'A', traced.split('\n').filter((x) => /mmap|munmap|brk|madvise|mremap|total/.test(x)).map((x) => x.trim().split(/\s+/).slice(-2).join(':')).join(' '));
      }
      const c1 = cpu(l.pid);
      const f1 = minflt(l.pid);
      await curlGet(`${l.url}/v2/up/bench/big/blobs/${digests[2 * i + j]}`, SIZE);
      await new Promise((r) => setTimeout(r, 300));
      hot[j]!.push(cpu(l.pid) - c1);
      console.log(j ? 'B' : 'A', s.toFixed(3), 's cold cpu', (c1 - c0).toFixed(2), 'hot cpu', hot[j]!.at(-1)!.toFixed(2), 'faults cold', f1 - f0, 'hot', minflt(l.pid) - f1);
    }
  }
  await new Promise((r) => setTimeout(r, 12_000));
  for (const j of [0, 1]) console.log(j ? 'B' : 'A', 'cold cpu', JSON.stringify(cpus[j]!.map((x) => +x.toFixed(2))), 'hot cpu', JSON.stringify(hot[j]!.map((x) => +x.toFixed(2))), 'rss after', rss(ls[j]!.pid).toFixed(1));
} finally {
  for (const l of ls) await l.close();
  await up.close();
  tmp.cleanup();
}
