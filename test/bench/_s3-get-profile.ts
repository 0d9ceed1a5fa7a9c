// Dev only: a CPU profile of layover serving streamed 256 MiB GETs from Ceph RGW
// (`npx tsx test/bench/_s3-get-profile.ts DIR [GETS]`); the .cpuprofile lands in DIR.
import { copyFileSync } from 'node:fs';
import path from 'node:path';
import { startCephRgw } from '../helpers/ceph-rgw.js';
import { spawnLayover } from '../helpers/layover.js';
import { uploadBlob } from '../helpers/registry-client.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { curlGet, writeBlobFile } from './measure.js';
import { ticksOf } from './s3-replicas.js';

const [dir = '/tmp', gets = '3'] = process.argv.slice(2);
const SIZE = 256 * 2 ** 20;
const tmp = makeTempDir('layover-s3-prof-');
const rgw = await startCephRgw({ memoryBytes: 2 * 2 ** 30 });
try {
  const digest = await writeBlobFile(path.join(tmp.path, 'blob'), 'prof', SIZE);
  const l = await spawnLayover({}, { logLevel: 'warn', compiled: true, s3: { ...rgw, bucket: await rgw.createBucket('prof') }, nodeArgs: process.env.PROF_ARGS ? process.env.PROF_ARGS.split(' ') : ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
  try {
    await uploadBlob(l.url, 'p/blob', digest, { file: path.join(tmp.path, 'blob') });
    console.log('--- GETs');
    for (let i = 0; i < Number(gets); i++) {
      const t = ticksOf(l.pid);
      const s = await curlGet(`${l.url}/v2/p/blob/blobs/${digest}`, SIZE);
      console.log(`GET ${s.toFixed(3)} s, layover CPU ${((ticksOf(l.pid) - t) / 100).toFixed(2)} s`);
    }
    copyFileSync(path.join(path.dirname(l.configFile), 'layover.log'), path.join(dir, 'layover.log'));
  } finally {
    await l.close();
  }
} finally {
  await rgw.close();
  tmp.cleanup();
}
