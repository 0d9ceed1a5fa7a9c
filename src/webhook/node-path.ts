// Whether nodes can pull through the node role right now (webhook.rewriteTarget: node): its
// DaemonSet reports ready Pods. Read from the API every ~10 s in the background, so a review
// never waits on the apiserver; an API error counts as not ready (rewriting blind could send
// every Pod to ImagePullBackOff), with a warning in the log.
import type { Logger } from '../log.js';
import { startCachedProbe, type ProbeResult } from './cached-probe.js';

export interface NodePath {
  ready(): boolean;
  /** Reads the DaemonSet now and updates the cached answer. */
  refresh(): Promise<boolean>;
  close(): Promise<void>;
}

export interface NodePathOptions {
  /** `status.numberReady` of the node role's DaemonSet. */
  readyPods(): Promise<number>;
  /** `namespace/name`, for the log. */
  daemonSet: string;
  logger: Logger;
  intervalMs?: number;
}

export function watchNodePath(options: NodePathOptions): NodePath {
  async function read(): Promise<ProbeResult> {
    try {
      const ready = await options.readyPods();
      return { up: ready > 0, detail: `${ready} ready Pods` };
    } catch (err) {
      return { up: false, detail: `cannot read it: ${(err as Error).message}` };
    }
  }
  const cached = startCachedProbe(read, {
    intervalMs: options.intervalMs ?? 10_000,
    changed({ up, detail }) {
      if (up) options.logger.info({ daemonSet: options.daemonSet, detail }, 'node role ready: Pods are rewritten to it');
      else options.logger.warn({ daemonSet: options.daemonSet, detail }, 'node role not ready; Pods keep their original images');
    },
  });
  return { ready: () => cached.current(), refresh: () => cached.refresh(), close: () => cached.close() };
}
