// What every Distribution route handler receives.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../../config/config.js';
import type { Access, Principal } from '../auth/access.js';
import type { PullRecorder } from '../pull-recorder.js';
import type { ContentSource, RegistryService } from '../service.js';

export interface RouteContext {
  config: Config;
  access: Access;
  service: RegistryService;
  /** The source that serves reads of a repository: local storage or a mirror. */
  sourceFor(repository: string): ContentSource;
  /** True where the repository is a mirror namespace (pushes and deletes refused). */
  isMirror(repository: string): boolean;
  /** Notes pulls of pushed images (mirrors note their own). */
  pulls?: PullRecorder;
}

export interface Call {
  req: FastifyRequest;
  reply: FastifyReply;
  principal: Principal;
  query: URLSearchParams;
}

/** An AbortSignal that fires when the client goes away before its answer is complete. */
export function clientSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}

export function parseCount(value: string | null): number | undefined {
  if (value === null) return undefined;
  if (!/^\d{1,9}$/.test(value)) return NaN;
  return Number(value);
}
