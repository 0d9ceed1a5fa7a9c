// The configuration parsed and checked (examine.ts) in a child process that exits when it has
// answered: yaml and typebox then never load into `layover serve`, which would keep them for its
// whole life (yaml ~1.6 MiB resident, typebox ~6). A child, not a worker thread: a thread left
// its malloc arena and the node binary's worker start-up pages behind in the process; with yaml
// out too, the registry rests at 65.75 instead of 67.9 MiB (issue 16). Run from the TypeScript
// sources (tsx, tests) there is no compiled file to start, and the check runs in-process.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Examined } from './examine.js';

const MARK = 'layover-config-examine';

function isExamined(answer: unknown): answer is Examined {
  if (typeof answer !== 'object' || answer === null) return false;
  const { raw, problems } = answer as { raw?: unknown; problems?: unknown };
  const problemsOk = Array.isArray(problems) && problems.every((p) => typeof p === 'string');
  return problemsOk && (raw === undefined ? problems.length === 1 : typeof raw === 'object' && raw !== null && !Array.isArray(raw));
}

/** examineConfig(text), in a child process when compiled. */
export async function examineApart(text: string): Promise<Examined> {
  const self = fileURLToPath(import.meta.url);
  if (!self.endsWith('.js')) return (await import('./examine.js')).examineConfig(text);
  // No inherited node flags: a profiler or preload given to the server is not for this child.
  const child = fork(self, [MARK], { execArgv: [], serialization: 'advanced', stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  try {
    const answer = await new Promise<unknown>((resolve, reject) => {
      child.once('message', resolve);
      child.once('error', reject);
      child.once('exit', (code, signal) => reject(new Error(`the configuration check's process exited (${signal ?? code}) without an answer`)));
      child.send(text);
    });
    if (!isExamined(answer)) throw new Error('the configuration check answered in an unknown form');
    return answer;
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill();
  }
}

if (process.argv[2] === MARK && process.send) {
  process.once('message', (text: unknown) => {
    // Anything but the text is not from examineApart: exit without an answer, which it reports.
    if (typeof text !== 'string') process.exit(1);
    void import('./examine.js').then(({ examineConfig }) => process.send?.(examineConfig(text), () => process.disconnect()));
  });
}
