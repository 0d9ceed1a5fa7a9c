// undici for the webhook's requests to the registry (image checks, prefetches), loaded with the
// first of them: a webhook that is starting, or whose reviews need no check, does not hold it
// (~3.5 MiB resident of the webhook role's; issue 16).
import type { Agent } from 'undici';

type Request = typeof import('undici').request;

export interface LazyAgent {
  /** undici's request and this agent, loaded on the first call. */
  get(): Promise<{ request: Request; dispatcher: Agent }>;
  close(): Promise<void>;
}

export function lazyAgent(options: Agent.Options): LazyAgent {
  let loaded: Promise<{ request: Request; dispatcher: Agent }> | undefined;
  return {
    get() {
      loaded ??= import('undici').then(({ Agent, request }) => ({ request, dispatcher: new Agent(options) }));
      return loaded;
    },
    async close() {
      if (loaded) await (await loaded).dispatcher.close();
    },
  };
}
