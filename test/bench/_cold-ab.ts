// Development A/B of a change to the cold pull-through path (not run by `npm run bench`: the
// leading underscore). Two layovers (compiled, the image's flags) on one docker-registry
// upstream take turns pulling N fresh 256 MiB blobs cold; variant B is started with AB=<VAR>
// set to 1 in its environment (put the change behind that switch while measuring), or with
// --max-semi-space-size=$SEMI, or without the image's flag $DROP
// or environment variable $DROP_ENV. Prints per pull the wall time, the process's user+system
// CPU-s (all threads, /proc/PID/task/*/stat) and its event loop thread's, and the means without
// the first pull (which compiles the hot path). CPU-s, not wall time, is the figure to judge by
// on a shared machine. Usage: AB=LAYOVER_EXP_X N=5 npx tsx test/bench/_cold-ab.ts
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { IMAGE_ENV, IMAGE_NODE_FLAGS, spawnLayover } from '../helpers/layover.js';
import { uploadBlob } from '../helpers/registry-client.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { curlGet, writeBlobFile } from './measure.js';

const N = Number(process.env.N ?? 4);
const REPO = 'bench/big';
const SIZE = 256 * 2 ** 20;
function threads(pid: number): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const raw = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const name = raw.slice(raw.indexOf('(') + 1, raw.lastIndexOf(')'));
    const f = raw.split(') ')[1]!.split(' ');
    out.set(`${tid} ${name}`, [Number(f[11]) / 100, Number(f[12]) / 100]);
  }
  return out;
}
const tmp = makeTempDir('dev-');
const up = await startDockerRegistry({ logLevel: 'error' });
const digests: string[] = [];
for (let i = 0; i < N; i++) {
  const f = path.join(tmp.path, 'b');
  const d = await writeBlobFile(f, `dev-${i}-${Date.now()}`, SIZE);
  await uploadBlob(up.url, REPO, d, { file: f });
  digests.push(d);
}
spawnSync('sync');
const AB = process.env.AB as string;
const start = async (v: string | undefined) => {
  if (v) process.env[AB] = v; else delete process.env[AB];
  const saved = [...IMAGE_NODE_FLAGS];
  const savedEnv = { ...IMAGE_ENV };
  // DROP_ENV=<name>: variant B runs without that one of the image's environment variables.
  if (v && process.env.DROP_ENV) delete IMAGE_ENV[process.env.DROP_ENV];
  if (v && process.env.SEMI) IMAGE_NODE_FLAGS[0] = `--max-semi-space-size=${process.env.SEMI}`;
  // DROP=<flag>: variant B runs without that one of the image's flags.
  if (v && process.env.DROP) IMAGE_NODE_FLAGS.splice(IMAGE_NODE_FLAGS.indexOf(process.env.DROP), 1);
  const l = await spawnLayover({ upstreams: [{ prefix: 'up', url: up.url }] }, { logLevel: 'warn', compiled: true });
  IMAGE_NODE_FLAGS.splice(0, IMAGE_NODE_FLAGS.length, ...saved);
  Object.assign(IMAGE_ENV, savedEnv);
  delete process.env[AB];
  return l;
};
const ls = [await start(undefined), await start('1')];
const sums = [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0]];
try {
  let k = 0;
  for (const d of digests) {
    for (const j of k++ % 2 ? [1, 0] : [0, 1]) {
      const l = ls[j]!;
      spawnSync('dd', ['if=/dev/zero', `of=${tmp.path}/p`, 'bs=1M', 'count=1536', 'status=none']);
      rmSync(`${tmp.path}/p`);
      await new Promise((r) => setTimeout(r, 1000));
      const a = threads(l.pid);
      const s = await curlGet(`${l.url}/v2/up/${REPO}/blobs/${d}`, SIZE);
      await new Promise((r) => setTimeout(r, 300));
      const b = threads(l.pid);
      let tu = 0, ts = 0, mu = 0, ms = 0;
      const byName = new Map<string, number>();
      for (const [key, [u, sy]] of b) {
        const [u0, s0] = a.get(key) ?? [0, 0];
        tu += u - u0; ts += sy - s0;
        const name = key.startsWith(`${l.pid} `) ? 'main' : key.slice(key.indexOf(' ') + 1);
        byName.set(name, (byName.get(name) ?? 0) + u - u0 + sy - s0);
        if (key.startsWith(`${l.pid} `)) { mu = u - u0; ms = sy - s0; }
      }
      if (d !== digests[0]) { const S = sums[j]!; S[0]! += s; S[1]! += tu; S[2]! += ts; S[3]! += mu; S[4]! += ms; }
      const threadsLine = [...byName].filter(([, v]) => v > 0.005).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ');
      console.log(`${j ? 'B' : 'A'} ${s.toFixed(3)} s load ${loadavg()[0]!.toFixed(1)} total ${tu.toFixed(2)}u+${ts.toFixed(2)}s main ${mu.toFixed(2)}u+${ms.toFixed(2)}s  by thread: ${threadsLine}`);
    }
  }
  const n = digests.length - 1;
  for (const j of [0, 1]) console.log(`${j ? 'B' : 'A'} mean: ${sums[j]!.map((x) => (x / n).toFixed(3)).join(' ')}  (s, total u, total s, main u, main s)`);
} finally {
  for (const l of ls) await l.close();
  await up.close();
  tmp.cleanup();
}
