// skopeo as a real registry client, sealed off from the user's environment: its own
// registries.conf, auth file and policy flags, so nothing on the machine changes what it does.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { makeTempDir } from './temp-dir.js';
import { runTool } from './run-tool.js';

export interface Creds { user: string; password: string }

/**
 * A private HOME, registries.conf, auth file and TMPDIR for one skopeo run: nothing from the
 * user's environment leaks in, and no blob-info cache carries over between runs (it would make
 * skopeo try cross-repository mounts that a test did not ask for).
 */
function sandbox(): { dir: string; env: NodeJS.ProcessEnv; cleanup(): void } {
  const tmp = makeTempDir('layover-skopeo-');
  const dir = tmp.path;
  writeFileSync(path.join(dir, 'registries.conf'), 'unqualified-search-registries = []\n');
  writeFileSync(path.join(dir, 'auth.json'), '{"auths":{}}\n');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: dir,
    XDG_RUNTIME_DIR: dir,
    XDG_CONFIG_HOME: dir,
    XDG_DATA_HOME: dir,
    TMPDIR: dir,
    CONTAINERS_REGISTRIES_CONF: path.join(dir, 'registries.conf'),
    REGISTRY_AUTH_FILE: path.join(dir, 'auth.json'),
  };
  return { dir, env, cleanup: tmp.cleanup };
}

function credsArg(flag: string, creds: Creds | undefined): string[] {
  return creds ? [`${flag}=${creds.user}:${creds.password}`] : [];
}

/** Runs `skopeo --insecure-policy ARGS` in the sandbox; resolves stdout, rejects with stderr. */
export async function skopeo(args: string[], timeoutMs = 300_000): Promise<string> {
  const box = sandbox();
  try {
    const expanded = args.map((a) => (a === AUTHFILE ? path.join(box.dir, 'auth.json') : a));
    const { stdout } = await runTool('skopeo', ['--insecure-policy', '--registries.d', box.dir, ...expanded], { env: box.env, timeoutMs });
    return stdout;
  } finally {
    box.cleanup();
  }
}

/** Like `skopeo` but returns stdout as raw bytes (manifests must be compared byte for byte). */
async function skopeoBytes(args: string[]): Promise<Buffer> {
  const out = await skopeo(args);
  return Buffer.from(out, 'utf8');
}

/** Stands for the sandbox's auth file in argument lists; `skopeo()` substitutes the path. */
const AUTHFILE = '\0authfile';

function authFile(): string[] {
  return ['--authfile', AUTHFILE];
}

export interface CopyOptions {
  srcCreds?: Creds;
  destCreds?: Creds;
  /** Copy every platform of an index (`--all`), not only the host's. */
  all?: boolean;
  /** `v2s2` or `oci`: let skopeo convert the manifest (changes digests). */
  format?: 'v2s2' | 'oci';
  extra?: string[];
}

/**
 * `skopeo copy SRC DST`: refs such as `oci:DIR:TAG` or `docker://127.0.0.1:PORT/repo:tag`.
 * TLS verification is off on both sides, so plain-HTTP registries on loopback work.
 */
export function skopeoCopy(src: string, dst: string, opts: CopyOptions = {}): Promise<string> {
  return skopeo([
    'copy', ...authFile(), '--src-tls-verify=false', '--dest-tls-verify=false',
    ...credsArg('--src-creds', opts.srcCreds), ...credsArg('--dest-creds', opts.destCreds),
    ...(opts.all ? ['--all'] : []), ...(opts.format ? ['--format', opts.format] : []),
    ...(opts.extra ?? []), src, dst,
  ]);
}

/** The exact manifest bytes (`raw: true`) or skopeo's parsed summary of the image. */
export function skopeoInspect(ref: string, opts: { raw: true; creds?: Creds }): Promise<Buffer>;
export function skopeoInspect(ref: string, opts?: { raw?: false; config?: boolean; creds?: Creds }): Promise<Record<string, unknown>>;
export async function skopeoInspect(ref: string, opts: { raw?: boolean; config?: boolean; creds?: Creds } = {}): Promise<Buffer | Record<string, unknown>> {
  const args = ['inspect', ...authFile(), '--tls-verify=false', ...credsArg('--creds', opts.creds), ...(opts.config ? ['--config'] : []), ...(opts.raw ? ['--raw'] : []), ref];
  if (opts.raw) return skopeoBytes(args);
  return JSON.parse(await skopeo(args)) as Record<string, unknown>;
}

/** The tags of `docker://HOST/repo`, in the order the registry returned them. */
export async function skopeoListTags(repoRef: string, creds?: Creds): Promise<string[]> {
  const out = await skopeo(['list-tags', ...authFile(), '--tls-verify=false', ...credsArg('--creds', creds), repoRef]);
  return (JSON.parse(out) as { Tags: string[] | null }).Tags ?? [];
}

export async function skopeoDelete(ref: string, creds?: Creds): Promise<void> {
  await skopeo(['delete', ...authFile(), '--tls-verify=false', ...credsArg('--creds', creds), ref]);
}
