// Development tool: RSS of a compiled registry at rest (12 s after start, past both idle
// collections), N starts. Whatever the environment sets (LD_PRELOAD, MALLOC_CONF) reaches the
// child: `LD_PRELOAD=… N=3 npx tsx test/bench/_rss-at-rest.ts`; ROLLUP=1 adds each start's
// smaps_rollup (anonymous against file-backed).
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnLayover } from '../helpers/layover.js';

function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return Number(line?.split(/\s+/)[1] ?? NaN) / 1024;
}

function rollup(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').matchAll(/^(Rss|Anonymous|Private_Dirty|Shared_Clean|Private_Clean):\s+(\d+)/gm)) out[m[1] ?? ""] = Number((Number(m[2]) / 1024).toFixed(1));
  return out;
}

const runs = Number(process.env.N ?? 3);
const figures: number[] = [];
for (let i = 0; i < runs; i++) {
  const layover = await spawnLayover({}, { compiled: true });
  try {
    await sleep(12_000);
    figures.push(rssMiB(layover.pid));
    if (process.env.ROLLUP) console.log(JSON.stringify(rollup(layover.pid)));
  } finally {
    await layover.close();
  }
}
console.log(JSON.stringify({ preload: process.env.LD_PRELOAD ?? null, rssMiB: figures.map((f) => Number(f.toFixed(1))) }));
