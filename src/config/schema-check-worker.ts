// The schema check (schema-check.ts) in a worker thread that ends when it has answered: typebox
// and the schema then leave `layover serve`'s memory with the thread (~8 MiB resident), where
// loaded in the process they would stay for its whole life. Run from the TypeScript sources
// (tsx, tests) there is no compiled worker file, and the check runs in-process.
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const MARK = 'layover-config-schema-check';

interface Request { mark: typeof MARK; raw: unknown }

function isRequest(data: unknown): data is Request {
  return typeof data === 'object' && data !== null && (data as Request).mark === MARK;
}

/** The schema's problems with `raw` (schema-check.ts), found in a worker thread when compiled. */
export async function schemaProblemsInWorker(raw: unknown): Promise<string[]> {
  const self = fileURLToPath(import.meta.url);
  if (!self.endsWith('.js')) return (await import('./schema-check.js')).schemaProblems(raw);
  const worker = new Worker(self, { workerData: { mark: MARK, raw } satisfies Request, stdout: false, stderr: false });
  try {
    const [answer] = await new Promise<[unknown]>((resolve, reject) => {
      worker.once('message', (m: unknown) => resolve([m]));
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the configuration check's thread exited (${code}) without an answer`)));
    });
    if (!Array.isArray(answer) || !answer.every((p) => typeof p === 'string')) throw new Error('the configuration check answered in an unknown form');
    return answer;
  } finally {
    await worker.terminate();
  }
}

if (!isMainThread && isRequest(workerData)) {
  const { schemaProblems } = await import('./schema-check.js');
  parentPort?.postMessage(schemaProblems(workerData.raw));
}
