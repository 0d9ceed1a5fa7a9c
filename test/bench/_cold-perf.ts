// Development profile of one cold 256 MiB pull-through (not run by `npm run bench`): one compiled
// layover with --perf-basic-prof on a docker-registry upstream; the first pull warms the JIT, the
// second runs under `perf record` (all threads of the layover process). Prints perf's split of
// the samples by thread and by shared object, and the top symbols.
// Usage: npx tsx test/bench/_cold-perf.ts   (needs perf; perf_event_paranoid <= 2 for own processes)
import { spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { spawnLayover } from '../helpers/layover.js';
import { uploadBlob } from '../helpers/registry-client.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { curlGet, writeBlobFile } from './measure.js';

const REPO = 'bench/big';
const SIZE = 256 * 2 ** 20;
const tmp = makeTempDir('dev-perf-');
const up = await startDockerRegistry({ logLevel: 'error' });
const digests: string[] = [];
for (let i = 0; i < 2; i++) {
  const f = path.join(tmp.path, 'b');
  digests.push(await writeBlobFile(f, `perf-${i}-${Date.now()}`, SIZE));
  await uploadBlob(up.url, REPO, digests[i]!, { file: f });
}
const l = await spawnLayover({ upstreams: [{ prefix: 'up', url: up.url }] }, { logLevel: 'warn', compiled: true, nodeArgs: ['--perf-basic-prof'] });
const data = process.env.PERF_DATA ?? path.join(tmp.path, 'perf.data');
try {
  await curlGet(`${l.url}/v2/up/${REPO}/blobs/${digests[0]}`, SIZE);
  spawnSync('dd', ['if=/dev/zero', `of=${tmp.path}/p`, 'bs=1M', 'count=1536', 'status=none']);
  rmSync(`${tmp.path}/p`);
  await new Promise((r) => setTimeout(r, 1000));
  const perf = spawn('perf', ['record', '-F', '999', '-g', '-p', String(l.pid), '-o', data], { stdio: 'inherit' });
  await new Promise((r) => setTimeout(r, 500));
  const s = await curlGet(`${l.url}/v2/up/${REPO}/blobs/${digests[1]}`, SIZE);
  await new Promise((r) => setTimeout(r, 300));
  perf.kill('SIGINT');
  await new Promise((r) => perf.once('exit', r));
  console.log(`cold pull ${s.toFixed(3)} s`);
  for (const sort of ['tid', 'dso', 'sym']) {
    const out = spawnSync('perf', ['report', '-i', data, '--no-children', '--sort', sort, '--stdio', '-g', 'none', '--percent-limit', sort === 'sym' ? '0.7' : '1'], { encoding: 'utf8' });
    console.log(out.stdout.split('\n').filter((x) => x && !x.startsWith('#')).join('\n'));
  }
} finally {
  await l.close();
  await up.close();
  tmp.cleanup();
}
