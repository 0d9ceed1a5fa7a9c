// The files and commands a configuration names, checked at start-up before anything is created:
// a missing CA bundle or password file otherwise surfaces only at the first pull through that
// upstream, as an upstream error, far from the key that caused it.
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import type { Config } from './config.js';

async function readableFile(key: string, file: string): Promise<string | undefined> {
  try {
    const info = await stat(file);
    if (!info.isFile()) return `${key}: ${file} is not a file`;
    await access(file, constants.R_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return `${key}: ${file} does not exist`;
    if (code === 'EACCES') return `${key}: ${file} is not readable by this process`;
    return `${key}: ${file}: ${code ?? (err as Error).message}`;
  }
}

/**
 * The program a credential helper's shell command runs first (after `NAME=value` assignments),
 * when that can be told without running it; undefined for anything shell syntax makes unclear.
 */
export function helperProgram(command: string): string | undefined {
  const words = command.trim().split(/\s+/);
  const first = words.find((w) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(w));
  if (!first || /[$`"'\\|&;<>(){}*?[\]~]/.test(first)) return undefined;
  return first;
}

function onPath(program: string): Promise<boolean> {
  // `command -v` finds builtins (echo, printf) and programs on PATH, as the helper's /bin/sh will.
  return new Promise((resolve) => {
    execFile('/bin/sh', ['-c', 'command -v "$1" >/dev/null', 'sh', program], { timeout: 5_000 }, (err) => resolve(!err));
  });
}

/** One line per problem, each naming its key; empty when every referenced file is there. */
export async function referencedFileProblems(config: Config): Promise<string[]> {
  const checks: Promise<string | undefined>[] = [];
  if (config.registry.enabled && config.registry.tls) {
    checks.push(readableFile('registry.tls.cert', config.registry.tls.cert), readableFile('registry.tls.key', config.registry.tls.key));
  }
  if (config.webhook.enabled && config.webhook.tls) {
    checks.push(readableFile('webhook.tls.cert', config.webhook.tls.cert), readableFile('webhook.tls.key', config.webhook.tls.key));
  }
  if (config.registry.enabled) {
    config.upstreams.forEach((u, i) => {
      if (u.ca !== undefined) checks.push(readableFile(`upstreams.${i}.ca`, u.ca));
      if (u.passwordFile !== undefined) checks.push(readableFile(`upstreams.${i}.passwordFile`, u.passwordFile));
      const program = u.credentialHelper === undefined ? undefined : helperProgram(u.credentialHelper);
      if (program !== undefined) {
        checks.push(onPath(program).then((found) => (found ? undefined : `upstreams.${i}.credentialHelper: "${program}" is not a command on PATH`)));
      }
    });
  }
  return (await Promise.all(checks)).filter((p): p is string => p !== undefined);
}
