// Credentials for one upstream: none, a fixed username and password, a password file (re-read
// when the cached value expires, so a rotated Secret is picked up), or a helper command that
// prints `user:secret` (ECR, GCR/Artifact Registry, ACR, GHCR and Quay tokens). Secrets never
// reach a log line or an error message.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { UpstreamConfig } from '../../config/config.js';

export interface Credentials {
  username: string;
  password: string;
}

export interface CredentialSource {
  /** The credentials to use now; undefined when the upstream is used anonymously. */
  get(): Promise<Credentials | undefined>;
  /** Forgets the cached value (the upstream rejected it). */
  invalidate(): void;
}

const HELPER_TIMEOUT_MS = 30_000;

function runHelper(command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('/bin/sh', ['-c', command], { timeout: HELPER_TIMEOUT_MS, maxBuffer: 1024 * 1024, env: process.env }, (err, stdout) => {
      // The command's output is a secret and its stderr may echo one: report the exit only.
      if (err) reject(new Error(`credential helper failed (${err.code ?? err.signal ?? 'error'})`));
      else resolve(stdout);
    });
  });
}

/** `user:secret` (the first ':' splits), or a bare secret paired with the configured username. */
export function parseHelperOutput(output: string, username: string | undefined): Credentials {
  const text = output.trim();
  if (!text) throw new Error('credential helper printed nothing');
  const colon = text.indexOf(':');
  if (colon > 0) return { username: text.slice(0, colon), password: text.slice(colon + 1) };
  if (username === undefined) throw new Error('credential helper printed no "user:" and the upstream has no username');
  return { username, password: text };
}

export function credentialSource(upstream: UpstreamConfig, now: () => number = Date.now): CredentialSource {
  const { username, password, passwordFile, credentialHelper, credentialTTLMs } = upstream;
  if (credentialHelper === undefined && passwordFile === undefined) {
    const fixed = username !== undefined && password !== undefined ? { username, password } : undefined;
    return { get: async () => fixed, invalidate: () => undefined };
  }
  let cached: { value: Credentials; until: number } | undefined;
  let pending: Promise<Credentials> | undefined;
  const load = async (): Promise<Credentials> => {
    if (credentialHelper !== undefined) return parseHelperOutput(await runHelper(credentialHelper), username);
    const secret = (await readFile(passwordFile as string, 'utf8')).replace(/\r?\n$/, '');
    if (username === undefined) throw new Error('passwordFile needs a username');
    return { username, password: secret };
  };
  return {
    async get() {
      if (cached && cached.until > now()) return cached.value;
      // One helper run at a time, however many requests need credentials at once.
      pending ??= load().finally(() => (pending = undefined));
      const value = await pending;
      cached = { value, until: now() + credentialTTLMs };
      return value;
    },
    invalidate() {
      cached = undefined;
    },
  };
}

export function basicHeader(credentials: Credentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}
