// Runs the real command-line peers (skopeo, ctr, htpasswd, …) and turns failures into errors that
// carry stderr. A missing tool is an error, never a skip: the integration tests must fail loudly.
import { execFile, spawnSync } from 'node:child_process';

export class ToolError extends Error {
  constructor(readonly tool: string, readonly args: string[], readonly code: number | string | null, readonly stdout: string, readonly stderr: string) {
    super(`${tool} ${args.join(' ')} failed (${code}): ${stderr.trim() || stdout.trim()}`);
    this.name = 'ToolError';
  }
}

const checked = new Map<string, string>();

const DEBIAN_PACKAGE: Record<string, string> = { ctr: 'containerd', htpasswd: 'apache2-utils' };

/** The absolute path of `tool` on PATH; throws naming the Debian package when it is missing. */
export function requireTool(tool: string, debianPackage = DEBIAN_PACKAGE[tool] ?? tool): string {
  const known = checked.get(tool);
  if (known) return known;
  const found = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool], { encoding: 'utf8' });
  const where = found.stdout.trim();
  if (found.status !== 0 || !where) {
    throw new Error(`${tool} is not installed: apt-get install -y ${debianPackage} (test/run.sh installs it)`);
  }
  checked.set(tool, where);
  return where;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  input?: string;
}

export interface RunResult { stdout: string; stderr: string }

export function runTool(tool: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const bin = requireTool(tool);
  return new Promise((resolve, reject) => {
    const child = execFile(bin, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      timeout: options.timeoutMs ?? 120_000,
      maxBuffer: 64 * 2 ** 20,
      encoding: 'utf8',
    }, (err, stdout, stderr) => {
      if (err) {
        const code = (err as NodeJS.ErrnoException & { code?: number | string }).code ?? null;
        reject(new ToolError(tool, args, code, stdout, stderr));
      } else {
        resolve({ stdout, stderr });
      }
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}
