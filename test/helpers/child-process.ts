// Long-running peers (docker-registry, containerd, a spawned layover) as child processes whose
// output goes to log files, never to the test output, and which are always stopped.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

export interface Child {
  readonly process: ChildProcess;
  readonly pid: number;
  /** True until the process has exited. */
  alive(): boolean;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
  /** Sends `signal` and waits for exit; escalates to SIGKILL after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string>;
}

const running = new Set<ChildProcess>();
// If the test process dies, its peers must not outlive it and hold ports or files.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** `uid`/`gid` run the child as another user (root only), e.g. postgres, which refuses to run as root. */
export function startChild(command: string, args: string[], opts: { stdoutFile: string; stderrFile?: string; env?: NodeJS.ProcessEnv; cwd?: string; uid?: number; gid?: number }): Child {
  const out = openSync(opts.stdoutFile, 'a');
  const err = opts.stderrFile && opts.stderrFile !== opts.stdoutFile ? openSync(opts.stderrFile, 'a') : out;
  const child = spawn(command, args, { stdio: ['ignore', out, err], env: opts.env ?? process.env, cwd: opts.cwd, uid: opts.uid, gid: opts.gid });
  closeSync(out);
  if (err !== out) closeSync(err);
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  running.add(child);
  let done = false;
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      running.delete(child);
      resolve(code ?? signal ?? 'unknown');
    });
    child.once('error', () => {
      done = true;
      running.delete(child);
      resolve('spawn-error');
    });
  });
  return {
    process: child,
    pid: child.pid,
    alive: () => !done,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000) {
      if (done) return exited;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
