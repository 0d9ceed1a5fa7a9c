// Development: what V8 optimizes and deoptimizes during cold 256 MiB pull-throughs of a warmed
// compiled layover (not run by `npm run bench`). Starts one layover with --trace-opt
// --trace-deopt, pulls N blobs cold, and prints per pull the count of optimizations and
// deoptimizations, and the functions deoptimized most (from the log).
// Usage: N=4 npx tsx test/bench/_cold-deopt.ts
import path from 'node:path';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { spawnLayover } from '../helpers/layover.js';
import { uploadBlob } from '../helpers/registry-client.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { curlGet, writeBlobFile } from './measure.js';

const N = Number(process.env.N ?? 4);
const REPO = 'bench/big';
const SIZE = 256 * 2 ** 20;
const tmp = makeTempDir('dev-deopt-');
const up = await startDockerRegistry({ logLevel: 'error' });
const digests: string[] = [];
for (let i = 0; i < N; i++) {
  const f = path.join(tmp.path, 'b');
  digests.push(await writeBlobFile(f, `deopt-${i}-${Date.now()}`, SIZE));
  await uploadBlob(up.url, REPO, digests[i]!, { file: f });
}
const l = await spawnLayover({ upstreams: [{ prefix: 'up', url: up.url }] }, { logLevel: 'warn', compiled: true, nodeArgs: ['--trace-opt', '--trace-deopt'] });
try {
  let seen = l.log().length;
  for (const d of digests) {
    const s = await curlGet(`${l.url}/v2/up/${REPO}/blobs/${d}`, SIZE);
    await new Promise((r) => setTimeout(r, 500));
    const text = l.log().slice(seen);
    seen += text.length;
    const lines = text.split('\n');
    const opt = lines.filter((x) => x.includes('[completed compiling') || x.includes('completed optimizing')).length;
    const deopts = lines.filter((x) => x.includes('bailout (kind:'));
    const byFn = new Map<string, number>();
    for (const x of deopts) {
      const fn = /<JSFunction ([^ >]*)/.exec(x)?.[1] ?? '?';
      const why = /reason: ([^)]*)\)/.exec(x)?.[1] ?? '';
      const key = `${fn} (${why})`;
      byFn.set(key, (byFn.get(key) ?? 0) + 1);
    }
    console.log(`pull ${s.toFixed(3)} s: ${opt} optimized, ${deopts.length} deopts: ${[...byFn].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, v]) => `${k} ×${v}`).join('; ')}`);
  }
} finally {
  await l.close();
  await up.close();
  tmp.cleanup();
}
