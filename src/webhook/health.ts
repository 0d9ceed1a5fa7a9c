// Whether the registry answers, as the webhook needs to know on every review without waiting:
// a cached answer, refreshed in the background. Any HTTP answer below 500 (200, or 401 when
// auth is on) means it is up; a refused connection, a timeout or a 5xx means it is down.
// node:http, not undici: the probe runs from start-up on, and undici (~3.5 MiB resident) is
// then loaded only when an image check or a prefetch first needs it (issue 16).
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Config } from '../config/config.js';
import type { Logger } from '../log.js';
import { startCachedProbe, type ProbeResult } from './cached-probe.js';

export interface RegistryHealth {
  healthy(): boolean;
  /** Checks now and updates the cached answer. */
  refresh(): Promise<boolean>;
  close(): Promise<void>;
}

export interface HealthOptions {
  url: string;
  logger: Logger;
  intervalMs?: number;
  timeoutMs?: number;
}

/** `webhook.healthURL`, or the registry's own `/v2/` on the address it listens on. */
export function defaultHealthURL(config: Config): string {
  if (config.webhook.healthURL) return config.webhook.healthURL;
  const { host, port, tls } = config.registry;
  const target = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
  return `${tls ? 'https' : 'http'}://${target}:${port}/v2/`;
}

export function startHealthCheck(options: HealthOptions): RegistryHealth {
  const intervalMs = options.intervalMs ?? 5_000;
  const timeoutMs = options.timeoutMs ?? 2_000;
  // Only liveness is read from the answer and nothing is sent, so the registry's certificate
  // (often self-signed inside a cluster) is not verified here.
  const url = new URL(options.url);
  const https = url.protocol === 'https:';
  // A connection per probe (one every few seconds): a kept-alive one the registry closed while
  // idle would fail the next probe and report the registry down for an interval.
  const get = (): Promise<IncomingMessage> => new Promise((resolve, reject) => {
    const req = (https ? httpsRequest : httpRequest)(url, { method: 'GET', agent: false, rejectUnauthorized: false, signal: AbortSignal.timeout(timeoutMs) }, resolve);
    req.once('error', reject);
    req.end();
  });
  async function probe(): Promise<ProbeResult> {
    try {
      const res = await get();
      res.resume();
      return { up: (res.statusCode ?? 500) < 500, detail: `HTTP ${res.statusCode}` };
    } catch (err) {
      return { up: false, detail: (err as NodeJS.ErrnoException).code ?? (err as Error).name };
    }
  }

  const cached = startCachedProbe(probe, {
    intervalMs,
    changed({ up, detail }) {
      if (up) options.logger.info({ url: options.url, detail }, 'registry health check: up');
      else options.logger.warn({ url: options.url, detail }, 'registry health check: down; Pods keep their original images');
    },
  });
  return {
    healthy: () => cached.current(),
    refresh: () => cached.refresh(),
    async close() {
      await cached.close();
    },
  };
}
